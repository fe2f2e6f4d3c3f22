"""A bundle's graphs checked against its manifest (which `read_manifest` has checked against itself).

Usage: check_input_shapes(read_manifest("models/toyfaces-64"), backend.input_shapes(), "generator.onnx")

`verify_artifact` runs `check_graph_io` on the I/O tensors a protobuf walk read from each ONNX file, so a graph
that disagrees with the manifest is refused before any ONNX Runtime / OpenVINO session exists; the same rules
then check what a loaded engine reports (a TensorRT plan is not ONNX). Only the files a Translator uses are hashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stargan_sdk.bundle.constants import (
    CLASSIFIER_INPUT,
    CLASSIFIER_OUTPUT,
    INPUT_IMAGE,
    INPUT_LABEL,
    OUTPUT_IMAGE,
)
from stargan_sdk.errors import BundleError

if TYPE_CHECKING:  # manifest.py calls these checks: a runtime import would be a cycle
    from stargan_sdk.bundle.manifest import Manifest

ONNX_FLOAT = 1  # TensorProto.FLOAT: every StarGAN graph takes and gives float32 (the FP16 graph casts inside)


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


def check_classifier_io(
    manifest: Manifest, inputs: Mapping[str, Sequence[Any]], outputs: Mapping[str, Sequence[Any]], source: str
) -> None:
    """Refuse a classifier graph that is not one: exactly the image input, a [N, k] `logits` output with
    k <= c_dim (a generator graph renamed classifier.onnx has a label input and an image output)."""
    if list(inputs) != [CLASSIFIER_INPUT]:
        raise BundleError(
            f"{source} takes inputs {list(inputs)}, a classifier takes only {CLASSIFIER_INPUT!r}; "
            f"the file was replaced — re-export the bundle"
        )
    check_input_shapes(manifest, {INPUT_IMAGE: inputs[CLASSIFIER_INPUT], INPUT_LABEL: ("N", manifest.c_dim)}, source)
    shape = tuple(outputs.get(CLASSIFIER_OUTPUT, ()))
    if len(shape) != 2 or (isinstance(shape[1], int) and not 1 <= shape[1] <= manifest.c_dim):
        raise BundleError(
            f"{source} has outputs {dict(outputs)}, a classifier gives {CLASSIFIER_OUTPUT!r} "
            f"[N, <= {manifest.c_dim}]; the file was replaced — re-export the bundle"
        )


def check_graph_io(
    manifest: Manifest,
    role: str,
    inputs: Mapping[str, tuple[int, Sequence[int | None]]],
    outputs: Mapping[str, tuple[int, Sequence[int | None]]],
    source: str,
) -> None:
    """Refuse an ONNX graph whose inputs/outputs ({name: (elem_type, dims)}, None for a symbolic dim) are not
    the manifest's engine boundary for its role; run on the protobuf, before a runtime sees the file."""
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for name, (elem, _) in tensors.items():
            if elem != ONNX_FLOAT:
                raise BundleError(
                    f"{source}: {kind} {name!r} has ONNX element type {elem}, the engine boundary is "
                    f"float32; the file was replaced — re-export the bundle"
                )
    shapes_in = {k: _dims(v[1]) for k, v in inputs.items()}
    shapes_out = {k: _dims(v[1]) for k, v in outputs.items()}
    if role == "classifier":
        check_classifier_io(manifest, shapes_in, shapes_out, source)
        return
    if sorted(shapes_in) != sorted([INPUT_IMAGE, INPUT_LABEL]):
        raise BundleError(
            f"{source} takes inputs {list(shapes_in)}, the generator takes {INPUT_IMAGE!r} and "
            f"{INPUT_LABEL!r}; the file was replaced — re-export the bundle"
        )
    check_input_shapes(manifest, shapes_in, source)
    s = manifest.image_size
    got = shapes_out.get(OUTPUT_IMAGE)
    if (
        list(shapes_out) != [OUTPUT_IMAGE]
        or got is None
        or len(got) != 4
        or any(isinstance(g, int) and g != w for g, w in zip(got[1:], (3, s, s)))
    ):
        raise BundleError(
            f"{source} has outputs {shapes_out}, the generator gives {OUTPUT_IMAGE!r} [N, 3, {s}, {s}] "
            f"(image_size {s}); the manifest or the graph was replaced — re-export the bundle"
        )


def _dims(dims: Sequence[int | None]) -> tuple[int | str, ...]:
    return tuple("N" if d is None else d for d in dims)
