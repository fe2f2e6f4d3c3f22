"""Two tiny ONNX graphs that put uint8 at a TensorRT engine's boundary: the host's Normalizer as graph ops.

Usage: save_onnx(preprocess_graph(128, mean, std), "pre.onnx"); save_onnx(postprocess_graph(128, mean, std), "p.onnx")

`preprocess`: uint8 NHWC `pixels` -> float32 NCHW `image` (Cast, Transpose, Mul, Add). `postprocess`: float32
NCHW `output` -> uint8 NHWC `pixels` (Transpose, Mul, Add, +0.5, Floor, Clip, Cast). The constants and the order
of operations are `Normalizer.preprocess` / `postprocess`'s, so ONNX Runtime gives the host's bytes exactly;
Floor and Clip leave integers in [0, 255], so how a runtime's Cast rounds does not matter. TensorRT takes uint8
only at a network's inputs and outputs, through a Cast: hence Cast first on the way in and last on the way out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stargan_sdk.bundle.constants import INPUT_IMAGE, OUTPUT_IMAGE, PIXELS
from stargan_sdk.images.imaging import Normalizer

OPSET = 17


def _constant(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="stargan-export")
    onnx.checker.check_model(model, full_check=True)
    return model


def preprocess_graph(image_size: int, mean: Sequence[float], std: Sequence[float]) -> onnx.ModelProto:
    """uint8 [N, S, S, 3] -> float32 [N, 3, S, S]: v * scale + shift per channel."""
    norm, s = Normalizer(mean, std), image_size
    nodes = [
        helper.make_node("Cast", [PIXELS], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["as_float"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["nchw", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "shift"], [INPUT_IMAGE]),
    ]
    graph = helper.make_graph(
        nodes,
        "preprocess",
        [helper.make_tensor_value_info(PIXELS, TensorProto.UINT8, ["N", s, s, 3])],
        [helper.make_tensor_value_info(INPUT_IMAGE, TensorProto.FLOAT, ["N", 3, s, s])],
        [_constant("scale", norm.scale), _constant("shift", norm.shift)],
    )
    return _model(graph)


def postprocess_graph(image_size: int, mean: Sequence[float], std: Sequence[float]) -> onnx.ModelProto:
    """float32 [N, 3, S, S] -> uint8 [N, S, S, 3]: floor(y * out_scale + out_shift + 0.5) clipped to [0, 255]."""
    norm, s = Normalizer(mean, std), image_size
    nodes = [
        helper.make_node("Transpose", [OUTPUT_IMAGE], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Mul", ["nhwc", "out_scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "out_shift"], ["values"]),
        helper.make_node("Add", ["values", "half"], ["rounded_up"]),
        helper.make_node("Floor", ["rounded_up"], ["floored"]),
        helper.make_node("Clip", ["floored", "low", "high"], ["clipped"]),
        helper.make_node("Cast", ["clipped"], [PIXELS], to=TensorProto.UINT8),
    ]
    nhwc = (1, 1, 1, 3)  # the per-channel constants, laid out for the NHWC values they scale
    graph = helper.make_graph(
        nodes,
        "postprocess",
        [helper.make_tensor_value_info(OUTPUT_IMAGE, TensorProto.FLOAT, ["N", 3, s, s])],
        [helper.make_tensor_value_info(PIXELS, TensorProto.UINT8, ["N", s, s, 3])],
        [
            _constant("out_scale", norm.out_scale.reshape(nhwc)),
            _constant("out_shift", norm.out_shift.reshape(nhwc)),
            _constant("half", np.array(0.5)),
            _constant("low", np.array(0.0)),
            _constant("high", np.array(255.0)),
        ],
    )
    return _model(graph)
