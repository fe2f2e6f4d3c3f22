"""The paper's evaluation protocol: classify single-attribute edits of held-out images, plus L1, localisation and
fidelity to the true counterfactual face (toyfaces).

Usage: g = load_generator("runs/toy"); report = evaluate(g, g.run_config.data, num_images=500); report.to_dict()

For every test image and every attribute, the target label follows the official `create_labels`: a hair
colour is set one-hot within the hair group, any other attribute is flipped. A classifier trained on real
images (`attribute_classifier`) then checks whether the edit shows the target value (target accuracy) and
whether the other attributes kept theirs (preserved accuracy). On toyfaces, every output is also compared with
the counterfactual render of the same person (`counterfactual`): PSNR and SSIM, and PSNR outside the region the
edit may rewrite.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from stargan_train.attribute_classifier import (
    AccuracyMeter,
    AttributeClassifier,
    attribute_groups,
    progress_bar,
    require_celeba_style,
    set_winner,
    train_attribute_classifier,
)
from stargan_train.config import DataConfig
from stargan_train.counterfactual import ToyfacesTruth, WithTruth
from stargan_train.data.transforms import center_crop, resize
from stargan_train.image_quality import FidelityMeter
from stargan_train.samples import celeba_targets
from stargan_train.weights import Loaded

__all__ = ["EvalReport", "Localisation", "create_labels", "evaluate", "train_attribute_classifier"]

MIN_CLASSIFIER_ACCURACY = 0.9  # below this the protocol measures the classifier more than the generator
CRITIC_GAP_WARNING = 0.1  # critic accepts this much more of an edit than the classifier: worth a warning
# |G(x, c_org) - x| in [-1, 1] units above which the generator has not learned to reproduce its input: the shipped
# toyfaces model scores 0.054, a randomly initialised one 0.42-0.50. Its critic gap says "train longer", nothing more.
UNTRAINED_IDENTITY_L1 = 0.2


class EvalError(ValueError):
    """Inputs the protocol cannot evaluate (mismatched attributes, unsupported dataset); one sentence."""


def create_labels(c_org: torch.Tensor, attrs: tuple[str, ...] | list[str]) -> list[torch.Tensor]:
    """One target label batch per attribute, as the official solver: hair colours one-hot, others flipped."""
    return celeba_targets(c_org, tuple(attrs))


def localisation_sums(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[inside |y-x| sum, inside pixels, outside sum, outside pixels]; |y-x| is the channel mean per pixel."""
    diff = (y - x).abs().mean(dim=1)  # [N, H, W]
    m = (mask > 0.5).to(diff.dtype)
    return torch.stack([(diff * m).sum(), m.sum(), (diff * (1 - m)).sum(), (1 - m).sum()]).double().cpu()


