"""Losses on inputs with known answers: gradient penalty closed forms, classification vs manual formulas, WGAN terms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stargan_train.losses import classification_loss, d_loss, g_loss, gradient_penalty

B, C, H, W = 3, 3, 4, 4


class LinearCritic(nn.Module):
    """D(x) = <w, x> per sample (gradient w everywhere) with constant classification logits."""

    def __init__(self, w: torch.Tensor, logits: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.logits = logits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = (x * self.w).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1)
        return out, self.logits.expand(x.size(0), -1)


class QuadraticCritic(nn.Module):
    """D(x) = 0.5 * ||x||^2 per sample: its gradient at x_hat is x_hat itself."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * x.pow(2).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1), torch.zeros(x.size(0), 5)


def test_gradient_penalty_of_linear_critic_is_closed_form() -> None:
    torch.manual_seed(0)
    w = torch.randn(1, C, H, W)
    D = LinearCritic(w, torch.zeros(1, 5))
    x_real, x_fake = torch.randn(B, C, H, W), torch.randn(B, C, H, W)
    gp = gradient_penalty(D, x_real, x_fake)
    expected = (w.norm() - 1) ** 2  # the gradient is w wherever we interpolate
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)
    # Double backward: d GP / d w = 2 (||w|| - 1) w / ||w||
    (grad_w,) = torch.autograd.grad(gp, D.w)
    torch.testing.assert_close(grad_w, 2 * (w.norm() - 1) * w / w.norm(), rtol=1e-5, atol=1e-6)


def test_gradient_penalty_is_zero_for_unit_gradient_norm() -> None:
    w = torch.randn(1, C, H, W)
    D = LinearCritic(w / w.norm(), torch.zeros(1, 5))
    assert gradient_penalty(D, torch.randn(B, C, H, W), torch.randn(B, C, H, W)).item() == pytest.approx(0, abs=1e-10)


def test_gradient_penalty_interpolates_per_sample() -> None:
    x_real, x_fake = torch.randn(B, C, H, W), torch.randn(B, C, H, W)
    torch.manual_seed(5)
    gp = gradient_penalty(QuadraticCritic(), x_real, x_fake)
    torch.manual_seed(5)
    alpha = torch.rand(B, 1, 1, 1)  # one alpha per sample, drawn on the CPU generator
    x_hat = alpha * x_real + (1 - alpha) * x_fake
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


def test_celeba_classification_loss_is_bce_summed_over_attributes_per_image() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    s = torch.sigmoid(logits)
    manual = -(target * s.log() + (1 - target) * (1 - s).log()).sum() / 2
    assert classification_loss(logits, target, "celeba").item() == pytest.approx(manual.item(), rel=1e-6)


def test_rafd_classification_loss_is_cross_entropy_of_the_one_hot_index() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.0]])
    target = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    logp = logits.log_softmax(dim=1)
    manual = -(logp[0, 1] + logp[1, 2]) / 2
    assert classification_loss(logits, target, "rafd").item() == pytest.approx(manual.item(), rel=1e-6)


def test_unknown_classification_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="cls_kind"):
        classification_loss(torch.zeros(1, 2), torch.zeros(1, 2), "mnist")


def test_d_loss_combines_wgan_cls_and_gp_terms() -> None:
    w = torch.randn(1, C, H, W)
    D = LinearCritic(w / w.norm(), torch.zeros(1, 5))  # unit gradient: GP = 0
    x_real, x_fake = torch.randn(B, C, H, W), torch.randn(B, C, H, W)
    label = torch.tensor([[1.0, 0, 0, 1, 0]] * B)
    loss, logs = d_loss(D, x_real, x_fake, label, lambda_cls=2.0, lambda_gp=10.0, cls_kind="celeba")
    real, fake = D(x_real)[0].mean().item(), D(x_fake)[0].mean().item()
    cls = 5 * math.log(2)  # zero logits: log 2 per attribute, summed over 5, averaged over images
    assert logs["D/loss_real"] == pytest.approx(-real, rel=1e-5)
    assert logs["D/loss_fake"] == pytest.approx(fake, rel=1e-5)
    assert logs["D/loss_cls"] == pytest.approx(cls, rel=1e-5)
    assert logs["D/loss_gp"] == pytest.approx(0.0, abs=1e-9)
    assert loss.item() == pytest.approx(-real + fake + 2.0 * cls, rel=1e-5)
    assert logs["D/loss"] == pytest.approx(loss.item())


