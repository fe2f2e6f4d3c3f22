"""Attribute logic in pure numpy: validate changes, estimate attributes from logits, build target labels.

Usage: space = AttributeSpace.from_manifest(m); target = space.apply_changes(original, {"Blond_Hair": 1})

Rules (the same for every entry point):
- exclusive groups (hair colours, expressions) hold at most one 1. Setting a member to 1 clears the others.
  Setting the *active* member to 0 is refused (which colour instead?) unless another member is set to 1
  in the same call; setting an inactive member to 0 changes nothing.
- binary attributes are independent 0/1.
- mask entries (joint CelebA+RaFD bundles) are never set by users: editing an expression selects the RaFD
  half of the label (`mask_rafd=1`, CelebA part zeroed), anything else the CelebA half (`mask_celeba=1`,
  expressions zeroed), as in the official joint test code. Editing both halves at once is refused.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stargan_sdk.bundle.manifest import AttributeGroup, Manifest
from stargan_sdk.errors import AttributeNameError, AttributeValueError

RAFD_MASK = "mask_rafd"


def coerce_value(name: str, value: object) -> int:
    """0/1 from a bool, an int or an integral float; anything else is refused."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and float(value) in (0.0, 1.0):
        return int(float(value))
    raise AttributeValueError(
        f"{name}={value!r}: attribute values are 0/1 or False/True (StarGAN domains are binary; "
        f"for in-between labels use Translator.infer with a float label vector)"
    )


