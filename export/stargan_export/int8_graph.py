"""QDQ INT8 graph of a generator ONNX: which convolutions run in INT8, from calibration ranges computed once.

Usage: q = ConvQuantizer(fp32_onnx, workdir, batches); q.write(out, keep_float={"node_Conv_60"}); q.macs

Only Conv and ConvTranspose read quantized tensors (per-channel symmetric 7-bit weights in int8, asymmetric uint8
activations: the VNNI/AMX-friendly u8s8 form). Everything else reads float: ONNX Runtime's QDQ quantizer
would otherwise round each convolution's output to uint8 before its InstanceNormalization, and hand the
residual Adds the rounded copy of the tensor a convolution reads, so the skip path of every residual block
is rounded again. On the official 128 px architecture those two roundings cost 5.4 dB (35.3 -> 40.6 dB on
50 held-out toy faces) and buy no speed: OpenVINO runs the same INT8 convolutions either way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

CONV_OPS = ("Conv", "ConvTranspose")
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


class ConvQuantizer:
    """Calibrates a model once (on the first `write`) and writes QDQ variants that keep chosen convolutions float.

    Args:
        fp32_path: the FP32 generator ONNX.
        workdir: a private folder for the calibration ranges (a few kB of JSON).
        batches: the calibration runs; consumed by the first `write`.
    """

    def __init__(self, fp32_path: Path, workdir: Path, batches: CalibrationDataReader) -> None:
        self.fp32_path = fp32_path
        model = onnx.load(str(fp32_path), load_external_data=False)
        self.convs = [n.name for n in model.graph.node if n.op_type in CONV_OPS]
        self.macs = conv_macs(model)
        self._ranges = workdir / "calibration-ranges.json"
        self._batches: CalibrationDataReader | None = batches

    def write(self, out: Path, keep_float: Collection[str]) -> None:
        with _root_logger_level(logging.ERROR):  # ORT's "consider pre-processing" warning: measured, no gain here
            quantize_static(
                str(self.fp32_path),
                str(out),
                self._batches,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(CONV_OPS),
                nodes_to_exclude=list(keep_float),
                per_channel=True,
                # 7-bit weights: CPUs without VNNI (AVX2) multiply u8 x s8 pairs into saturating int16 sums
                # (vpmaddubsw), which 8-bit weights overflow. Measured on the 128 px generator with OpenVINO kept
                # to AVX2 kernels (ONEDNN_MAX_CPU_ISA=AVX2): 8-bit weights 40.5 dB on AVX-512 VNNI but 36.7 dB on
                # AVX2; 7-bit weights 41.1 dB on both, so the recorded PSNR holds on every CPU `auto` picks it on.
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                # MinMax keeps only per-tensor minima/maxima per run, so memory stays flat with more images
                # (histogram methods keep every activation). With one image per run and the moving average, a
                # range is the mean of per-image extremes rather than the single most extreme pixel: +2.5 dB on
                # the 128 px generator (plain MinMax: 37.8 dB, the moving average 40.6 dB). Never set
                # CalibMaxIntermediateOutputs: in ONNX Runtime 1.32 the MinMax calibrator drops, rather than
                # merges, the runs it flushes.
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"CalibMovingAverage": True, "OpTypesToExcludeOutputQuantization": list(CONV_OPS)},
                # Ranges of every convolution's input, computed on the first call and reused by the others:
                # a variant then costs a graph rewrite, not a calibration pass.
                calibration_cache_path=str(self._ranges),
            )
        self._batches = None
        float_ops_read_float(out)

    def float_fraction(self, keep_float: Collection[str]) -> float:
        total = sum(self.macs.values())
        return sum(self.macs.get(n, 0) for n in keep_float) / total if total else 0.0


def float_ops_read_float(path: Path) -> int:
    """Point every non-convolution input that reads a QDQ-rounded activation back at the float tensor; returns
    how many inputs were changed. A Q -> DQ pair left with no reader is dropped."""
    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    source = {  # DequantizeLinear output -> the float tensor its QuantizeLinear read
        n.output[0]: producer[n.input[0]].input[0]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in producer
        and producer[n.input[0]].op_type == "QuantizeLinear"
    }
    changed = 0
    for node in model.graph.node:
        if node.op_type in CONV_OPS or node.op_type in _QDQ_OPS:
            continue
        for i, name in enumerate(node.input):
            if name in source:
                node.input[i] = source[name]
                changed += 1
    _drop_unread_qdq(model)
    onnx.save(model, str(path))
    return changed


def _drop_unread_qdq(model: onnx.ModelProto) -> None:
    outputs = {o.name for o in model.graph.output}
    while True:
        read = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if n.op_type in _QDQ_OPS and not any(o in read for o in n.output)]
        if not dead:
            return
        for n in dead:
            model.graph.node.remove(n)


def conv_macs(model: onnx.ModelProto) -> dict[str, int]:
    """Multiply-accumulates per image of every Conv and ConvTranspose, from inferred shapes (spatial sizes are
    static in our generators; an unknown size counts as 1, so the weights alone then rank the layers)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    dims.update({v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim] for v in inferred.graph.input})
    dims.update({v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim] for v in inferred.graph.output})
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    macs = {}
    for n in model.graph.node:
        if n.op_type not in CONV_OPS or n.input[1] not in weights:
            continue
        w = weights[n.input[1]]
        # Conv: every output pixel takes Cin/g * kH * kW per output channel; ConvTranspose: every input pixel
        # scatters into Cout/g * kH * kW outputs per input channel. Either way the weight count times the pixels.
        pixels = dims.get(n.output[0] if n.op_type == "Conv" else n.input[0], [1, 1, 1, 1])[2:]
        macs[n.name] = int(np.prod(w)) * int(np.prod(pixels))
    return macs


@contextlib.contextmanager
def _root_logger_level(level: int) -> Iterator[None]:
    root = logging.getLogger()
    old = root.level
    root.setLevel(max(level, old))
    try:
        yield
    finally:
        root.setLevel(old)
