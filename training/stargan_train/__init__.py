"""StarGAN training stage: model, data, losses, trainer, checkpoints, evaluation."""

from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig
from stargan_train.model import Discriminator, Generator

__all__ = [
    "DataConfig",
    "DiscriminatorConfig",
    "Discriminator",
    "Generator",
    "GeneratorConfig",
    "RunConfig",
    "TrainConfig",
]