@dataclass
class Localisation:
    """Pixel-weighted mean |output - input| inside and outside a region, over all images added."""

    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(4, dtype=torch.float64))
    images: int = 0

    def add(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
        self.sums += localisation_sums(x, y, mask)
        self.images += x.shape[0]

    def to_dict(self) -> dict[str, float | int]:
        s_in, n_in, s_out, n_out = (float(v) for v in self.sums)
        inside = s_in / n_in if n_in else float("nan")
        outside = s_out / n_out if n_out else float("nan")
        ratio = outside / inside if inside > 0 else float("nan")
        return {"inside": inside, "outside": outside, "outside_over_inside": ratio, "images": self.images}


@dataclass
class EvalReport:
    """Every number of one evaluation; `to_dict()` is the `--json` output."""

    attrs: list[str]
    target_accuracy: dict[str, float]  # per edited attribute: classifier sees the target value
    preserved_accuracy: dict[str, float]  # per edited attribute: the other attributes kept their value
    rec_l1: dict[str, float]  # per edited attribute: |G(G(x, c_trg), c_org) - x|, [-1, 1] units
    identity_l1: float  # |G(x, c_org) - x|
    localisation: dict[str, dict[str, float | int]]  # per hair colour, on images whose hair colour changed
    classifier_accuracy: dict[str, float]  # on the real images used
    images_used: int
    # per edited attribute, per attribute of the *input*, per input value "0"/"1": target accuracy and image
    # count; e.g. ["Young"]["Young"]["1"] is the young -> old direction of the Young flip
    target_accuracy_by_input: dict[str, dict[str, dict[str, dict[str, float | int]]]]
    checkpoint_iteration: int | None
    wall_time_s: float
    # per edited attribute: the run's own critic (D's classifier) sees the target value; empty without a critic.
    # Far above target_accuracy means the generator learned patterns that satisfy D but no other classifier.
    critic_target_accuracy: dict[str, float] = field(default_factory=dict)
    # "identity" and per edited attribute: mean PSNR (dB) / SSIM against the counterfactual render, PSNR outside
    # the edit's region, image counts (edits that change the labels only); empty without ground truth (CelebA)
    counterfactual: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    images_requested: int | None = None  # num_images asked for; images_used is smaller when the split is

    @property
    def mean_target_accuracy(self) -> float:
        return float(np.mean(list(self.target_accuracy.values())))

    @property
    def mean_preserved_accuracy(self) -> float:
        return float(np.mean(list(self.preserved_accuracy.values())))

    @property
    def mean_rec_l1(self) -> float:
        return float(np.mean(list(self.rec_l1.values())))

    @property
    def mean_classifier_accuracy(self) -> float:
        return float(np.mean(list(self.classifier_accuracy.values())))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; NaN becomes None."""
        out = asdict(self)
        out["per_attribute"] = {
            a: {
                "target_accuracy": self.target_accuracy[a],
                "preserved_accuracy": self.preserved_accuracy[a],
                "rec_l1": self.rec_l1[a],
                "classifier_accuracy": self.classifier_accuracy.get(a),
            }
            for a in self.attrs
        }
        out.update(
            mean_target_accuracy=self.mean_target_accuracy,
            mean_preserved_accuracy=self.mean_preserved_accuracy,
            mean_rec_l1=self.mean_rec_l1,
            mean_classifier_accuracy=self.mean_classifier_accuracy,
        )
        return json_safe(out)


def json_safe(value: Any) -> Any:
    """NaN (e.g. a ratio with no changed hair pixels) becomes None: strict JSON readers reject NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


class _WithMasks(Dataset):
    """Test images with their hair masks (`masks/<stem>.png` beside the image folder), cropped like the image."""

    def __init__(self, base: Dataset, data: DataConfig) -> None:
        self.base = base
        self.crop, self.size = data.celeba_crop_size, data.image_size
        mask_dir = Path(base.image_dir).parent / "masks"
        paths = [mask_dir / f"{Path(f).stem}.png" for f in base.filenames]
        self.mask_paths = paths if mask_dir.is_dir() and all(p.is_file() for p in paths) else None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, label = self.base[index]
        if self.mask_paths is None:
            return image, label, torch.zeros(0)
        with Image.open(self.mask_paths[index]) as m:
            mask = resize(center_crop(m.convert("L"), self.crop), self.size)
        return image, label, torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)


def _test_dataset(data: DataConfig) -> _WithMasks:
    from stargan_train.data import build_dataset

    require_celeba_style(data)
    return _WithMasks(build_dataset(data, "celeba", "test"), data)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalError(f"device {device!r} requested but CUDA is not available")
    return device


