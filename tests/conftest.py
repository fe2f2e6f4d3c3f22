"""Shared fixtures: tiny seeded models in official checkpoint format; gpu/tensorrt markers skip cleanly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TINY_SIZE = 32
TINY_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


def _cuda_available() -> tuple[bool, str]:
    try:
        import torch

        if torch.cuda.is_available():
            return True, ""
    except ImportError:
        pass
    try:
        from cuda.bindings import runtime as cudart

        err, count = cudart.cudaGetDeviceCount()
        if int(err) == 0 and count > 0:
            return True, ""
    except ImportError:
        pass
    return False, "no CUDA GPU on this machine"


def _tensorrt_available() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, "tensorrt is not installed (pip install stargan[tensorrt] on a GPU machine)"
    return _cuda_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_gpu, gpu_reason = _cuda_available()
    has_trt, trt_reason = _tensorrt_available()
    for item in items:
        if "tensorrt" in item.keywords and not has_trt:
            item.add_marker(pytest.mark.skip(reason=trt_reason))
        elif "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason=gpu_reason))


def _official_state_dict(module) -> dict:
    """A state_dict as the official code saves it: InstanceNorm running stats included."""
    import torch

    sd = {k: v.clone() for k, v in module.state_dict().items()}
    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.InstanceNorm2d):
            sd[f"{name}.running_mean"] = torch.zeros(sub.num_features)
            sd[f"{name}.running_var"] = torch.ones(sub.num_features)
            sd[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return sd


@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded tiny generator + discriminator (32 px, conv_dim 8, c_dim 5) as official `1000-{G,D}.ckpt`.

    Returns the path of the G file; the D file lies beside it. Weights are perturbed away from the
    default init (affine IN parameters included) so parity tests exercise every parameter.
    """
    import torch

    from stargan_train.model import Discriminator, Generator

    torch.manual_seed(0)
    G = Generator(conv_dim=8, c_dim=5, repeat_num=2)
    D = Discriminator(image_size=TINY_SIZE, conv_dim=8, c_dim=5, repeat_num=3)
    with torch.no_grad():
        for p in list(G.parameters()) + list(D.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("official")
    torch.save(_official_state_dict(G), folder / "1000-G.ckpt")
    torch.save(D.state_dict(), folder / "1000-D.ckpt")
    return folder / "1000-G.ckpt"
