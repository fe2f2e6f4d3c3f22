"""The StarGAN generator in plain PyTorch, built from a bundle's `generator.safetensors` (no pickle, ever).

Usage: module = load_generator(Bundle.open("models/toyfaces-64"))
       y = module(x, c)  # float32 on the CPU (backends cast it)

The SDK must not import `stargan_train`, so the official architecture is written here once more, with the
same `state_dict` keys (`main.0.weight` ... as in `yunjey/stargan`); a test runs both on the same weights.
Two deliberate choices for inference: every InstanceNorm computes its statistics in float32 whatever the
module's dtype (FP16 variance overflows; compilers fuse the casts into the norm kernel), and `forward` takes
and returns float32 so the engine boundary stays the bundle's contract. Imports torch: load it lazily.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stargan_sdk.bundle.constants import WEIGHTS_KIND
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.errors import BundleError


class InstanceNorm32(nn.Module):
    """Per-instance InstanceNorm (no running statistics) computed in float32, returned in the input dtype."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.instance_norm(x.float(), weight=self.weight.float(), bias=self.bias.float(), eps=self.eps)
        return y.to(x.dtype)


class _Residual(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            InstanceNorm32(dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            InstanceNorm32(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class StarGANGenerator(nn.Module):
    """Encoder, `repeat_num` residual blocks, decoder, tanh; label tiled over H x W as extra input channels.

    Args:
        conv_dim: channels of the first layer (64 in the paper).
        c_dim: label length.
        repeat_num: residual blocks (6 in the paper).
    """

    def __init__(self, conv_dim: int, c_dim: int, repeat_num: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False),
            InstanceNorm32(conv_dim),
            nn.ReLU(inplace=True),
        ]
        dim = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), InstanceNorm32(dim * 2), nn.ReLU(inplace=True)]
            dim *= 2
        layers += [_Residual(dim) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False),
                InstanceNorm32(dim // 2),
                nn.ReLU(inplace=True),
            ]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        dtype = self.main[0].weight.dtype
        n, _, h, w = x.shape
        tiled = c.to(dtype).view(n, c.shape[1], 1, 1).expand(n, c.shape[1], h, w)
        return self.main(torch.cat([x.to(dtype), tiled], dim=1)).float()


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (a JSON header and raw bytes: nothing in it can run)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise BundleError(f"{path.name} is not a readable safetensors file: {e}") from None


def build_generator(state: dict[str, torch.Tensor], conv_dim: int, c_dim: int, repeat_num: int) -> StarGANGenerator:
    """A float32 generator holding `state`; BundleError when the keys or shapes do not fit the manifest."""
    module = StarGANGenerator(conv_dim, c_dim, repeat_num)
    want = module.state_dict()
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    wrong = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or extra or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:4])}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
            if keys
        )
        raise BundleError(
            f"generator weights do not match the manifest's architecture "
            f"(conv_dim {conv_dim}, c_dim {c_dim}, repeat_num {repeat_num}): {detail}; re-export the bundle"
        )
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return module.eval().requires_grad_(False)


def load_generator(bundle: Bundle | str | Path, manifest: Manifest | None = None) -> StarGANGenerator:
    """The bundle's generator in float32 on the CPU, its checksum verified first."""
    bundle = Bundle.of(bundle, manifest)
    manifest = bundle.manifest
    art = manifest.artifact(role="generator", kind=WEIGHTS_KIND)
    if art is None:
        raise BundleError(
            "the bundle has no generator.safetensors (weights for the torch backends); "
            "re-export it with stargan-export build"
        )
    path = bundle.verified(art)  # header shapes vs the manifest: before allocating the module
    g = manifest.generator
    return build_generator(read_weights(path), int(g["conv_dim"]), int(g["c_dim"]), int(g["repeat_num"]))
