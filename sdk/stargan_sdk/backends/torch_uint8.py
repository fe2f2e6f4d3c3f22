"""uint8 images in and out of a torch generator: normalise and denormalise where the generator runs.

Usage: out_u8 = run_uint8(torch, module, images_u8, labels, normalizer, device)  # [N, S, S, 3] -> [N, S, S, 3]
       fn = uint8_forward(torch, module, normalizer, device)  # the same arithmetic as one function (to compile)

On a GPU that is 4x less to copy each way than float32 NCHW (uint8 HWC crops up, uint8 down). The arithmetic is
the host's (`Normalizer.preprocess` / `postprocess`): the same float32 multiply, add, round-half-up and clip in
the same order, so results equal the float path's. The inductor backend compiles `uint8_forward` whole, so
the permute, cast and scale fuse into the first kernel that reads the image and the last op's epilogue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from stargan_sdk.images.imaging import Normalizer


def to_device(torch: Any, array: np.ndarray, device: Any) -> Any:
    """`array` as a tensor on `device`; to a GPU from page-locked memory, so the copy is a DMA transfer."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.pin_memory().to(device, non_blocking=True) if getattr(device, "type", str(device)) == "cuda" else t


def normalise(torch: Any, images: Any, scale: Any, shift: Any) -> Any:
    """uint8 [n, S, S, 3] -> float32 NCHW view (channels_last), the host's arithmetic: one multiply, one add."""
    return images.permute(0, 3, 1, 2).to(torch.float32) * scale + shift


def uint8_forward(torch: Any, forward: Callable[[Any, Any], Any], norm: Normalizer, device: Any) -> Callable:
    """`(uint8 [n, S, S, 3], float32 [n, c]) -> uint8 [n, S, S, 3]` around `forward` (float32 NCHW in and out),
    with the normalisation's constants on `device`."""
    scale, shift, out_scale, out_shift = (
        torch.from_numpy(a).to(device) for a in (norm.scale, norm.shift, norm.out_scale, norm.out_shift)
    )

    def run(images: Any, labels: Any) -> Any:
        x = normalise(torch, images, scale, shift)
        v = forward(x, labels).to(torch.float32) * out_scale + out_shift
        out = torch.floor(v + 0.5).clamp(0, 255).to(torch.uint8)
        return out.permute(0, 2, 3, 1).contiguous()

    return run


def run_uint8(
    torch: Any, forward: Any, images: np.ndarray, labels: np.ndarray, norm: Normalizer, device: Any
) -> np.ndarray:
    """uint8 [N, S, S, 3] RGB and float32 [N, c] labels -> edited uint8 [N, S, S, 3], computed on `device`."""
    with torch.inference_mode():
        u8, c = to_device(torch, images, device), to_device(torch, np.asarray(labels, np.float32), device)
        # NCHW-contiguous into the eager module: the layout its float path sees, so the same kernels run
        run = uint8_forward(torch, lambda x, lbl: forward(x.contiguous(), lbl), norm, device)
        return run(u8, c).cpu().numpy()
