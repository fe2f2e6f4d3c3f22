"""Torch → ONNX (FP32): the generator (`image`, `label` → `output`) and the classifier (`image` → `logits`).

Usage: model = torch_to_onnx(generator, "bundle/generator.onnx", image_size=128, c_dim=5, opset=17)

Exporter choice: torch 2.13's default `dynamo=True` exporter (torch.export + onnxscript). It emits
`InstanceNormalization` with per-instance statistics and a symbolic batch dim named from the
`torch.export.Dim`, and a small graph (9 op types, no Shape/Gather/Where chains). The legacy TorchScript
exporter (`dynamo=False`) still exists but warns that it is deprecated since torch 2.9, needs the
`dynamic_axes` spelling and warns that it overrides EVAL mode for instance_norm; nothing here needs it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from stargan_export.errors import ExportError
from stargan_sdk.bundle.constants import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT, INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.host.files import atomic_write_bytes

# The dynamo exporter writes opset 18 natively and down-converts; below 15 the ONNX version converter has
# no adapter for Shape and silently leaves opset 18. 21 is the newest opset TensorRT 10's parser accepts.
MIN_OPSET, MAX_OPSET = 15, 21
BATCH_DIM = "N"


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"unsupported opset {opset}: choose one in {MIN_OPSET}..{MAX_OPSET}")


def torch_to_onnx(
    generator: torch.nn.Module, path: str | Path, image_size: int, c_dim: int, opset: int = 17
) -> onnx.ModelProto:
    """Export the generator with a dynamic batch dim, check it and write it atomically as one file."""
    example = (torch.zeros(2, 3, image_size, image_size), torch.zeros(2, c_dim))
    model = _export(generator, example, [INPUT_IMAGE, INPUT_LABEL], [OUTPUT_IMAGE], opset)
    check_graph(model, opset, "generator")
    save_onnx(model, path)
    return model


def classifier_to_onnx(
    classifier: torch.nn.Module, path: str | Path, image_size: int, opset: int = 17
) -> onnx.ModelProto:
    """Export an image → logits module (the discriminator's domain head) with a dynamic batch dim."""
    example = (torch.zeros(2, 3, image_size, image_size),)
    model = _export(classifier, example, [CLASSIFIER_INPUT], [CLASSIFIER_OUTPUT], opset)
    check_graph(model, opset, "classifier", needs_instance_norm=False)
    save_onnx(model, path)
    return model


def _export(
    module: torch.nn.Module, example: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str], opset: int
) -> onnx.ModelProto:
    check_opset(opset)
    module = module.eval()  # InstanceNorm has no running stats, so eval() keeps per-instance statistics
    batch = torch.export.Dim(BATCH_DIM, min=1)
    dynamic = tuple({0: batch} for _ in example)
    noise = io.StringIO()
    try:
        # The exporter prints progress and version-converter notes; keep them out of the CLI's output.
        with contextlib.redirect_stdout(noise), warnings.catch_warnings(), _quiet_loggers():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example,
                None,
                input_names=inputs,
                output_names=outputs,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes=dynamic,
                verbose=False,
            )
    except Exception as e:  # the exporter raises many types; one line is what the user needs
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"ONNX export failed: {first}") from e
    return program.model_proto


@contextlib.contextmanager
def _quiet_loggers():
    names = ("torch.onnx", "onnxscript", "torch._export", "torch.export")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def check_graph(model: onnx.ModelProto, opset: int, what: str, needs_instance_norm: bool = True) -> None:
    """Structural checks every exported graph must pass (full ONNX checker included)."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version != opset:
        raise ExportError(f"{what} graph has opset {version}, not the requested {opset}")
    ops = {n.op_type for n in model.graph.node}
    if "BatchNormalization" in ops:
        raise ExportError(f"{what} graph contains BatchNormalization; StarGAN needs per-instance statistics")
    if needs_instance_norm and "InstanceNormalization" not in ops:
        raise ExportError(f"{what} graph has no InstanceNormalization node")
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].dim_value or not dims[0].dim_param:
            raise ExportError(f"{what} tensor {value.name!r} does not have a dynamic batch dimension")
        if any(not d.dim_value for d in dims[1:]):
            raise ExportError(f"{what} tensor {value.name!r} has a dynamic non-batch dimension")
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ExportError(f"{what} graph keeps weights in external data; bundles need one self-contained file")
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{what} graph fails the ONNX checker: {str(e).splitlines()[0]}") from None


def save_onnx(model: onnx.ModelProto, path: str | Path) -> None:
    """Write one self-contained .onnx file atomically (protobuf's 2 GiB limit is far above StarGAN's 34 MB)."""
    atomic_write_bytes(Path(path), model.SerializeToString())
