"""Frozen configuration dataclasses, one per concern, serialised into checkpoints as plain JSON.

Usage: cfg = RunConfig.from_dict(json.load(open("run/config.json"))); cfg.generator.c_dim
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

CELEBA_DEFAULT_ATTRS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
RAFD_EXPRESSIONS: tuple[str, ...] = (
    "angry",
    "contemptuous",
    "disgusted",
    "fearful",
    "happy",
    "neutral",
    "sad",
    "surprised",
)
DATASETS: tuple[str, ...] = ("celeba", "rafd", "both", "toyfaces")
AUGMENTATIONS: tuple[str, ...] = ("translation", "cutout")  # what `augment.DiffAugment` implements
LR_SCHEDULES: tuple[str, ...] = ("paper", "official")  # see `schedule.py`
MASK_NAMES: tuple[str, ...] = ("mask_celeba", "mask_rafd")  # joint mode's dataset mask: G input, never classified


def parse_augment(policy: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'translation,cutout' (or a sequence) -> a validated tuple in canonical order; '' -> ()."""
    names = policy.replace(",", " ").split() if isinstance(policy, str) else list(policy)
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(
            f"unknown augmentation(s) {', '.join(map(repr, unknown))}; choose from {', '.join(AUGMENTATIONS)}"
        )
    return tuple(a for a in AUGMENTATIONS if a in names)


@dataclass(frozen=True)
class GeneratorConfig:
    conv_dim: int = 64
    c_dim: int = 5
    repeat_num: int = 6

    def __post_init__(self) -> None:
        _require_positive(self, "conv_dim", "c_dim")
        if self.repeat_num < 0:
            raise ValueError(f"repeat_num must be >= 0, got {self.repeat_num}")


@dataclass(frozen=True)
class DiscriminatorConfig:
    image_size: int = 128
    conv_dim: int = 64
    c_dim: int = 5
    repeat_num: int = 6

    def __post_init__(self) -> None:
        _require_positive(self, "image_size", "conv_dim", "c_dim", "repeat_num")
        if self.image_size % (2**self.repeat_num):
            raise ValueError(
                f"image_size {self.image_size} is not divisible by 2**d_repeat_num = {2**self.repeat_num}; "
                f"the discriminator's classifier kernel would not be an integer"
            )

    @property
    def cls_kernel_size(self) -> int:
        return self.image_size // (2**self.repeat_num)


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are prepared (official semantics)."""

    dataset: str = "celeba"
    celeba_image_dir: str = "data/celeba/images"
    attr_path: str = "data/celeba/list_attr_celeba.txt"
    rafd_image_dir: str = "data/RaFD/train"
    selected_attrs: tuple[str, ...] = CELEBA_DEFAULT_ATTRS
    celeba_crop_size: int = 178
    rafd_crop_size: int = 256
    image_size: int = 128
    test_count: int = 2000  # CelebA images held out for testing (the official split holds out 1999: an off-by-one)
    seed: int = 1234  # shuffles the CelebA list before the split, as the official code does
    num_workers: int = 1
    rafd_test_dir: str = ""  # empty: the sibling of rafd_image_dir ending in "test"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        object.__setattr__(self, "selected_attrs", tuple(self.selected_attrs))
        _require_positive(self, "celeba_crop_size", "rafd_crop_size", "image_size")


AMP_MODES = ("off", "bf16")  # no FP16: it needs loss scaling, and the gradient penalty's double backward overflows


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule and loss weights (paper defaults)."""

    batch_size: int = 16
    num_iters: int = 200_000
    num_iters_decay: int = 100_000
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    n_critic: int = 5
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    lambda_id: float = 0.0  # L1(G(x, c_org), x): not in the official recipe (0 keeps it exact); sharpens edits
    lr_schedule: str = "paper"  # "paper": linear to 0 over num_iters_decay; "official": today's yunjey/stargan steps
    lr_update_step: int = 1000  # iterations between the "official" schedule's lr steps (official --lr_update_step)
    augment: tuple[str, ...] = ()  # DiffAugment policy for every critic input; () = the official recipe
    init_weights: str = ""  # start G and D from this checkpoint (fresh optimisers, iteration 0); "" = random init
    fresh_critic: bool = False  # with init_weights: take only G from it; D starts from its seeded random init
    critic_warmup: int = 0  # iterations at the start that train only D (a fresh critic learns before it judges G)
    amp: str = "off"  # "bf16": autocast G and D forward passes (the gradient penalty stays FP32); "off" is exact
    channels_last: bool = False  # NHWC memory format for G, D and the batches (faster convolutions on GPUs)
    seed: int = 0
    device: str = "auto"
    log_step: int = 10
    sample_step: int = 1000
    model_save_step: int = 10_000
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        _require_positive(
            self, "batch_size", "num_iters", "n_critic", "log_step", "sample_step", "model_save_step", "lr_update_step"
        )
        if not self.lambda_id >= 0:
            raise ValueError(f"lambda_id must be >= 0, got {self.lambda_id}")
        if self.fresh_critic and not self.init_weights:
            raise ValueError("fresh_critic needs init_weights: a run without them starts every network fresh")
        if not 0 <= self.critic_warmup < self.num_iters:
            raise ValueError(f"critic_warmup must be in [0, num_iters), got {self.critic_warmup}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0 <= self.num_iters_decay <= self.num_iters:
            raise ValueError(f"num_iters_decay must be in [0, num_iters], got {self.num_iters_decay}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        object.__setattr__(self, "augment", parse_augment(self.augment))


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; stored in every checkpoint and as `config.json` in the run dir."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["data"]["selected_attrs"] = list(self.data.selected_attrs)
        out["train"]["augment"] = list(self.train.augment)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        def build(kind: type, values: dict[str, Any] | None) -> Any:
            values = dict(values or {})
            known = {f.name for f in dataclasses.fields(kind)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"unknown {kind.__name__} field(s): {', '.join(unknown)}")
            return kind(**values)

        return cls(
            generator=build(GeneratorConfig, d.get("generator")),
            discriminator=build(DiscriminatorConfig, d.get("discriminator")),
            data=build(DataConfig, d.get("data")),
            train=build(TrainConfig, d.get("train")),
        )


def domain_names(data: DataConfig) -> list[str]:
    """Names of the label vector's entries, in order, for a dataset mode.

    `both` is the paper's joint training: [CelebA attrs, RaFD expressions, mask(celeba), mask(rafd)].
    """
    if data.dataset in ("celeba", "toyfaces"):
        return list(data.selected_attrs)
    if data.dataset == "rafd":
        return list(RAFD_EXPRESSIONS)
    return list(data.selected_attrs) + list(RAFD_EXPRESSIONS) + list(MASK_NAMES)


def label_dim(data: DataConfig) -> int:
    """The generator's c_dim: every entry of the label vector."""
    return len(domain_names(data))


def classifier_names(data: DataConfig) -> list[str]:
    """Names of the discriminator's classifier logits: the label entries without the joint mode's mask
    (the official joint D has c_dim + c2_dim logits: CelebA attributes, then RaFD expressions)."""
    return [n for n in domain_names(data) if n not in MASK_NAMES]


def classifier_dim(data: DataConfig) -> int:
    """The discriminator's c_dim."""
    return len(classifier_names(data))


def _require_positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ValueError(f"{type(obj).__name__}.{name} must be > 0, got {value}")
