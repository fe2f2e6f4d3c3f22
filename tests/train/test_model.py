"""Generator/Discriminator: the official state_dict layout, per-instance InstanceNorm, config validation."""

from __future__ import annotations

import pytest
import torch

from stargan_train.config import (
    DataConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    RunConfig,
    classifier_names,
    domain_names,
)
from stargan_train.model import Discriminator, DomainClassifier, Generator, count_parameters


def official_generator_shapes(c_dim: int, conv: int = 64, repeat: int = 6) -> dict[str, tuple[int, ...]]:
    """The official yunjey/stargan Generator's parameter shapes (running stats excluded), written out by hand."""
    shapes = {
        "main.0.weight": (conv, 3 + c_dim, 7, 7),
        "main.1.weight": (conv,),
        "main.1.bias": (conv,),
        "main.3.weight": (2 * conv, conv, 4, 4),
        "main.4.weight": (2 * conv,),
        "main.4.bias": (2 * conv,),
        "main.6.weight": (4 * conv, 2 * conv, 4, 4),
        "main.7.weight": (4 * conv,),
        "main.7.bias": (4 * conv,),
    }
    for i in range(9, 9 + repeat):
        for j in (0, 3):
            shapes[f"main.{i}.main.{j}.weight"] = (4 * conv, 4 * conv, 3, 3)
            shapes[f"main.{i}.main.{j + 1}.weight"] = (4 * conv,)
            shapes[f"main.{i}.main.{j + 1}.bias"] = (4 * conv,)
    up = 9 + repeat
    shapes |= {
        f"main.{up}.weight": (4 * conv, 2 * conv, 4, 4),
        f"main.{up + 1}.weight": (2 * conv,),
        f"main.{up + 1}.bias": (2 * conv,),
        f"main.{up + 3}.weight": (2 * conv, conv, 4, 4),
        f"main.{up + 4}.weight": (conv,),
        f"main.{up + 4}.bias": (conv,),
        f"main.{up + 6}.weight": (3, conv, 7, 7),
    }
    return shapes


@pytest.mark.parametrize("c_dim", [5, 8, 15])
def test_generator_matches_the_official_layout(c_dim: int) -> None:
    G = Generator(conv_dim=64, c_dim=c_dim, repeat_num=6)
    got = {k: tuple(v.shape) for k, v in G.state_dict().items()}
    assert got == official_generator_shapes(c_dim)
    assert "main.21.weight" in got


def test_generator_cost_is_the_papers() -> None:
    assert count_parameters(Generator()) == 8_430_528  # 8.43 M


@pytest.mark.parametrize(("image_size", "kernel"), [(128, 2), (256, 4)])
@pytest.mark.parametrize("c_dim", [5, 8, 13])  # CelebA, RaFD, joint (c_dim + c2_dim: the mask is not classified)
def test_discriminator_matches_the_official_layout(image_size: int, kernel: int, c_dim: int) -> None:
    D = Discriminator(image_size=image_size, conv_dim=64, c_dim=c_dim, repeat_num=6)
    got = {k: tuple(v.shape) for k, v in D.state_dict().items()}
    expected = {}
    channels = [3, 64, 128, 256, 512, 1024, 2048]
    for layer in range(6):
        expected[f"main.{2 * layer}.weight"] = (channels[layer + 1], channels[layer], 4, 4)
        expected[f"main.{2 * layer}.bias"] = (channels[layer + 1],)
    expected["conv1.weight"] = (1, 2048, 3, 3)
    expected["conv2.weight"] = (c_dim, 2048, kernel, kernel)
    assert got == expected
    src, cls = D(torch.zeros(2, 3, image_size, image_size))
    assert src.shape == (2, 1, image_size // 64, image_size // 64) and cls.shape == (2, c_dim)


def test_instance_norm_uses_per_instance_statistics_in_every_mode() -> None:
    """An image's output must not depend on its batch mates, in train() and eval() alike (official behaviour)."""
    torch.manual_seed(0)
    G = Generator(conv_dim=8, c_dim=5, repeat_num=1)
    x, c = torch.randn(3, 3, 32, 32), torch.rand(3, 5)
    for mode in (G.train, G.eval):
        mode()
        with torch.no_grad():
            alone = G(x[:1], c[:1])
            together = G(x, c)[:1]
        torch.testing.assert_close(alone, together, atol=1e-5, rtol=0)
    assert not any("running" in k for k in G.state_dict())


def test_output_range_and_label_tiling() -> None:
    torch.manual_seed(1)
    G = Generator(conv_dim=8, c_dim=5, repeat_num=1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = G(x, torch.zeros(2, 5)), G(x, torch.ones(2, 5))
    assert a.abs().max() <= 1 and not torch.allclose(a, b)  # tanh output; the label changes the result


def test_domain_classifier_returns_the_discriminator_logits() -> None:
    D = Discriminator(image_size=32, conv_dim=8, c_dim=5, repeat_num=3)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(DomainClassifier(D)(x), D(x)[1])


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ValueError, match="not divisible by 2\\*\\*d_repeat_num"):
        DiscriminatorConfig(image_size=32, repeat_num=6)
    with pytest.raises(ValueError, match="dataset must be one of"):
        DataConfig(dataset="imagenet")
    with pytest.raises(ValueError, match="c_dim must be > 0"):
        GeneratorConfig(c_dim=0)
    cfg = RunConfig(data=DataConfig(dataset="both"))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert len(domain_names(cfg.data)) == 15 and domain_names(cfg.data)[-2:] == ["mask_celeba", "mask_rafd"]
    assert classifier_names(cfg.data) == domain_names(cfg.data)[:13]  # D classifies no mask entries
    assert classifier_names(DataConfig(dataset="rafd")) == domain_names(DataConfig(dataset="rafd"))
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        RunConfig.from_dict({"train": {"batchsize": 3}})