@dataclass
class _Tally:
    """Running sums over the test images, one slot per edited attribute."""

    attrs: list[str]
    hair: list[int]
    masks: bool
    classifier: AccuracyMeter = field(init=False)
    target_hits: torch.Tensor = field(init=False)
    preserved_hits: torch.Tensor = field(init=False)
    preserved_count: torch.Tensor = field(init=False)
    rec: torch.Tensor = field(init=False)
    by_input_hits: torch.Tensor = field(init=False)  # [edit, input attribute, input value 0/1]
    by_input_count: torch.Tensor = field(init=False)  # [input attribute, input value 0/1]: same for every edit
    identity: float = 0.0
    images: int = 0
    loc: dict[str, Localisation] = field(init=False)
    critic_hits: torch.Tensor = field(init=False)
    fidelity: FidelityMeter = field(default_factory=FidelityMeter)
    not_exact: int = 0  # test images the renderer does not reproduce: left out of `fidelity`
    truth_note: str | None = None  # why there is no counterfactual ground truth, for toyfaces data

    def __post_init__(self) -> None:
        n = len(self.attrs)
        self.classifier = AccuracyMeter(self.attrs)
        self.target_hits, self.preserved_hits, self.preserved_count, self.rec = (
            torch.zeros(n, dtype=torch.float64) for _ in range(4)
        )
        self.by_input_hits = torch.zeros(n, n, 2, dtype=torch.float64)
        self.by_input_count = torch.zeros(n, 2, dtype=torch.float64)
        self.critic_hits = torch.zeros(n, dtype=torch.float64)
        self.loc = {self.attrs[i]: Localisation() for i in self.hair} if self.masks else {}

    def others(self, i: int) -> torch.Tensor:
        """Attributes outside the edited one's group: a hair edit legitimately rewrites the whole hair group."""
        keep = torch.ones(len(self.attrs), dtype=torch.bool)
        keep[self.hair if i in self.hair else [i]] = False
        return keep


def critic_predict(D: torch.nn.Module, x: torch.Tensor, attrs: list[str]) -> torch.Tensor:
    """0/1 attribute vectors from the discriminator's classification logits, decoded like the classifier's
    (the hair colours as one exclusive group: the highest logit wins; every other attribute: logit > 0)."""
    logits = D(x)[1].flatten(1)
    out = (logits > 0).float()
    for group in attribute_groups(attrs):
        if group.kind == "exclusive":
            set_winner(out, group, logits[:, list(group.indices)].argmax(dim=1))
    return out


def _add_fidelity(t: _Tally, truth: dict[str, torch.Tensor], e: int, y: torch.Tensor) -> None:
    """Score output `y` of edit slot `e` (0 = identity) on the images whose truth is exact and whose labels moved."""
    if not truth:
        return
    keep = truth["exact"].cpu() & (truth["changed"][:, e].cpu() | (e == 0))
    key = "identity" if e == 0 else t.attrs[e - 1]
    region = truth["regions"][keep, e] if e > 0 else None
    t.fidelity.add(key, y.cpu()[keep], truth["images"][keep, e], region)


@torch.no_grad()
def _evaluate_batch(
    G: torch.nn.Module,
    clf: AttributeClassifier,
    x: torch.Tensor,
    c_org: torch.Tensor,
    mask: torch.Tensor,
    t: _Tally,
    critic: torch.nn.Module | None = None,
    truth: dict[str, torch.Tensor] | None = None,
) -> None:
    truth = truth or {}
    t.classifier.add(clf.predict(x), c_org)
    same = G(x, c_org)
    t.identity += float((same - x).abs().mean(dim=(1, 2, 3)).sum())
    if truth:
        t.not_exact += int((~truth["exact"]).sum())
    _add_fidelity(t, truth, 0, same)
    t.images += x.shape[0]
    has = torch.stack([c_org.cpu() <= 0.5, c_org.cpu() > 0.5], dim=2)  # [N, n_attrs, value 0/1] of the input
    t.by_input_count += has.sum(dim=0).double()
    for i, c_trg in enumerate(create_labels(c_org, t.attrs)):
        y = G(x, c_trg)
        hit = (clf.predict(y) == c_trg).cpu()
        t.target_hits[i] += float(hit[:, i].sum())
        if critic is not None:
            t.critic_hits[i] += float((critic_predict(critic, y, t.attrs)[:, i] == c_trg[:, i]).sum())
        t.by_input_hits[i] += (hit[:, i, None, None] & has).sum(dim=0).double()
        others = t.others(i)
        t.preserved_hits[i] += float(hit[:, others].sum())
        t.preserved_count[i] += x.shape[0] * int(others.sum())
        t.rec[i] += float((G(y, c_org) - x).abs().mean(dim=(1, 2, 3)).sum())
        _add_fidelity(t, truth, i + 1, y)
        changed = c_org[:, i] < 0.5  # an edit to the hair colour it already has moves nothing
        if t.attrs[i] in t.loc and changed.any():
            t.loc[t.attrs[i]].add(x[changed], y[changed], mask[changed])