def test_g_loss_with_identity_generator_has_zero_reconstruction() -> None:
    class Identity(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return x * self.p

    w = torch.randn(1, C, H, W)
    D = LinearCritic(w, torch.zeros(1, 5))
    x = torch.randn(B, C, H, W)
    c = torch.zeros(B, 5)
    loss, logs = g_loss(Identity(), D, x, c, c, c, lambda_cls=1.0, lambda_rec=10.0, cls_kind="celeba")
    assert logs["G/loss_rec"] == pytest.approx(0.0, abs=1e-7)
    assert logs["G/loss_fake"] == pytest.approx(-D(x)[0].mean().item(), rel=1e-5)
    assert logs["G/loss_cls"] == pytest.approx(5 * math.log(2), rel=1e-5)
    assert loss.item() == pytest.approx(logs["G/loss_fake"] + logs["G/loss_cls"], rel=1e-5)


def test_identity_term_is_off_by_default_and_adds_lambda_times_l1() -> None:
    class Shift(nn.Module):  # G(x, c) = x + 0.25 * mean(c): the identity error is 0.25 * mean(c_org)
        def __init__(self) -> None:
            super().__init__()
            self.p = nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return x * self.p + 0.25 * c.mean(1).view(-1, 1, 1, 1)

    D = LinearCritic(torch.randn(1, C, H, W), torch.zeros(1, 5))
    x = torch.randn(B, C, H, W)
    c_org, c_trg = torch.ones(B, 5), torch.zeros(B, 5)
    off, logs_off = g_loss(Shift(), D, x, c_org, c_trg, c_trg, lambda_cls=1.0, lambda_rec=10.0, cls_kind="celeba")
    assert "G/loss_id" not in logs_off
    on, logs_on = g_loss(
        Shift(), D, x, c_org, c_trg, c_trg, lambda_cls=1.0, lambda_rec=10.0, cls_kind="celeba", lambda_id=2.0
    )
    assert logs_on["G/loss_id"] == pytest.approx(0.25, rel=1e-5)
    assert on.item() == pytest.approx(off.item() + 2.0 * 0.25, rel=1e-5)


def test_joint_mode_uses_only_the_current_datasets_logit_block() -> None:
    # 13 logits (the official joint D: c_dim + c2_dim, no mask): CelebA block 0 (log 2 per attribute), RaFD block
    # strongly right for class 3. The slices are the official out_cls[:, :c_dim] and out_cls[:, c_dim:].
    logits = torch.cat([torch.zeros(5), torch.tensor([0, 0, 0, 20.0, 0, 0, 0, 0])])
    D = LinearCritic(torch.zeros(1, C, H, W), logits.view(1, -1))
    x = torch.randn(B, C, H, W)
    rafd_label = torch.zeros(B, 8)
    rafd_label[:, 3] = 1
    _, logs = d_loss(D, x, x, rafd_label, 1.0, 0.0, "rafd", cls_slice=slice(5, 13))
    assert logs["D/loss_cls"] == pytest.approx(0.0, abs=1e-6)
    celeba_label = torch.ones(B, 5)
    _, logs = d_loss(D, x, x, celeba_label, 1.0, 0.0, "celeba", cls_slice=slice(0, 5))
    assert logs["D/loss_cls"] == pytest.approx(5 * math.log(2), rel=1e-5)
