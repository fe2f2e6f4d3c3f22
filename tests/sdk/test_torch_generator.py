"""The SDK's own copy of the official generator equals stargan_train's on the same weights, and refuses others."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stargan_sdk.backends.torch_generator import build_generator  # noqa: E402
from stargan_sdk.errors import BundleError  # noqa: E402
from stargan_train.model import Generator  # noqa: E402


@pytest.mark.parametrize(("conv_dim", "c_dim", "repeat_num"), [(8, 5, 2), (4, 15, 1)])
def test_same_outputs_as_the_training_generator(conv_dim: int, c_dim: int, repeat_num: int) -> None:
    torch.manual_seed(0)
    reference = Generator(conv_dim=conv_dim, c_dim=c_dim, repeat_num=repeat_num).eval()
    for p in reference.parameters():  # non-trivial affine norm parameters too
        p.data.normal_(0, 0.2)
    ours = build_generator(reference.state_dict(), conv_dim, c_dim, repeat_num)
    x, c = torch.rand(3, 3, 32, 32) * 2 - 1, torch.randint(0, 2, (3, c_dim)).float()
    with torch.no_grad():
        assert torch.allclose(ours(x, c), reference(x, c), atol=1e-6)


def test_weights_of_another_architecture_are_refused() -> None:
    state = Generator(conv_dim=8, c_dim=5, repeat_num=2).state_dict()
    with pytest.raises(BundleError, match="do not match the manifest's architecture"):
        build_generator(state, 8, 5, 3)  # one residual block missing from the file
    state["main.0.weight"] = state["main.0.weight"][:, :7]
    with pytest.raises(BundleError, match="wrong shape: main.0.weight"):
        build_generator(state, 8, 5, 2)
