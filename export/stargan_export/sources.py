"""What a build exports from: the loaded generator (and discriminator), attribute names, image size, dataset.

Usage: src = load_sources("runs/toy", attributes=None, image_size=None, classifier=True); src.generator.model
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stargan_export.errors import ExportError
from stargan_sdk.bundle import manifest_schema
from stargan_sdk.bundle.manifest import RAFD_EXPRESSIONS
from stargan_sdk.bundle.manifest_schema import MAX_IMAGE_SIZE
from stargan_sdk.errors import ManifestError
from stargan_train.config import MASK_NAMES, domain_names
from stargan_train.weights import CheckpointError, Loaded, load_discriminator, load_generator

DEFAULT_OFFICIAL_IMAGE_SIZE = 128


@dataclass
class Sources:
    generator: Loaded
    discriminator: Loaded | None
    attributes: tuple[str, ...]
    image_size: int
    dataset: str


def parse_attributes(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """Accept `["A", "B"]`, `["A,B"]` or a mix (CLI repeats and comma lists); None/empty → None."""
    if not values:
        return None
    names = tuple(n.strip() for v in values for n in str(v).split(",") if n.strip())
    if len(set(names)) != len(names):
        raise ExportError(f"attribute names repeat: {', '.join(names)}")
    return names or None


def load_sources(
    checkpoint: str | Path,
    *,
    attributes: Sequence[str] | None,
    image_size: int | None,
    classifier: bool,
) -> Sources:
    """Load G (and D when `classifier`) and settle attributes/image size; one-line ExportError otherwise."""
    try:
        generator = load_generator(checkpoint)
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    names = parse_attributes(attributes)
    c_dim = generator.config.c_dim
    run = generator.run_config
    if run is not None:
        config_names = tuple(domain_names(run.data))
        if names is not None and names != config_names:
            raise ExportError(
                f"checkpoint was trained with attributes {', '.join(config_names)}; got {', '.join(names)}"
            )
        if image_size is not None and image_size != run.data.image_size:
            raise ExportError(f"checkpoint was trained at {run.data.image_size} px; --image-size {image_size} differs")
        names, size, dataset = config_names, run.data.image_size, run.data.dataset
    else:
        if names is None:
            raise ExportError(
                f"{generator.source.name} is an official checkpoint without attribute names: pass {c_dim} names, "
                f"e.g. --attrs Black_Hair,Blond_Hair,Brown_Hair,Male,Young"
            )
        size, dataset = image_size or DEFAULT_OFFICIAL_IMAGE_SIZE, _guess_dataset(names)
    if len(names) != c_dim:
        raise ExportError(f"{len(names)} attribute names given but the generator takes c_dim {c_dim} labels")
    if size <= 0 or size % 4 or size > MAX_IMAGE_SIZE:
        raise ExportError(
            f"image size {size} must be a multiple of 4 (two stride-2 convolutions) from 4 to "
            f"{MAX_IMAGE_SIZE} (StarGAN models are 128 or 256 px)"
        )
    for name in names:  # the manifest's rule, checked before minutes of export rather than at the manifest
        try:
            manifest_schema.text(name, "attribute", name=True)
        except ManifestError as e:
            raise ExportError(f"attribute name {name!r}: {str(e).split(': ', 1)[-1]}") from None
    return Sources(generator, _load_classifier(checkpoint, size, names) if classifier else None, names, size, dataset)


def _load_classifier(checkpoint: str | Path, image_size: int, names: tuple[str, ...]) -> Loaded:
    """D with one logit per attribute; a joint model's mask entries are not classified (official layout)."""
    try:
        loaded = load_discriminator(checkpoint, image_size=image_size)
    except CheckpointError as e:
        raise ExportError(f"--classifier needs the discriminator: {e}") from None
    classified = [n for n in names if n not in MASK_NAMES]
    if loaded.config.c_dim != len(classified):
        masks = " (the mask entries have no logits)" if len(classified) != len(names) else ""
        raise ExportError(
            f"discriminator {loaded.source.name} has {loaded.config.c_dim} logits; the classifier "
            f"needs one per attribute, {len(classified)}{masks}"
        )
    return loaded


def _guess_dataset(names: Sequence[str]) -> str:
    """Official checkpoints carry no config; the attribute names tell the training dataset apart."""
    if any(n.startswith("mask_") for n in names):
        return "both"
    if all(n in RAFD_EXPRESSIONS for n in names):
        return "rafd"
    return "celeba"
