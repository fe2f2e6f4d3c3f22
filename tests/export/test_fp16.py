"""FP16 graph pass: structure (FP16 convs, FP32 norms between Casts, FP32 I/O) and parity vs FP32 torch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from stargan_export.fp16 import onnx_fp32_to_fp16
from stargan_export.parity import extreme_images, measure, ort_session, sample_images, sample_labels
from stargan_sdk.bundle.constants import GENERATOR_FP16_ONNX
from stargan_sdk.bundle.manifest import read_manifest

TINY_SIZE = 32  # as tests/export/conftest.py builds the session bundle


@pytest.fixture(scope="module")
def fp16_model(tiny_bundle) -> onnx.ModelProto:
    return onnx.load(str(tiny_bundle / GENERATOR_FP16_ONNX))


def test_norms_run_in_fp32_between_casts(fp16_model):
    graph = fp16_model.graph
    producers = {o: n for n in graph.node for o in n.output}
    consumers = {i: n for n in graph.node for i in n.input}
    inits = {t.name: t for t in graph.initializer}
    norms = [n for n in graph.node if n.op_type == "InstanceNormalization"]
    assert len(norms) == 9
    for node in norms:
        before, after = producers[node.input[0]], consumers[node.output[0]]
        assert before.op_type == "Cast" and before.attribute[0].i == TensorProto.FLOAT
        assert after.op_type == "Cast" and after.attribute[0].i == TensorProto.FLOAT16
        assert inits[node.input[1]].data_type == inits[node.input[2]].data_type == TensorProto.FLOAT


def test_convolutions_are_fp16_and_io_fp32(fp16_model):
    graph = fp16_model.graph
    inits = {t.name: t for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert len(convs) == 10
    assert all(inits[n.input[1]].data_type == TensorProto.FLOAT16 for n in convs)
    assert [v.type.tensor_type.elem_type for v in graph.input] == [TensorProto.FLOAT] * 2
    assert [v.type.tensor_type.elem_type for v in graph.output] == [TensorProto.FLOAT]
    assert [n.op_type for n in graph.node[:2]] == ["Cast", "Cast"] and graph.node[-1].op_type == "Cast"


def test_fp16_parity_on_face_like_images(tiny_bundle, tiny_generator):
    image, label = sample_images(8, TINY_SIZE, seed=5), sample_labels(8, 5, seed=5)
    out = ort_session(tiny_bundle / GENERATOR_FP16_ONNX).run(["output"], {"image": image, "label": label})[0]
    with torch.no_grad():
        ref = tiny_generator(torch.from_numpy(image), torch.from_numpy(label)).numpy()
    metrics = measure(ref, out)
    assert metrics["psnr_db"] >= 40.0
    assert 0.0 < metrics["max_abs"] < 0.05  # non-zero: the weights really are rounded to FP16
    recorded = read_manifest(tiny_bundle).artifact("generator", "onnx", "fp16").parity
    assert recorded is not None and recorded["psnr_db"] >= 40.0 and recorded["max_batch_checked"] == 8


def test_fp16_is_finite_on_extreme_inputs(tiny_bundle):
    out = ort_session(tiny_bundle / GENERATOR_FP16_ONNX).run(
        ["output"], {"image": extreme_images(TINY_SIZE), "label": sample_labels(3, 5)}
    )[0]
    assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0


def test_initializer_shared_by_fp16_and_fp32_ops_is_split():
    """A weight read by a norm (FP32) and by an FP16 op gets an FP16 copy; the graph still computes the same."""
    scale = numpy_helper.from_array(np.linspace(0.5, 1.5, 4).astype(np.float32), "s")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    shape = numpy_helper.from_array(np.array([1, 4, 1, 1], np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["s", "shape"], ["s4"]),
        helper.make_node("Mul", ["x", "s4"], ["y"]),
        helper.make_node("InstanceNormalization", ["y", "s", "b"], ["z"], name="norm"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 3, 3])],
        [scale, bias, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    converted = onnx_fp32_to_fp16(model)
    types = {t.name: t.data_type for t in converted.graph.initializer}
    assert types["s"] == TensorProto.FLOAT and types["s__fp16"] == TensorProto.FLOAT16
    assert types["shape"] == TensorProto.INT64
    x = np.random.default_rng(0).normal(size=(1, 4, 3, 3)).astype(np.float32)
    import onnxruntime as ort

    def run(m: onnx.ModelProto) -> np.ndarray:
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]

    assert run(converted).dtype == np.float32
    assert np.abs(run(converted) - run(model)).max() < 1e-2
