"""generator.pt2: the torch.export program round-trips, keeps a dynamic batch and moves to other devices."""

from __future__ import annotations

import pytest
import torch

from stargan_export.parity import sample_images, sample_labels
from stargan_export.torch_program import load_pt2
from stargan_sdk.constants import GENERATOR_PT2


@pytest.mark.parametrize("batch", [1, 7])
def test_program_equals_torch(tiny_bundle, tiny_generator, batch):
    program = load_pt2(tiny_bundle / GENERATOR_PT2)
    image = torch.from_numpy(sample_images(batch, 32, seed=batch))
    label = torch.from_numpy(sample_labels(batch, 5, seed=batch))
    with torch.no_grad():
        assert torch.allclose(program(image, label), tiny_generator(image, label), atol=1e-5, rtol=0)


def test_program_moves_to_another_device(tiny_bundle):
    """The graph asserts its trace device; load_pt2 applies move_to_device_pass (meta stands in for cuda)."""
    program = load_pt2(tiny_bundle / GENERATOR_PT2, device="meta")
    out = program(torch.empty(3, 3, 32, 32, device="meta"), torch.empty(3, 5, device="meta"))
    assert out.device.type == "meta" and tuple(out.shape) == (3, 3, 32, 32)


@pytest.mark.gpu
def test_program_runs_on_cuda(tiny_bundle, tiny_generator):
    program = load_pt2(tiny_bundle / GENERATOR_PT2, device="cuda")
    image, label = torch.from_numpy(sample_images(2, 32)), torch.from_numpy(sample_labels(2, 5))
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # compare IEEE FP32 with IEEE FP32, not TF32 convolutions
    try:
        with torch.no_grad():
            out = program(image.cuda(), label.cuda()).cpu()
            expected = tiny_generator(image, label)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    err = (out - expected).abs().max().item()
    assert err < 1e-4, f"pt2 on CUDA differs from torch on CPU by {err}"
