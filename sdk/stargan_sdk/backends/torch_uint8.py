"""uint8 images in and out of a torch generator: normalise and denormalise where the generator runs.

Usage: out_u8 = run_uint8(torch, module, images_u8, labels, normalizer, device)  # [N, S, S, 3] -> [N, S, S, 3]

On a GPU that is 4x less to copy each way than float32 NCHW (uint8 HWC crops up, uint8 down). The arithmetic is
the host's (`Normalizer.preprocess` / `postprocess`): the same float32 multiply, add, round-half-up and clip in
the same order, so results equal the float path's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stargan_sdk.images.imaging import Normalizer


def run_uint8(
    torch: Any, forward: Any, images: np.ndarray, labels: np.ndarray, norm: Normalizer, device: Any
) -> np.ndarray:
    """uint8 [N, S, S, 3] RGB and float32 [N, c] labels -> edited uint8 [N, S, S, 3], computed on `device`."""
    cuda = getattr(device, "type", str(device)) == "cuda"
    with torch.inference_mode():
        u8 = torch.from_numpy(np.ascontiguousarray(images))
        c = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))
        if cuda:  # page-locked, so the copies are DMA transfers
            u8, c = (t.pin_memory().to(device, non_blocking=True) for t in (u8, c))
        scale, shift, out_scale, out_shift = (
            torch.from_numpy(a).to(device) for a in (norm.scale, norm.shift, norm.out_scale, norm.out_shift)
        )
        x = u8.permute(0, 3, 1, 2).to(torch.float32).mul_(scale).add_(shift)
        y = forward(x.contiguous(), c).to(torch.float32)
        v = y.mul_(out_scale).add_(out_shift).add_(0.5).floor_().clamp_(0, 255)
        out = v.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return out.cpu().numpy()
