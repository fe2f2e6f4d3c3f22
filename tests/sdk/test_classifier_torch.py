"""The classifier beside a torch backend on its GPU: classifier.onnx read without onnx, run by torch, equal to
ONNX Runtime's logits (on the CPU here: the same code with a CPU device), chosen by `load_classifier` only when it
matches, handed uint8 crops by the Translator; anything else keeps ONNX Runtime with the reason said.

Usage: pytest -q tests/sdk/test_classifier_torch.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from stargan_sdk import Translator
from stargan_sdk.backends.classifier import AttributeClassifier, load_classifier
from stargan_sdk.backends.classifier_torch import ClassifierGraphError, TorchClassifier, chain_forward
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.onnx_graph import read_graph
from stargan_sdk.errors import BundleError, ImageInputError

torch = pytest.importorskip("torch")


class OnDevice:
    """A runner as `load_classifier` sees a torch backend on a GPU (here the CPU stands in for the GPU)."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = Bundle.open(bundle)

    def device_classifier(self):
        return TorchClassifier.from_bundle(self.bundle, torch, torch.device("cpu"))


class OnCpu:
    def device_classifier(self):
        return None


def crops(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_the_graph_reader_equals_onnx(bundle: Path) -> None:
    path = bundle / "classifier.onnx"
    graph, model = read_graph(path.read_bytes()), onnx.load(str(path))
    assert [n.op for n in graph.nodes] == [n.op_type for n in model.graph.node]
    assert [n.inputs for n in graph.nodes] == [tuple(n.input) for n in model.graph.node]
    for ours, theirs in zip(graph.nodes, model.graph.node):
        assert ours.attributes == {
            a.name: (tuple(v) if isinstance(v := helper.get_attribute_value(a), list) else v) for a in theirs.attribute
        }
    want = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(graph.initializers) == set(want)
    for name, array in want.items():
        assert graph.initializers[name].dtype == array.dtype
        np.testing.assert_array_equal(graph.initializers[name], array)
    assert graph.inputs == ["image"] and graph.outputs == ["logits"]


def _model(nodes: list, initializers: list, attrs: dict | None = None) -> bytes:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 4, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2])
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializers)).SerializeToString()


def test_values_stored_as_fields_read_like_raw_bytes() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    weight = helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel().tolist(), raw=False)  # float_data
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [-1, 2], raw=False)  # int64_data, a negative value
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], pads=[0, 0, 0, 0], strides=[1, 1]),
        helper.make_node("LeakyRelu", ["c"], ["r"], alpha=0.2),
        helper.make_node("Reshape", ["r", "s"], ["logits"]),
    ]
    graph = read_graph(_model(nodes, [weight, shape]))
    np.testing.assert_array_equal(graph.initializers["w"], w)
    np.testing.assert_array_equal(graph.initializers["s"], [-1, 2])
    assert graph.nodes[1].attributes == {"alpha": pytest.approx(0.2)}
    x = rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
    got = chain_forward(torch, graph, torch.device("cpu"))(torch.from_numpy(x)).numpy()
    want = np.where((v := np.einsum("nchw,ochw->no", x, w)) > 0, v, 0.2 * v)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_external_data_and_other_operators_are_refused() -> None:
    external = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0], raw=False)
    external.data_location = TensorProto.EXTERNAL
    with pytest.raises(BundleError, match="keeps its data outside the file"):
        read_graph(_model([helper.make_node("Relu", ["image"], ["logits"])], [external]))
    sigmoid = read_graph(_model([helper.make_node("Sigmoid", ["image"], ["logits"])], []))
    with pytest.raises(ClassifierGraphError, match="operators this GPU path does not run: Sigmoid"):
        chain_forward(torch, sigmoid, torch.device("cpu"))
    branch = read_graph(
        _model([helper.make_node("Relu", ["image"], ["a"]), helper.make_node("Relu", ["image"], ["logits"])], [])
    )
    with pytest.raises(ClassifierGraphError, match="not a chain at its Relu"):
        chain_forward(torch, branch, torch.device("cpu"))


def test_torch_logits_equal_onnxruntimes(bundle: Path, translator: Translator) -> None:
    gpu = TorchClassifier.from_bundle(Bundle.open(bundle), torch, torch.device("cpu"))
    images = crops(5, seed=3)
    want = translator.classifier.logits(translator.normalizer.preprocess(images))
    np.testing.assert_allclose(gpu.logits(translator.normalizer.preprocess(images)), want, atol=1e-4)
    np.testing.assert_allclose(gpu.logits_uint8(images), want, atol=1e-4)
    assert np.abs(want).max() > 1e-2  # real logits, not a degenerate all-zero head


def test_load_classifier_picks_the_device_only_when_it_matches(bundle: Path, monkeypatch) -> None:
    opened = Bundle.open(bundle)
    assert isinstance(load_classifier(opened, OnCpu()), AttributeClassifier)  # a CPU backend: ORT
    chosen = load_classifier(opened, OnDevice(bundle))
    assert isinstance(chosen, TorchClassifier) and chosen.describe() == "torch on cpu"
    monkeypatch.setattr(TorchClassifier, "logits_uint8", lambda self, x: np.zeros((len(x), 5), np.float32) + 1.0)
    kept = load_classifier(opened, OnDevice(bundle))
    assert isinstance(kept, AttributeClassifier)
    assert "logits differ from ONNX Runtime's: max abs" in kept.gpu_refused
    assert kept.describe().startswith("onnxruntime on cpu (not on the GPU: its logits differ")


