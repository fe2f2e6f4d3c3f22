"""StarGAN losses as functions returning `(loss, logs)`: WGAN-GP, domain classification, cycle reconstruction.

Usage: loss, logs = d_loss(D, x_real, x_fake, label_org, lambda_cls=1.0, lambda_gp=10.0, cls_kind="celeba")

`cls_kind` is "celeba" (independent binary attributes) or "rafd" (one exclusive expression). In joint
CelebA+RaFD training pass `cls_slice` to use only the current dataset's block of the discriminator's
logits, as the official `train_multi` does; the labels passed in are then that dataset's own labels.
`augment` (e.g. `augment.DiffAugment`) transforms every image before the critic sees it: real and fake in
the critic's loss (the gradient penalty is taken between the augmented pair), fake in the generator's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLS_KINDS = ("celeba", "rafd")


def classification_loss(logits: Tensor, target: Tensor, kind: str) -> Tensor:
    """Domain classification loss of the official code.

    CelebA: binary cross-entropy with logits summed over attributes and divided by the batch size.
    RaFD: cross-entropy against the class index of the one-hot target.
    """
    if kind == "celeba":
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.size(0)
    if kind == "rafd":
        return F.cross_entropy(logits, target.argmax(dim=1))
    raise ValueError(f"cls_kind must be one of {', '.join(CLS_KINDS)}, got {kind!r}")


def gradient_penalty(D: nn.Module, x_real: Tensor, x_fake: Tensor) -> Tensor:
    """WGAN-GP term mean((||dD(x_hat)/dx_hat||_2 - 1)^2) at random per-sample interpolates x_hat.

    Always in FP32, also under autocast (`--amp bf16`): the penalty is a gradient norm near 1 that is itself
    differentiated, and BF16's 8-bit mantissa would turn it into noise."""
    # Drawn on the CPU generator so that a checkpoint's CPU RNG state covers it (exact resume on GPU too).
    alpha = torch.rand(x_real.size(0), 1, 1, 1).to(x_real.device)
    with torch.autocast(x_real.device.type, enabled=False):
        x_real, x_fake = x_real.float(), x_fake.float()  # no-ops without autocast
        x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
        out_src, _ = D(x_hat)
        # create_graph: the penalty itself is differentiated w.r.t. D's weights (double backward).
        (grad,) = torch.autograd.grad(
            outputs=out_src, inputs=x_hat, grad_outputs=torch.ones_like(out_src), create_graph=True
        )
        norm = grad.flatten(1).pow(2).sum(dim=1).sqrt()
        return (norm - 1).pow(2).mean()


def _cls_logits(out_cls: Tensor, cls_slice: slice | None) -> Tensor:
    return out_cls if cls_slice is None else out_cls[:, cls_slice]


def d_loss(
    D: nn.Module,
    x_real: Tensor,
    x_fake: Tensor,
    label_org: Tensor,
    lambda_cls: float,
    lambda_gp: float,
    cls_kind: str,
    cls_slice: slice | None = None,
    augment: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Critic loss: -mean(D(real)) + mean(D(fake)) + lambda_cls * cls(real, org) + lambda_gp * GP.

    `x_fake` must already be detached from the generator's graph.
    """
    if augment:
        x_real, x_fake = augment(x_real), augment(x_fake)
    out_src, out_cls = D(x_real)
    loss_real = -out_src.mean()
    loss_cls = classification_loss(_cls_logits(out_cls, cls_slice), label_org, cls_kind)
    out_src_fake, _ = D(x_fake)
    loss_fake = out_src_fake.mean()
    loss_gp = gradient_penalty(D, x_real, x_fake)
    loss = loss_real + loss_fake + lambda_cls * loss_cls + lambda_gp * loss_gp
    logs = {
        "D/loss": loss.item(),
        "D/loss_real": loss_real.item(),
        "D/loss_fake": loss_fake.item(),
        "D/loss_cls": loss_cls.item(),
        "D/loss_gp": loss_gp.item(),
    }
    return loss, logs


def g_loss(
    G: nn.Module,
    D: nn.Module,
    x_real: Tensor,
    c_org: Tensor,
    c_trg: Tensor,
    label_trg: Tensor,
    lambda_cls: float,
    lambda_rec: float,
    cls_kind: str,
    cls_slice: slice | None = None,
    augment: Callable[[Tensor], Tensor] | None = None,
    lambda_id: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """Generator loss: -mean(D(G(x, c_trg))) + lambda_rec * L1(G(G(x, c_trg), c_org), x) + lambda_cls * cls
    [+ lambda_id * L1(G(x, c_org), x)].

    `c_org`/`c_trg` are the generator's full label vectors (with zeros and mask in joint mode);
    `label_trg` is the classification target for the current dataset's logit block. The identity term is
    not in the official recipe: with `lambda_id` 0 (the default) it is not even computed, so training stays
    exactly the official one; above 0 it asks the direct output, not only the round trip, to keep the input.
    """
    x_fake = G(x_real, c_trg)
    out_src, out_cls = D(augment(x_fake) if augment else x_fake)
    loss_fake = -out_src.mean()
    loss_cls = classification_loss(_cls_logits(out_cls, cls_slice), label_trg, cls_kind)
    x_rec = G(x_fake, c_org)
    loss_rec = (x_real - x_rec).abs().mean()
    loss = loss_fake + lambda_rec * loss_rec + lambda_cls * loss_cls
    logs = {"G/loss_fake": loss_fake.item(), "G/loss_rec": loss_rec.item(), "G/loss_cls": loss_cls.item()}
    if lambda_id > 0:
        loss_id = (G(x_real, c_org) - x_real).abs().mean()
        loss = loss + lambda_id * loss_id
        logs["G/loss_id"] = loss_id.item()
    return loss, {"G/loss": loss.item(), **logs}
