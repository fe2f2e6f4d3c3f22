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


def official_discriminator_layout(image_size: int, conv: int, c_dim: int, repeat: int) -> dict[str, tuple[int, ...]]:
    """yunjey/stargan model.py's Discriminator state_dict shapes, written out by hand (no code of ours).

    For joint training the official solver passes c_dim + c2_dim (5 + 8 = 13): the mask is not classified.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    channels = [3] + [conv * 2**i for i in range(repeat)]
    for layer in range(repeat):  # main.0, main.2, ...: stride-2 4x4 convs with bias, LeakyReLU between
        shapes[f"main.{2 * layer}.weight"] = (channels[layer + 1], channels[layer], 4, 4)
        shapes[f"main.{2 * layer}.bias"] = (channels[layer + 1],)
    kernel = image_size // 2**repeat
    shapes["conv1.weight"] = (1, channels[-1], 3, 3)
    shapes["conv2.weight"] = (c_dim, channels[-1], kernel, kernel)
    return shapes


@pytest.fixture(scope="session")
def official_joint_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An official joint (`--dataset Both`) pair `1000-{G,D}.ckpt` at 32 px, conv_dim 8: G takes 5 + 8 + 2 labels
    (one residual block), D has 5 + 8 logits and three stride-2 convs, its tensors laid out by hand."""
    import torch

    from stargan_train.model import Generator

    torch.manual_seed(1)
    G = Generator(conv_dim=8, c_dim=15, repeat_num=1)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.05 * torch.randn_like(p))
    D = {k: 0.1 * torch.randn(shape) for k, shape in official_discriminator_layout(TINY_SIZE, 8, 13, 3).items()}
    folder = tmp_path_factory.mktemp("official-joint")
    torch.save(_official_state_dict(G), folder / "1000-G.ckpt")
    torch.save(D, folder / "1000-D.ckpt")
    return folder / "1000-G.ckpt"


@pytest.fixture(scope="session")
def official_rafd_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An official RaFD-mode (`--dataset RaFD`) pair `1000-{G,D}.ckpt` at 32 px, conv_dim 8: G takes the 8
    expressions (one residual block), D has 8 logits, its tensors laid out by hand."""
    import torch

    from stargan_train.model import Generator

    torch.manual_seed(2)
    G = Generator(conv_dim=8, c_dim=8, repeat_num=1)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.05 * torch.randn_like(p))
    D = {k: 0.1 * torch.randn(shape) for k, shape in official_discriminator_layout(TINY_SIZE, 8, 8, 3).items()}
    folder = tmp_path_factory.mktemp("official-rafd")
    torch.save(_official_state_dict(G), folder / "1000-G.ckpt")
    torch.save(D, folder / "1000-D.ckpt")
    return folder / "1000-G.ckpt"