def _check_attrs(
    G: torch.nn.Module,
    classifier: AttributeClassifier | None,
    attrs: list[str],
    critic: torch.nn.Module | None = None,
    image_size: int | None = None,
) -> None:
    c_dim = getattr(getattr(G, "config", None), "c_dim", None)
    if c_dim is not None and c_dim != len(attrs):
        raise EvalError(f"the generator takes {c_dim} labels but the data selects {len(attrs)} attributes: {attrs}")
    d_config = getattr(critic, "config", None)
    if d_config is not None and (d_config.c_dim != len(attrs) or d_config.image_size != image_size):
        raise EvalError(
            f"the critic classifies {d_config.c_dim} labels at {d_config.image_size}px; the data "
            f"selects {len(attrs)} attributes at {image_size}px"
        )
    if classifier is not None and list(classifier.attrs) != attrs:
        raise EvalError(f"the classifier was trained on {list(classifier.attrs)}, the data selects {attrs}")


def _by_input(t: _Tally) -> dict[str, dict[str, dict[str, dict[str, float | int]]]]:
    """EvalReport.target_accuracy_by_input from the tally; NaN where no input had that value."""

    def cell(i: int, j: int, v: int) -> dict[str, float | int]:
        count = t.by_input_count[j, v]
        accuracy = float(t.by_input_hits[i, j, v] / count) if count > 0 else float("nan")
        return {"accuracy": accuracy, "images": int(count)}

    return {
        edit: {a: {str(v): cell(i, j, v) for v in (0, 1)} for j, a in enumerate(t.attrs)}
        for i, edit in enumerate(t.attrs)
    }


def critic_gap_advice(attr: str, identity_l1: float, classifier_accuracy: float) -> str:
    """What a critic-vs-classifier gap means, given the other numbers: augmentation helps only a generator that
    works (reproduces its input) judged by a classifier that reads real images right."""
    if identity_l1 > UNTRAINED_IDENTITY_L1:
        return (
            f"the generator does not reproduce its input yet (identity L1 {identity_l1:.3f} > "
            f"{UNTRAINED_IDENTITY_L1}), so this gap says nothing yet: train longer, then evaluate again"
        )
    if classifier_accuracy < MIN_CLASSIFIER_ACCURACY:
        return (
            f"the classifier reads real {attr} images right only {classifier_accuracy:.1%} of the time, so "
            f"the gap may be its error (retrain it with more --classifier-iters and --retrain-classifier)"
        )
    return (
        f"the generator satisfies the critic's classifier with patterns others do not read as {attr} "
        f"(try --augment translation,cutout)"
    )


def _report(t: _Tally, iteration: int | None, start: float, has_critic: bool) -> EvalReport:
    n, attrs = max(t.images, 1), t.attrs
    clf_acc = t.classifier.per_attribute()
    warnings = [
        f"classifier accuracy on real {a} is {acc:.1%} (< {MIN_CLASSIFIER_ACCURACY:.0%}): its target accuracy is "
        "unreliable"
        for a, acc in clf_acc.items()
        if acc < MIN_CLASSIFIER_ACCURACY
    ]
    target = {a: float(t.target_hits[i] / n) for i, a in enumerate(attrs)}
    critic = {a: float(t.critic_hits[i] / n) for i, a in enumerate(attrs)} if has_critic else {}
    warnings += [
        f"the critic accepts {critic[a]:.1%} of the {a} edits but the classifier only {target[a]:.1%}: "
        + critic_gap_advice(a, t.identity / n, clf_acc.get(a, float("nan")))
        for a in critic
        if critic[a] - target[a] > CRITIC_GAP_WARNING
    ]
    if t.not_exact:
        warnings.append(
            f"{t.not_exact} of {t.images} test images differ from their toyfaces re-render (edited "
            f"files, or another renderer version): left out of the counterfactual scores"
        )
    return EvalReport(
        attrs=attrs,
        target_accuracy=target,
        preserved_accuracy={
            a: float(t.preserved_hits[i] / t.preserved_count[i])
            for i, a in enumerate(attrs)
            if t.preserved_count[i] > 0
        },
        rec_l1={a: float(t.rec[i] / n) for i, a in enumerate(attrs)},
        identity_l1=t.identity / n,
        localisation={a: loc.to_dict() for a, loc in t.loc.items()},
        classifier_accuracy=clf_acc,
        images_used=t.images,
        target_accuracy_by_input=_by_input(t),
        checkpoint_iteration=iteration,
        wall_time_s=time.perf_counter() - start,
        critic_target_accuracy=critic,
        counterfactual=t.fidelity.to_dict(),
        warnings=warnings + ([t.truth_note] if t.truth_note else []),
    )


