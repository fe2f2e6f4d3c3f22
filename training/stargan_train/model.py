"""StarGAN generator and discriminator, layer-for-layer as in the paper and the official `yunjey/stargan`.

Usage: G = Generator(conv_dim=64, c_dim=5, repeat_num=6); y = G(x, c)  # x [N,3,H,W] in [-1,1], c [N,c_dim]

The `state_dict` key names and shapes match the official code (`main.0.weight` ... `main.21.weight` for
the generator, `main.*`, `conv1`, `conv2` for the discriminator), so official checkpoints load. The one
deliberate difference: InstanceNorm keeps no running statistics. The official code never calls
`G.eval()`, so its published results use per-instance statistics; `track_running_stats=False` makes that
the behaviour in every mode (train, eval, ONNX export) instead of depending on a mode flag.
"""

from __future__ import annotations

import torch
from torch import nn

from stargan_train.config import DiscriminatorConfig, GeneratorConfig


def _instance_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    """Conv-IN-ReLU-Conv-IN with an identity skip (keys `main.0`, `main.1`, `main.3`, `main.4`)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=False),
            _instance_norm(dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=False),
            _instance_norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class Generator(nn.Module):
    """Encoder (7x7 conv, two stride-2 convs), `repeat_num` residual blocks, decoder, tanh.

    Args:
        conv_dim: channels of the first layer (64 in the paper).
        c_dim: length of the target-domain label vector (5 CelebA, 8 RaFD, 15 joint).
        repeat_num: number of residual blocks in the bottleneck (6 in the paper).
    """

    def __init__(self, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6) -> None:
        super().__init__()
        self.config = GeneratorConfig(conv_dim=conv_dim, c_dim=c_dim, repeat_num=repeat_num)
        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, kernel_size=7, stride=1, padding=3, bias=False),
            _instance_norm(conv_dim),
            nn.ReLU(inplace=True),
        ]
        dim = conv_dim
        for _ in range(2):  # down-sampling
            layers += [
                nn.Conv2d(dim, dim * 2, kernel_size=4, stride=2, padding=1, bias=False),
                _instance_norm(dim * 2),
                nn.ReLU(inplace=True),
            ]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):  # up-sampling
            layers += [
                nn.ConvTranspose2d(dim, dim // 2, kernel_size=4, stride=2, padding=1, bias=False),
                _instance_norm(dim // 2),
                nn.ReLU(inplace=True),
            ]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, kernel_size=7, stride=1, padding=3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: GeneratorConfig) -> Generator:
        return cls(conv_dim=config.conv_dim, c_dim=config.c_dim, repeat_num=config.repeat_num)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # Tile the label over H x W and append it as extra input channels.
        c = c.view(c.size(0), c.size(1), 1, 1).expand(-1, -1, x.size(2), x.size(3))
        return self.main(torch.cat([x, c.to(x.dtype)], dim=1))


class Discriminator(nn.Module):
    """PatchGAN critic (`conv1`: real/fake map) with an auxiliary domain classifier (`conv2`: logits).

    Args:
        image_size: input resolution; must be divisible by 2**repeat_num (the classifier kernel).
        conv_dim: channels of the first layer.
        c_dim: number of domain logits: the label length, except in joint CelebA+RaFD training, where the
            mask entries are not classified (5 + 8 = 13 logits for a 15-entry label, as officially).
        repeat_num: number of stride-2 convolutions.
    """

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6) -> None:
        super().__init__()
        self.config = DiscriminatorConfig(image_size=image_size, conv_dim=conv_dim, c_dim=c_dim, repeat_num=repeat_num)
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim, 1, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim, c_dim, kernel_size=self.config.cls_kernel_size, bias=False)

    @classmethod
    def from_config(cls, config: DiscriminatorConfig) -> Discriminator:
        return cls(config.image_size, config.conv_dim, config.c_dim, config.repeat_num)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        out_src = self.conv1(h)
        out_cls = self.conv2(h)
        return out_src, out_cls.view(out_cls.size(0), out_cls.size(1))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Domain logits only: the head exported as `classifier.onnx`."""
        return self.forward(x)[1]


class DomainClassifier(nn.Module):
    """Wraps a discriminator so that `forward(image)` returns attribute logits (for export)."""

    def __init__(self, discriminator: Discriminator) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator.classify(x)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