def test_a_graph_it_cannot_run_keeps_onnxruntime_with_the_reason(bundle_copy: Path, monkeypatch) -> None:
    from stargan_sdk.backends import classifier_torch

    monkeypatch.setattr(classifier_torch, "OPS", ("Conv", "Reshape"))  # as if LeakyRelu were unknown
    kept = load_classifier(Bundle.open(bundle_copy), OnDevice(bundle_copy))
    assert isinstance(kept, AttributeClassifier)
    assert kept.gpu_refused == "classifier graph has operators this GPU path does not run: LeakyRelu"


def test_the_translator_hands_uint8_crops_to_a_device_classifier(bundle: Path, translator: Translator, monkeypatch):
    images = list(crops(4, seed=9))
    want = translator.edit_rgb(images, {"Blond_Hair": 1})  # ONNX Runtime: host-normalised floats, estimated
    with Translator.load(bundle, backend="torch") as t:  # torch on the CPU: its infer_uint8 runs like on a GPU
        t.classifier = load_classifier(t.bundle, OnDevice(bundle))
        monkeypatch.setattr(t.backend, "uint8_on_device", True)
        seen = []
        for name in ("preprocess", "preprocess_into"):
            monkeypatch.setattr(t.normalizer, name, lambda *a, _n=name: seen.append(_n))
        got = t.edit_rgb(images, {"Blond_Hair": 1})
        assert seen == []  # nothing normalised on the host: uint8 to the classifier and to the generator
        assert t.describe()["classifier_runs_on"] == "torch on cpu"
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # same estimates; FP32 torch vs ORT rounding


@pytest.mark.gpu
def test_cuda_torch_backends_run_the_classifier_on_their_gpu(bundle: Path, translator: Translator) -> None:
    images = list(crops(6, seed=5))
    want_logits = translator.classifier.logits(translator.normalizer.preprocess(np.stack(images)))
    for backend, options in (("torch", {}), ("inductor", {"batch_sizes": (1, 8)})):  # inductor's uint8 test sizes
        with Translator.load(bundle, backend=backend, **options) as t:
            assert t.describe()["classifier_runs_on"] == "torch on cuda:0", t.describe()
            got = t.classifier.logits_uint8(np.stack(images))
            scale = max(1.0, float(np.abs(want_logits).max()))
            assert float(np.abs(got - want_logits).max()) / scale <= 1e-2
            edited = t.edit_rgb(images, {"Blond_Hair": 1})
            assert edited.dtype == np.uint8 and edited.shape == (6, 32, 32, 3)


def test_a_classifier_call_holds_the_backends_lock_with_tf32_off(bundle: Path) -> None:
    import threading

    lock, seen = threading.Lock(), []
    clf = TorchClassifier.from_bundle(Bundle.open(bundle), torch, torch.device("cpu"), lock=lock)
    forward = clf._forward
    clf._forward = lambda x: seen.append((lock.locked(), torch.backends.cudnn.allow_tf32)) or forward(x)
    before = torch.backends.cudnn.allow_tf32
    clf.logits_uint8(crops(2))
    assert seen == [(True, False)] and torch.backends.cudnn.allow_tf32 == before and not lock.locked()
    with pytest.raises(ImageInputError, match=r"the classifier takes uint8 crops \[N, S, S, 3\], got float32"):
        clf.logits_uint8(crops(2).astype(np.float32))
    clf.close()
    assert clf._forward is None  # the weights are let go


def test_any_failure_of_the_device_classifier_keeps_onnxruntime(bundle: Path) -> None:
    class Broken:
        def device_classifier(self):
            raise KeyError("discriminator.main.0.weight")

    kept = load_classifier(Bundle.open(bundle), Broken())
    assert isinstance(kept, AttributeClassifier) and kept.gpu_refused == "KeyError: 'discriminator.main.0.weight'"


def test_fields_of_unexpected_kinds_are_bundle_errors() -> None:
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
        helper.make_tensor("i", TensorProto.INT64, [1], [0]),
        [4],
    )
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["image"], ["logits"])],
            "g",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])],
            sparse_initializer=[sparse],
        )
    )
    with pytest.raises(BundleError, match="sparse initializers"):
        read_graph(model.SerializeToString())
    dims_as_fixed64 = bytes([0x3A, 11, 0x2A, 9, 0x09]) + b"\x00" * 8  # graph { initializer { dims: fixed64 } }
    with pytest.raises(BundleError, match="a field this reader does not decode"):
        read_graph(dims_as_fixed64)


def test_edit_rgb_refuses_what_is_not_a_uint8_crop(translator: Translator) -> None:
    with pytest.raises(ImageInputError, match=r"edit_rgb takes uint8 crops \[32, 32, 3\], got float32\[32, 32, 3\]"):
        translator.edit_rgb([crops(1)[0].astype(np.float32)], {"Blond_Hair": 1})
    with pytest.raises(ImageInputError, match=r"got uint8\[16, 16, 3\]"):
        translator.edit_rgb([crops(1, size=16)[0]], {"Blond_Hair": 1})