def evaluate(
    generator: torch.nn.Module | Loaded,
    data: DataConfig,
    *,
    classifier: AttributeClassifier | None = None,
    num_images: int = 2000,
    batch_size: int = 16,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
    classifier_iters: int = 1500,
    num_workers: int | None = None,
    critic: torch.nn.Module | Loaded | None = None,
) -> EvalReport:
    """Translate the first `num_images` test images (the whole split, with a report warning, when it holds fewer)
    to every single-attribute target and score the results.

    Without `classifier`, one is trained first on the real train split (`classifier_iters` steps). With
    `critic` (the run's discriminator), its own classifier's verdict on each edit is reported beside it.
    """
    start = time.perf_counter()
    if num_images <= 0 or batch_size <= 0:
        raise EvalError(f"num_images and batch_size must be > 0, got {num_images} and {batch_size}")
    device = resolve_device(device)
    G, iteration = (generator.model, generator.iteration) if isinstance(generator, Loaded) else (generator, None)
    attrs = list(data.selected_attrs)
    D = critic.model if isinstance(critic, Loaded) else critic
    _check_attrs(G, classifier, attrs, D, data.image_size)
    dataset = _test_dataset(data)
    if classifier is None:
        classifier, _ = train_attribute_classifier(
            data,
            iters=classifier_iters,
            batch_size=32,
            device=device,
            seed=seed,
            progress=progress,
            num_workers=num_workers,
        )
    torch.manual_seed(seed)
    n = min(num_images, len(dataset))  # the split may hold fewer: say so (a report warning), never silently
    truth, why_not = ToyfacesTruth.find(
        dataset.base.image_dir, crop=data.celeba_crop_size, size=data.image_size, attrs=tuple(attrs)
    )
    loader = DataLoader(
        torch.utils.data.Subset(WithTruth(dataset, truth), range(n)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=data.num_workers if num_workers is None else num_workers,
    )
    hair = [i for g in attribute_groups(attrs) if g.kind == "exclusive" for i in g.indices]
    tally = _Tally(attrs, hair, masks=dataset.mask_paths is not None)
    tally.truth_note = why_not if data.dataset == "toyfaces" else None  # CelebA simply has no ground truth
    was_training = G.training
    G.to(device).eval()
    classifier.to(device).eval()
    if D is not None:
        D.to(device).eval()
    try:
        with progress_bar(progress, "translating test images", n) as advance:
            for x, c_org, mask, truth_batch in loader:
                _evaluate_batch(G, classifier, x.to(device), c_org.to(device), mask.to(device), tally, D, truth_batch)
                advance(x.shape[0])
    finally:
        G.train(was_training)
    report = _report(tally, iteration, start, has_critic=D is not None)
    report.images_requested = num_images
    if n < num_images:
        report.warnings.insert(0, fewer_images_warning(num_images, n))
    return report


def fewer_images_warning(requested: int, used: int) -> str:
    return (
        f"{requested} test images requested but the test split holds only {used}: evaluated {used} "
        f"(images_used in the report)"
    )
