"""A bundle's graphs checked against its manifest (which `read_manifest` has checked against itself).

Usage: check_input_shapes(read_manifest("models/toyfaces-64"), backend.input_shapes(), "generator.onnx")

Checksums are verified by whoever opens an artifact (`verify_artifact`), so only the files a
Translator actually uses are hashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stargan_sdk.bundle.constants import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT, INPUT_IMAGE, INPUT_LABEL
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.errors import BundleError


def _expected(manifest: Manifest) -> dict[str, tuple[int, ...]]:
    s = manifest.image_size
    return {INPUT_IMAGE: (3, s, s), INPUT_LABEL: (manifest.c_dim,)}


def check_input_shapes(manifest: Manifest, shapes: Mapping[str, Sequence[Any]], source: str) -> None:
    """Refuse a graph whose fixed input dimensions disagree with the manifest (symbolic dims pass)."""
    for name, want in _expected(manifest).items():
        if name not in shapes:
            raise BundleError(
                f"{source} has no input named {name!r} (inputs: {', '.join(shapes)}); re-export the bundle"
            )
        got = tuple(shapes[name])
        fixed = [(g, w) for g, w in zip(got[1:], want) if isinstance(g, int)]
        if len(got) != len(want) + 1 or any(g != w for g, w in fixed):
            raise BundleError(
                f"{source} does not match its manifest: input {name!r} is {list(got)}, the manifest says "
                f"[N, {', '.join(map(str, want))}] (image_size {manifest.image_size}, c_dim {manifest.c_dim}); "
                f"the manifest or the graph was replaced — re-export the bundle"
            )


def check_classifier_io(manifest: Manifest, inputs: Mapping[str, Sequence[Any]], outputs: Mapping[str, Sequence[Any]],
                        source: str) -> None:
    """Refuse a classifier graph that is not one: exactly the image input, a [N, k] `logits` output with
    k <= c_dim (a generator graph renamed classifier.onnx has a label input and an image output)."""
    if list(inputs) != [CLASSIFIER_INPUT]:
        raise BundleError(f"{source} takes inputs {list(inputs)}, a classifier takes only {CLASSIFIER_INPUT!r}; "
                          f"the file was replaced — re-export the bundle")
    check_input_shapes(manifest, {INPUT_IMAGE: inputs[CLASSIFIER_INPUT], INPUT_LABEL: ("N", manifest.c_dim)}, source)
    shape = tuple(outputs.get(CLASSIFIER_OUTPUT, ()))
    if len(shape) != 2 or (isinstance(shape[1], int) and not 1 <= shape[1] <= manifest.c_dim):
        raise BundleError(f"{source} has outputs {dict(outputs)}, a classifier gives {CLASSIFIER_OUTPUT!r} "
                          f"[N, <= {manifest.c_dim}]; the file was replaced — re-export the bundle")