@dataclass(frozen=True)
class AttributeSpace:
    """The label vector's layout: attribute order and groups, from a manifest.

    Args:
        attributes: label entries in order (the generator's c_dim).
        groups: how the entries relate (exclusive / binary / mask).
    """

    attributes: tuple[str, ...]
    groups: tuple[AttributeGroup, ...]

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> AttributeSpace:
        return cls(tuple(manifest.attributes), tuple(manifest.groups))

    @property
    def c_dim(self) -> int:
        return len(self.attributes)

    @property
    def masks(self) -> tuple[str, ...]:
        return tuple(a for g in self.groups if g.kind == "mask" for a in g.attributes)

    @property
    def editable(self) -> tuple[str, ...]:
        """Attributes a user may set, in label order (everything but mask entries)."""
        masks = set(self.masks)
        return tuple(a for a in self.attributes if a not in masks)

    def index(self, name: str) -> int:
        self.check_name(name)
        return self.attributes.index(name)

    def check_name(self, name: str) -> None:
        if name in self.masks:
            raise AttributeValueError(f"{name} is a dataset mask set automatically from the attributes you edit")
        if name not in self.attributes:
            close = difflib.get_close_matches(name, self.attributes, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise AttributeNameError(f"unknown attribute {name!r}; {hint}this model knows: {', '.join(self.editable)}")

    def group_of(self, name: str) -> AttributeGroup:
        for g in self.groups:
            if name in g.attributes:
                return g
        raise AttributeNameError(f"attribute {name!r} belongs to no group")  # manifest validation prevents this

    def validate_changes(self, changes: Mapping[str, object]) -> dict[str, int]:
        """Names checked, values coerced to 0/1, at most one 1 per exclusive group."""
        clean: dict[str, int] = {}
        for name, value in changes.items():
            if not isinstance(name, str):
                raise AttributeNameError(f"attribute names are strings, got {name!r}")
            self.check_name(name)
            clean[name] = coerce_value(name, value)
        for g in self.groups:
            on = [a for a in g.attributes if g.kind == "exclusive" and clean.get(a) == 1]
            if len(on) > 1:
                raise AttributeValueError(f"{' and '.join(on)} are exclusive ({g.name}): set only one of them to 1")
        return clean

    def original_vector(self, original: Mapping[str, object]) -> np.ndarray:
        """A complete label from a user's description. Naming the active member of an exclusive group is
        enough (the others are 0); every binary attribute must be given (joint bundles: any subset)."""
        clean = self.validate_changes(original)
        vec = np.zeros(self.c_dim, np.float32)
        missing = []
        # Joint bundles: a photo is either a CelebA-like face or a RaFD one, so half the label is unknown.
        for g in self.groups if self._rafd_split() is None else ():
            if g.kind == "binary":
                missing += [a for a in g.attributes if a not in clean]
            elif g.kind == "exclusive" and not any(a in clean for a in g.attributes):
                missing.append(f"one of {'/'.join(g.attributes)}")
        if missing:
            raise AttributeValueError(f"original= is missing {', '.join(missing)}; describe every attribute")
        for name, v in clean.items():
            vec[self.attributes.index(name)] = v
        return vec

    def estimate_from_logits(self, logits: np.ndarray) -> np.ndarray:
        """0/1 labels [N, c_dim] from classifier logits: logit > 0 (sigmoid > 0.5) for binary attributes,
        argmax within exclusive groups. Joint bundles' classifiers omit the mask entries, which stay 0."""
        logits = np.asarray(logits, dtype=np.float32)
        editable = self.editable
        if logits.ndim != 2 or logits.shape[1] not in (self.c_dim, len(editable)):
            raise AttributeValueError(
                f"classifier logits have shape {logits.shape}; expected [N, {len(editable)}] for {self.c_dim} labels"
            )
        names = self.attributes if logits.shape[1] == self.c_dim else editable
        col = {name: i for i, name in enumerate(names)}
        out = np.zeros((logits.shape[0], self.c_dim), np.float32)
        for g in self.groups:
            idx = [self.attributes.index(a) for a in g.attributes]
            src = logits[:, [col[a] for a in g.attributes]] if g.kind != "mask" else None
            if g.kind == "binary":
                out[:, idx] = src > 0
            elif g.kind == "exclusive":
                out[np.arange(len(out)), np.asarray(idx)[src.argmax(axis=1)]] = 1
        return out

    def apply_changes(self, original: np.ndarray, changes: Mapping[str, object]) -> np.ndarray:
        """Target label(s): `original` ([c_dim] or [N, c_dim], 0/1) with `changes` applied per the rules."""
        clean = self.validate_changes(changes)
        target = np.array(original, dtype=np.float32, copy=True)
        flat = target.reshape(-1, self.c_dim)
        for name, value in clean.items():
            i = self.attributes.index(name)
            g = self.group_of(name)
            if g.kind == "exclusive" and value == 1:
                flat[:, [self.attributes.index(a) for a in g.attributes]] = 0
                flat[:, i] = 1
            elif g.kind == "exclusive":
                replaced = any(clean.get(a) == 1 for a in g.attributes)
                if not replaced and np.any(flat[:, i] == 1):
                    others = [a for a in g.attributes if a != name]
                    raise AttributeValueError(
                        f"{name}=0 is ambiguous: {g.name} is exclusive, so say which one instead (e.g. {others[0]}=1)"
                        if others
                        else f"{name} is the only member of {g.name}"
                    )
            else:
                flat[:, i] = value
        self._set_masks(flat, clean)
        return target

    def single_attribute_targets(self, original: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """One target per single-attribute edit, in label order, as the official `create_labels`: each
        exclusive member switched on, each binary attribute flipped. Names read like `--set` (`Male=0`)."""
        out: list[tuple[str, np.ndarray]] = []
        orig = np.asarray(original, np.float32).reshape(self.c_dim)
        for name in self.editable:
            kind = self.group_of(name).kind
            value = 1 if kind == "exclusive" else int(orig[self.attributes.index(name)] < 0.5)
            label = name if kind == "exclusive" else f"{name}={value}"
            out.append((label, self.apply_changes(orig, {name: value})))
        return out

    def _rafd_split(self) -> tuple[list[int], list[int]] | None:
        """(CelebA columns, RaFD columns) for joint bundles, None otherwise."""
        if RAFD_MASK not in self.masks:
            return None
        rafd = [self.attributes.index(a) for g in self.groups if g.name == "expression" for a in g.attributes]
        celeba = [self.attributes.index(a) for a in self.editable if self.attributes.index(a) not in rafd]
        return celeba, rafd

    def _set_masks(self, flat: np.ndarray, clean: Mapping[str, int]) -> None:
        split = self._rafd_split()
        if split is None:
            return
        celeba, rafd = split
        rafd_names = {self.attributes[i] for i in rafd}
        edits_rafd = any(n in rafd_names for n in clean)
        if edits_rafd and any(n not in rafd_names for n in clean):
            raise AttributeValueError(
                "a joint CelebA+RaFD model edits either CelebA attributes or an expression, not both"
            )
        flat[:, [self.attributes.index(m) for m in self.masks]] = 0
        flat[:, celeba if edits_rafd else rafd] = 0
        flat[:, self.attributes.index(RAFD_MASK if edits_rafd else self._celeba_mask())] = 1

    def _celeba_mask(self) -> str:
        others = [m for m in self.masks if m != RAFD_MASK]
        return others[0] if others else self.masks[0]
