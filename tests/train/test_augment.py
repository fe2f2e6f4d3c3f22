"""DiffAugment for the critic: exact shifts and erased squares, gradients through both, the policy parser."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stargan_train.augment import DiffAugment, cutout, translate
from stargan_train.config import RunConfig, TrainConfig, parse_augment
from stargan_train.losses import d_loss, g_loss
from stargan_train.model import Discriminator, Generator


def _images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 2 - 1 + 3  # values in [2, 4]: never 0, so fills are visible


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def _offsets(original: torch.Tensor, shifted: torch.Tensor, sy: int, sx: int) -> list[tuple[int, int]]:
    """Every (dy, dx) within [-sy, sy] x [-sx, sx] that turns `original` into exactly `shifted`."""
    return [
        (dy, dx)
        for dy in range(-sy, sy + 1)
        for dx in range(-sx, sx + 1)
        if torch.equal(shifted, _shifted(original, dy, dx))
    ]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), h=st.integers(4, 24), w=st.integers(4, 24), seed=st.integers(0, 10_000))
def test_translate_shifts_each_image_by_an_offset_within_range_and_fills_with_zero(
    n: int, h: int, w: int, seed: int
) -> None:
    x = _images(n, h, w, seed)
    torch.manual_seed(seed)
    y = translate(x)
    sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
    for i in range(n):
        matches = _offsets(x[i], y[i], sy, sx)
        assert len(matches) == 1, matches


def test_translate_uses_every_offset_in_range() -> None:
    x = _images(400, 16, 16, 0)
    torch.manual_seed(0)
    y = translate(x)
    seen = {_offsets(x[i], y[i], 2, 2)[0] for i in range(400)}
    assert len(seen) == 25  # all (dy, dx) in [-2, 2]^2 for a 16 px side


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), h=st.integers(2, 24), w=st.integers(2, 24), seed=st.integers(0, 10_000))
def test_cutout_erases_one_clipped_square_and_keeps_the_rest(n: int, h: int, w: int, seed: int) -> None:
    x = _images(n, h, w, seed)
    torch.manual_seed(seed)
    y = cutout(x)
    ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    for i in range(n):
        hole = (y[i] == 0).all(dim=0)
        assert torch.equal(y[i][:, ~hole], x[i][:, ~hole])  # untouched outside the hole
        rows, cols = hole.any(dim=1).nonzero().flatten(), hole.any(dim=0).nonzero().flatten()
        assert len(rows) and len(cols)  # the centre is inside the image, so something is always erased
        # A solid rectangle, at most ch x cw, and full-size unless clipped by a border.
        assert hole.sum() == len(rows) * len(cols)
        assert len(rows) == ch or rows[0] == 0 or rows[-1] == h - 1
        assert len(cols) == cw or cols[0] == 0 or cols[-1] == w - 1
        assert len(rows) <= ch and len(cols) <= cw


def test_gradients_flow_through_kept_pixels_only() -> None:
    x = _images(2, 16, 16, 1).requires_grad_(True)
    torch.manual_seed(3)
    y = DiffAugment("cutout,translation")(x)
    y.sum().backward()
    assert x.grad is not None
    assert set(x.grad.unique().tolist()) == {0.0, 1.0}  # every pixel either reaches the output once or not at all
    assert int(x.grad.sum()) == int((y != 0).sum())


def test_policy_parsing_is_canonical_and_rejects_unknown_names() -> None:
    assert parse_augment("") == () and parse_augment([]) == ()
    assert parse_augment("cutout, translation") == ("translation", "cutout")
    assert parse_augment(["cutout", "cutout"]) == ("cutout",)
    with pytest.raises(ValueError, match="unknown augmentation.*'color'.*translation, cutout"):
        parse_augment("translation,color")
    with pytest.raises(ValueError, match="unknown augmentation"):
        TrainConfig(augment="flip")  # type: ignore[arg-type]
    empty = DiffAugment()
    x = _images(1, 8, 8, 0)
    assert not empty and empty(x) is x


def test_policy_survives_the_config_json_round_trip() -> None:
    cfg = RunConfig(train=TrainConfig(augment="cutout,translation", init_weights="runs/a"))  # type: ignore[arg-type]
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.train.augment == ("translation", "cutout")


def test_losses_show_the_critic_only_augmented_images() -> None:
    torch.manual_seed(0)
    G, D = Generator(8, 5, 1), Discriminator(32, 8, 5, 3)
    x, c = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 1]])
    seen: list[torch.Tensor] = []
    D_forward = D.forward
    D.forward = lambda img: (seen.append(img.detach().clone()), D_forward(img))[1]  # type: ignore[method-assign]

    def mark(img: torch.Tensor) -> torch.Tensor:
        return img + 100  # a transform no real or generated image can match

    fake = G(x, c.flip(0)).detach()
    d_loss(D, x, fake, c, 1.0, 10.0, "celeba", augment=mark)
    assert torch.equal(seen[0], x + 100) and torch.equal(seen[1], fake + 100)
    alpha_mix = seen[2]  # gradient-penalty interpolates lie between the augmented pair
    assert bool(
        ((alpha_mix >= torch.minimum(x, fake) + 100 - 1e-5) & (alpha_mix <= torch.maximum(x, fake) + 100 + 1e-5)).all()
    )
    seen.clear()
    g_loss(G, D, x, c, c.flip(0), c.flip(0), 1.0, 10.0, "celeba", augment=mark)
    assert len(seen) == 1 and bool((seen[0] > 50).all())
