"""A bundle's graphs checked against its manifest (which `read_manifest` has checked against itself).

Usage: check_input_shapes(read_manifest("models/toyfaces-64"), backend.input_shapes(), "generator.onnx")

Checksums are verified by whoever opens an artifact (`verify_artifact`), so only the files a
Translator actually uses are hashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL
from stargan_sdk.errors import BundleError
from stargan_sdk.bundle.manifest import Manifest


def _expected(manifest: Manifest) -> dict[str, tuple[int, ...]]:
    s = manifest.image_size
    return {INPUT_IMAGE: (3, s, s), INPUT_LABEL: (manifest.c_dim,)}


def check_input_shapes(manifest: Manifest, shapes: Mapping[str, Sequence[Any]], source: str) -> None:
    """Refuse a graph whose fixed input dimensions disagree with the manifest (symbolic dims pass)."""
    for name, want in _expected(manifest).items():
        if name not in shapes:
            raise BundleError(f"{source} has no input named {name!r} (inputs: {', '.join(shapes)}); re-export the bundle")
        got = tuple(shapes[name])
        fixed = [(g, w) for g, w in zip(got[1:], want) if isinstance(g, int)]
        if len(got) != len(want) + 1 or any(g != w for g, w in fixed):
            raise BundleError(
                f"{source} does not match its manifest: input {name!r} is {list(got)}, the manifest says "
                f"[N, {', '.join(map(str, want))}] (image_size {manifest.image_size}, c_dim {manifest.c_dim}); "
                f"the manifest or the graph was replaced — re-export the bundle"
            )
