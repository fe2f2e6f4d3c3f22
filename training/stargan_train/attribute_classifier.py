"""The evaluation classifier of the paper's protocol: a small CNN trained on real images, cached in a run dir.

Usage: clf, acc = load_or_train_classifier("runs/toy", run_config.data, iters=1500); clf.predict(images)

Hair colours form one exclusive softmax group (plus a "none of these" class, since many CelebA faces have
no selected hair colour); every other attribute is an independent binary head. The classifier is
deliberately separate from the discriminator's head: D is trained together with G, so it cannot judge G
fairly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from stargan_train.config import DataConfig
from stargan_train.files import atomic_write, atomic_write_text

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
CLASSIFIER_FILE = "classifier.safetensors"
SIDECAR_FILE = "classifier.json"
SIDECAR_FORMAT = "stargan-eval-classifier"


class ClassifierError(ValueError):
    """A cached classifier that cannot be used, or data it cannot be trained on; one-sentence reason."""


@dataclass(frozen=True)
class AttributeGroup:
    kind: str  # "exclusive" (softmax over members + none) or "binary" (one sigmoid logit)
    indices: tuple[int, ...]  # positions in the attribute vector

    @property
    def num_logits(self) -> int:
        return len(self.indices) + 1 if self.kind == "exclusive" else 1


def attribute_groups(attrs: tuple[str, ...] | list[str]) -> list[AttributeGroup]:
    """Hair colours (two or more present) as one exclusive group, first; every other attribute binary."""
    hair = tuple(i for i, a in enumerate(attrs) if a in HAIR_COLOURS)
    groups = [AttributeGroup("exclusive", hair)] if len(hair) >= 2 else []
    grouped = set(hair) if groups else set()
    groups += [AttributeGroup("binary", (i,)) for i in range(len(attrs)) if i not in grouped]
    return groups


class AttributeClassifier(nn.Module):
    """Four stride-2 conv/BN/ReLU stages, global average pooling, one linear layer of group logits.

    Args:
        attrs: attribute names, in label-vector order.
        width: channels of the first stage; doubled at each of the next three.
    """

    def __init__(self, attrs: tuple[str, ...] | list[str], width: int = 16) -> None:
        super().__init__()
        if not attrs:
            raise ClassifierError("the attribute classifier needs at least one attribute")
        self.attrs = tuple(attrs)
        self.width = width
        self.groups = attribute_groups(self.attrs)
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in (width, width * 2, width * 4, width * 8):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, sum(g.num_logits for g in self.groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def _split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(logits, [g.num_logits for g in self.groups], dim=1))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy for the exclusive group, BCE for each binary attribute, summed over groups."""
        total = logits.new_zeros(())
        for group, part in zip(self.groups, self._split(logits)):
            if group.kind == "exclusive":
                total = total + F.cross_entropy(part, exclusive_targets(labels, group))
            else:
                total = total + F.binary_cross_entropy_with_logits(part[:, 0], labels[:, group.indices[0]])
        return total

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """0/1 attribute vectors [N, n_attrs] for images in [-1, 1]; an exclusive group has at most one 1."""
        was_training = self.training
        self.eval()  # BatchNorm running stats: a prediction must not depend on the rest of the batch
        logits = self(x)
        self.train(was_training)
        out = torch.zeros(x.shape[0], len(self.attrs), device=x.device)
        for group, part in zip(self.groups, self._split(logits)):
            if group.kind == "exclusive":
                set_winner(out, group, part.argmax(dim=1))
            else:
                out[:, group.indices[0]] = (part[:, 0] > 0).float()
        return out


def set_winner(out: torch.Tensor, group: AttributeGroup, winner: torch.Tensor) -> None:
    """Write an exclusive group's decision into 0/1 attribute vectors `out` (in place): member `winner[n]` is 1,
    the others 0; a winner past the last member (the classifier's "none" logit) leaves them all 0."""
    for k, idx in enumerate(group.indices):
        out[:, idx] = (winner == k).float()


def exclusive_targets(labels: torch.Tensor, group: AttributeGroup) -> torch.Tensor:
    """Class index per row: the first member set to 1, or len(members) ("none") when no member is set."""
    members = labels[:, list(group.indices)] > 0.5
    first = members.float().argmax(dim=1)
    return torch.where(members.any(dim=1), first, torch.full_like(first, len(group.indices)))


