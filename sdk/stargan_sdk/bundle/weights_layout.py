"""The generator's safetensors layout implied by the manifest, checked on the file's JSON header before torch runs.

Usage: check_weights_header(Path("generator.safetensors"), manifest.generator)  # BundleError on any mismatch

The torch backends build the module from the manifest's conv_dim/c_dim/repeat_num; checking the header first
means a manifest claiming conv_dim 4096 (billions of parameters) is refused without allocating anything.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from stargan_sdk.errors import BundleError

HEADER_MAX_BYTES = 1 << 20  # the real header is a few kB


def generator_layout(conv_dim: int, c_dim: int, repeat_num: int) -> dict[str, tuple[int, ...]]:
    """state_dict key -> shape of the official StarGAN generator (torch_generator.StarGANGenerator)."""
    out: dict[str, tuple[int, ...]] = {}
    i, dim = 0, conv_dim

    def block(conv: tuple[int, ...], channels: int, prefix: str = "main.") -> None:
        nonlocal i
        out[f"{prefix}{i}.weight"] = conv
        out[f"{prefix}{i + 1}.weight"] = out[f"{prefix}{i + 1}.bias"] = (channels,)
        i += 3  # conv, norm, relu

    block((conv_dim, 3 + c_dim, 7, 7), conv_dim)
    for _ in range(2):
        block((dim * 2, dim, 4, 4), dim * 2)
        dim *= 2
    for _ in range(repeat_num):
        p = f"main.{i}.main."
        out[p + "0.weight"], out[p + "3.weight"] = (dim, dim, 3, 3), (dim, dim, 3, 3)
        out[p + "1.weight"] = out[p + "1.bias"] = out[p + "4.weight"] = out[p + "4.bias"] = (dim,)
        i += 1
    for _ in range(2):
        block((dim, dim // 2, 4, 4), dim // 2)  # ConvTranspose2d weights are [in, out, k, k]
        dim //= 2
    out[f"main.{i}.weight"] = (3, dim, 7, 7)
    return out


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors header (8-byte little-endian length, then JSON), no tensor read."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > HEADER_MAX_BYTES:
                raise BundleError(f"{path.name} is not a readable safetensors file (a {size}-byte header)")
            header = json.loads(f.read(size))
        return {k: tuple(int(d) for d in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except BundleError:
        raise
    except (OSError, ValueError, struct.error, TypeError, KeyError, AttributeError) as e:
        raise BundleError(f"{path.name} is not a readable safetensors file: {str(e)[:200]}") from None


def check_weights_header(path: Path, generator: dict[str, int]) -> None:
    want = generator_layout(int(generator["conv_dim"]), int(generator["c_dim"]), int(generator["repeat_num"]))
    got = safetensors_shapes(path)
    if got != want:
        bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        raise BundleError(
            f"{path.name} does not match the manifest's generator (conv_dim {generator['conv_dim']}, "
            f"c_dim {generator['c_dim']}, repeat_num {generator['repeat_num']}): "
            f"{', '.join(bad[:4])} differ; refused before building the model — re-export the bundle"
        )
