"""ONNX graph pass FP32 → FP16: FP16 convolutions and activations, FP32 InstanceNormalization, FP32 I/O.

Usage: fp16_model = onnx_fp32_to_fp16(onnx.load("generator.onnx")); save_onnx(fp16_model, "generator.fp16.onnx")

Why InstanceNormalization stays FP32: its variance is a mean of squares over H×W, which overflows FP16's
65504 for large activations (reported against TensorRT, ONNX Runtime and torch2trt). Each norm node gets
an explicit Cast to FP32 on its input and a Cast back to FP16 on its output, and its scale/bias stay FP32,
so a strongly typed TensorRT build keeps exactly this placement. Graph inputs and outputs stay FP32 with
Casts at the boundary, so callers feed and read the same arrays as the FP32 graph.

What runs on ONNX Runtime CPU (checked with `optimized_model_filepath`, ORT 1.32, x86): the CPU provider
has no FP16 Conv/ConvTranspose/InstanceNorm kernels, so its InsertCastTransformer casts the FP16 weights to
FP32 once and removes every FP16↔FP32 cast pair between nodes (ours included), leaving only the boundary
casts. The CPU check thus measures FP16 weight rounding (plus input rounding) with FP32 compute; real FP16
kernels and activations are checked by the TensorRT tests on a GPU.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP32_OPS = frozenset({"InstanceNormalization"})
# Inputs that are shapes/indices, never data, per op type (positions): left untouched.
_NON_DATA_INPUTS = {"Reshape": {1}, "Expand": {1}, "Resize": {1, 2, 3}, "Pad": {1}, "Slice": {1, 2, 3, 4}}


def onnx_fp32_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a converted copy of `model`; the input model is not modified."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    fp32_names = _fp32_initializer_names(graph)
    _convert_initializers(graph, fp32_names)
    _convert_constants(graph)
    nodes = _cast_graph_inputs(graph)
    for node in graph.node:
        nodes += _wrap_fp32(node) if node.op_type in FP32_OPS else [node]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.node.extend(_cast_graph_outputs(graph))  # after wrapping: a norm may produce a graph output
    del graph.value_info[:]  # stale FP32 types; shape inference below fills them in again
    out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    onnx.checker.check_model(out, full_check=True)
    return out


def _fp32_initializer_names(graph: onnx.GraphProto) -> set[str]:
    """Initializers read by FP32 ops (norm scale/bias). One that an FP16 op also reads is split in two."""
    fp32, fp16 = set(), set()
    for node in graph.node:
        skip = _NON_DATA_INPUTS.get(node.op_type, set())
        for i, name in enumerate(node.input):
            if i not in skip:
                (fp32 if node.op_type in FP32_OPS else fp16).add(name)
    shared = fp32 & fp16 & {t.name for t in graph.initializer}
    for tensor in list(graph.initializer):
        if tensor.name in shared:
            copy = numpy_helper.from_array(numpy_helper.to_array(tensor), f"{tensor.name}__fp16")
            graph.initializer.append(copy)
            for node in graph.node:
                if node.op_type not in FP32_OPS:
                    _rename_inputs(node, tensor.name, copy.name)
    return fp32


def _convert_initializers(graph: onnx.GraphProto, keep_fp32: set[str]) -> None:
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT and tensor.name not in keep_fp32:
            array = numpy_helper.to_array(tensor)
            half = numpy_helper.from_array(_to_half(array), tensor.name)
            graph.initializer[i].CopyFrom(half)


def _convert_constants(graph: onnx.GraphProto) -> None:
    """Float `Constant` nodes feed FP16 ops (none feed the norms in StarGAN), so convert them too."""
    for node in graph.node:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(_to_half(numpy_helper.to_array(attr.t)), attr.t.name))


def _to_half(array: np.ndarray) -> np.ndarray:
    # Saturate instead of producing inf for (never expected) weights beyond FP16 range.
    limit = float(np.finfo(np.float16).max)
    return np.clip(array, -limit, limit).astype(np.float16)


def _cast_graph_inputs(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    casts = []
    for value in graph.input:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = f"{value.name}__fp16"
        for node in graph.node:
            _rename_inputs(node, value.name, half)
        casts.append(
            helper.make_node("Cast", [value.name], [half], name=f"cast_in_{value.name}", to=TensorProto.FLOAT16)
        )
    return casts


def _cast_graph_outputs(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    casts = []
    for value in graph.output:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = f"{value.name}__fp16"
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == value.name:
                    node.output[i] = half
            _rename_inputs(node, value.name, half)
        casts.append(
            helper.make_node("Cast", [half], [value.name], name=f"cast_out_{value.name}", to=TensorProto.FLOAT)
        )
    return casts


def _wrap_fp32(node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """Cast(FP32) → node (FP32 scale/bias) → Cast(FP16), keeping the node's external tensor names."""
    data_in, data_out = node.input[0], node.output[0]
    in32, out32 = f"{data_out}__in_fp32", f"{data_out}__fp32"
    before = helper.make_node("Cast", [data_in], [in32], name=f"{data_out}_cast_fp32", to=TensorProto.FLOAT)
    after = helper.make_node("Cast", [out32], [data_out], name=f"{data_out}_cast_fp16", to=TensorProto.FLOAT16)
    node.input[0] = in32
    node.output[0] = out32
    return [before, node, after]


def _rename_inputs(node: onnx.NodeProto, old: str, new: str) -> None:
    for i, name in enumerate(node.input):
        if name == old:
            node.input[i] = new