def data_fingerprint(data: DataConfig) -> str:
    """sha256 over the attribute file and the settings that decide which images and pixels the classifier sees."""
    attr_path = Path(data.attr_path)
    if not attr_path.is_file():
        raise ClassifierError(f"attribute file not found: {attr_path}")
    h = hashlib.sha256(attr_path.read_bytes())
    keys = ("dataset", "selected_attrs", "celeba_crop_size", "image_size", "test_count", "seed")
    h.update(json.dumps({k: getattr(data, k) for k in keys}, sort_keys=True, default=list).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ClassifierInfo:
    """The JSON sidecar: what the cached weights were trained on and how well they classify real test images."""

    attrs: list[str]
    width: int
    image_size: int
    fingerprint: str
    iters: int
    batch_size: int
    seed: int
    accuracy: dict[str, float]  # per attribute, on the real test split
    format: str = SIDECAR_FORMAT

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierInfo:
        return cls(**d)


def save_classifier(folder: Path, classifier: AttributeClassifier, info: ClassifierInfo) -> Path:
    """Weights then sidecar, each atomically: a sidecar that exists always describes complete weights."""
    folder = Path(folder)
    tensors = {k: v.detach().contiguous().cpu() for k, v in classifier.state_dict().items()}
    atomic_write(folder / CLASSIFIER_FILE, lambda p: save_file(tensors, str(p)))
    atomic_write_text(folder / SIDECAR_FILE, json.dumps(asdict(info), indent=2) + "\n")
    return folder / CLASSIFIER_FILE


def load_classifier(folder: Path, map_location: str = "cpu") -> tuple[AttributeClassifier, ClassifierInfo]:
    folder = Path(folder)
    sidecar, weights = folder / SIDECAR_FILE, folder / CLASSIFIER_FILE
    try:
        info = ClassifierInfo.from_dict(json.loads(sidecar.read_text(encoding="utf-8")))
        classifier = AttributeClassifier(info.attrs, width=info.width)
        classifier.load_state_dict(load_file(str(weights)), strict=True)
    except FileNotFoundError as e:
        raise ClassifierError(f"no cached classifier: {e.filename} is missing") from None
    except (json.JSONDecodeError, TypeError, KeyError, RuntimeError, SafetensorError, OSError) as e:
        raise ClassifierError(f"cached classifier in {folder} is unreadable: {str(e).splitlines()[0]}") from None
    if info.format != SIDECAR_FORMAT:
        raise ClassifierError(f"{sidecar} is not a stargan eval classifier sidecar")
    return classifier.to(map_location).eval(), info


@contextmanager
def progress_bar(enabled: bool, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; a rich bar with rate and ETA when enabled, a no-op otherwise."""
    if not enabled:
        yield lambda n=1: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    # stderr: stdout may be carrying `--json` output.
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def require_celeba_style(data: DataConfig) -> None:
    if data.dataset not in ("celeba", "toyfaces"):
        raise ClassifierError(
            f"the attribute-classifier protocol covers CelebA-style attributes (celeba, toyfaces), not {data.dataset!r}"
        )


def single_loader(data: DataConfig, batch_size: int, split: str, seed: int, **kwargs: Any) -> DataLoader:
    """The one loader of a CelebA-style dataset; the protocol is defined for those attributes only."""
    from stargan_train.data import build_loaders

    require_celeba_style(data)
    loaders = build_loaders(data, batch_size, split=split, seed=seed, **kwargs)
    if len(loaders) != 1:
        raise ClassifierError(f"expected one {split} loader for {data.dataset}, got {sorted(loaders)}")
    return next(iter(loaders.values()))


class AccuracyMeter:
    """Counts, per attribute, how often a 0/1 prediction equals the expected value."""

    def __init__(self, attrs: tuple[str, ...] | list[str]) -> None:
        self.attrs = list(attrs)
        self.hits = torch.zeros(len(self.attrs), dtype=torch.float64)
        self.count = torch.zeros(len(self.attrs), dtype=torch.float64)

    def add(self, pred: torch.Tensor, expected: torch.Tensor) -> None:
        hit = (pred.cpu() == (expected.cpu() > 0.5).float()).double()
        self.hits += hit.sum(dim=0)
        self.count += hit.shape[0]

    def per_attribute(self) -> dict[str, float]:
        return {a: float(h / c) for a, h, c in zip(self.attrs, self.hits, self.count) if c > 0}


@torch.no_grad()
def classifier_accuracy(classifier: AttributeClassifier, loader: DataLoader, device: str) -> dict[str, float]:
    """Per-attribute accuracy of `classifier` on the real images of `loader`."""
    meter = AccuracyMeter(classifier.attrs)
    for images, labels in loader:
        meter.add(classifier.predict(images.to(device)), labels)
    return meter.per_attribute()


def train_attribute_classifier(
    data: DataConfig,
    *,
    iters: int = 1500,
    batch_size: int = 32,
    device: str = "cpu",
    seed: int = 0,
    width: int = 16,
    progress: bool = False,
    num_workers: int | None = None,
    cache_mb: int = 1024,
) -> tuple[AttributeClassifier, dict[str, float]]:
    """Train on the real train split, then measure per-attribute accuracy on the real test split."""
    if iters <= 0 or batch_size <= 0:
        raise ClassifierError(f"iters and batch_size must be > 0, got {iters} and {batch_size}")
    torch.manual_seed(seed)
    classifier = AttributeClassifier(data.selected_attrs, width=width).to(device).train()
    optim = torch.optim.Adam(classifier.parameters(), lr=2e-3)
    # Cosine decay: a short schedule still ends on a settled model.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=iters)
    batches = _train_batches(data, batch_size, seed, num_workers, cache_mb, progress)
    with progress_bar(progress, "training attribute classifier", iters) as advance:
        for _ in range(iters):
            images, labels = next(batches)
            loss = classifier.loss(classifier(images.to(device)), labels.to(device))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            advance(1)
    classifier.eval()
    test = single_loader(data, batch_size, "test", seed, num_workers=num_workers, shuffle=False, drop_last=False)
    return classifier, classifier_accuracy(classifier, test, device)


def _train_batches(
    data: DataConfig, batch_size: int, seed: int, num_workers: int | None, cache_mb: int, progress: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled, randomly flipped train batches.

    A split that fits in `cache_mb` as uint8 (toyfaces, CelebA subsets) is decoded once and kept in memory:
    the classifier sees each image many times, and decoding would otherwise dominate on CPU. uint8 is
    lossless here because the transform's [-1, 1] values are exactly k / 127.5 - 1.
    """
    from stargan_train.data import build_dataset
    from stargan_train.data.transforms import build_transform

    require_celeba_style(data)
    ds = build_dataset(data, "celeba", "train")
    if len(ds) * 3 * data.image_size**2 > cache_mb * 2**20:
        loader = single_loader(data, batch_size, "train", seed, num_workers=num_workers)
        while True:
            yield from loader
    ds.transform = build_transform(data.celeba_crop_size, data.image_size, "test")  # we flip below
    images = torch.empty(len(ds), 3, data.image_size, data.image_size, dtype=torch.uint8)
    with progress_bar(progress, "decoding train images", len(ds)) as advance:
        for i in range(len(ds)):
            images[i] = ((ds[i][0] + 1.0) * 127.5).round().to(torch.uint8)
            advance(1)
    labels = ds.labels.float()
    rng = torch.Generator().manual_seed(seed)
    while True:
        for idx in torch.randperm(len(ds), generator=rng).split(batch_size):
            x = images[idx].float() / 127.5 - 1.0
            flip = torch.rand(len(idx), generator=rng) < 0.5
            yield torch.where(flip[:, None, None, None], x.flip(3), x), labels[idx]


def load_or_train_classifier(
    run_dir: Path,
    data: DataConfig,
    *,
    iters: int = 1500,
    batch_size: int = 32,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
    retrain: bool = False,
    num_workers: int | None = None,
) -> tuple[AttributeClassifier, ClassifierInfo, bool]:
    """(classifier, info, reused): the cached `run_dir/eval` classifier when its data fingerprint matches."""
    folder = Path(run_dir) / "eval"
    fingerprint = data_fingerprint(data)
    if not retrain and (folder / SIDECAR_FILE).is_file():
        try:
            classifier, info = load_classifier(folder, device)
        except ClassifierError:
            classifier, info = None, None  # unreadable cache: retrain and overwrite it
        if info is not None and info.fingerprint == fingerprint and tuple(info.attrs) == data.selected_attrs:
            return classifier, info, True
    classifier, accuracy = train_attribute_classifier(
        data, iters=iters, batch_size=batch_size, device=device, seed=seed, progress=progress, num_workers=num_workers
    )
    info = ClassifierInfo(
        list(data.selected_attrs), classifier.width, data.image_size, fingerprint, iters, batch_size, seed, accuracy
    )
    save_classifier(folder, classifier, info)
    return classifier, info, False
