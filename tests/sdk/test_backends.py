"""Backend selection and parity: auto -> onnxruntime here, torch CPU == ONNX, FP16 graph, GPU paths (gpu)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from stargan_sdk import Translator
from stargan_sdk.backends import registry
from stargan_sdk.backends.onnxruntime import OrtBackend, physical_cores
from stargan_sdk.errors import BackendUnavailableError, StarGANError
from stargan_sdk.manifest import read_manifest


def batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32)
    c = rng.integers(0, 2, (n, 5)).astype(np.float32)
    return x, c


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(2.0**2 / mse)


def test_auto_picks_a_cpu_backend_and_keeps_the_reasons(bundle: Path) -> None:
    expected = "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"  # OpenVINO first on CPU
    with Translator.load(bundle) as t:
        assert t.backend_name == expected
        assert t.candidates[expected].ok
        assert not t.candidates["tensorrt"].ok and t.candidates["tensorrt"].reason  # no engine/GPU here
    report = registry.availability_report(bundle, read_manifest(bundle))
    assert set(report) == {"tensorrt", "onnxruntime", "torch", "openvino"}
    assert report["torch"].ok and "generator.pt2" in report["torch"].reason


def test_unknown_or_broken_backends_are_reported(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendUnavailableError, match="unknown backend 'tensorflow'"):
        Translator.load(bundle, backend="tensorflow")
    monkeypatch.setitem(registry.BACKENDS, "tensorrt", "stargan_sdk.backends.no_such_module:X")
    avail = registry.availability("tensorrt", bundle, read_manifest(bundle))
    assert not avail.ok and "cannot be imported" in avail.reason
    chosen = registry.select_backend("auto", bundle, read_manifest(bundle))[0]
    assert chosen.name == ("openvino" if importlib.util.find_spec("openvino") else "onnxruntime")


def test_auto_falls_back_to_onnxruntime_without_openvino(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BACKENDS, "openvino", "stargan_sdk.backends.no_such_module:X")
    cls, reasons = registry.select_backend("auto", bundle, read_manifest(bundle))
    assert cls is OrtBackend and not reasons["openvino"].ok and not reasons["tensorrt"].ok


def test_torch_cpu_matches_onnxruntime(bundle: Path, translator: Translator) -> None:
    x, c = batch(3)
    with Translator.load(bundle, backend="torch", device_type="cpu") as t:
        assert t.backend.describe() == {"backend": "torch", "device": "cpu", "precision": "fp32"}
        np.testing.assert_allclose(t.infer(x, c), translator.infer(x, c), atol=1e-4)


def test_onnxruntime_options(bundle: Path, translator: Translator) -> None:
    x, c = batch(4, seed=1)
    reference = translator.infer(x, c)
    with Translator.load(bundle, backend="onnxruntime", precision="fp16") as half:
        assert half.backend.describe()["file"] == "generator.fp16.onnx"
        got = half.infer(x, c)
        assert np.abs(got - reference).max() < 0.02 and psnr_db(got, reference) > 40
    with Translator.load(bundle, backend="onnxruntime", io_binding=True, threads=1) as bound:
        assert bound.backend.describe()["intra_op_threads"] == 1
        np.testing.assert_allclose(bound.infer(x, c), reference, atol=1e-6)
    with pytest.raises(BackendUnavailableError, match="provider"):
        Translator.load(bundle, backend="onnxruntime", provider="cuda")  # no CUDA provider on this machine
    assert 1 <= physical_cores()


def test_backend_contract(bundle: Path) -> None:
    backend = OrtBackend(bundle, read_manifest(bundle))
    with pytest.raises(StarGANError, match="not loaded"):
        backend.infer(dict(zip(("image", "label"), batch(1))))
    with backend:
        assert backend.loaded and backend.input_shapes()["label"][1] == 5
    assert not backend.loaded
    backend.close()  # idempotent


def test_fp16_pass_halves_convs_and_keeps_norms_fp32(bundle: Path) -> None:
    torch = pytest.importorskip("torch")
    from stargan_sdk.backends.torch_backend import to_mixed_fp16

    module = torch.export.load(str(bundle / "generator.pt2")).module()
    convs = [n for n in module.graph.nodes if "conv" in str(n.target)]
    norms = [n for n in module.graph.nodes if "instance_norm" in str(n.target)]
    assert to_mixed_fp16(torch, module) == (len(convs), len(norms)) == (10, 9)  # repeat_num 2
    for node in norms:  # every norm now reads a float32 cast
        assert node.args[0].target == torch.ops.aten.to.dtype and node.args[0].args[1] == torch.float32
    halves = {p.dtype for name, p in module.named_parameters() if p.dim() == 4}
    norm_params = {p.dtype for name, p in module.named_parameters() if p.dim() == 1}
    assert halves == {torch.float16} and norm_params == {torch.float32}


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 3, 8])
def test_torch_cuda_fp16_close_to_fp32_and_graphs_equal_eager(bundle: Path, translator: Translator, n: int) -> None:
    x, c = batch(n, seed=n)
    reference = translator.infer(x, c)  # ONNX Runtime CPU, FP32
    with Translator.load(bundle, backend="torch", precision="fp32", cuda_graphs=False) as fp32:
        np.testing.assert_allclose(fp32.infer(x, c), reference, atol=1e-4)  # true FP32: TF32 is off
    with Translator.load(bundle, backend="torch", precision="fp16", cuda_graphs=False) as eager:
        eager_out = eager.infer(x, c)
    with Translator.load(bundle, backend="torch", precision="fp16", cuda_graphs=True) as graphed:
        first, second = graphed.infer(x, c), graphed.infer(x, c)  # capture, then replay
        info = graphed.backend.describe()
    assert info["cuda_graphs"] and info["graph_batch_sizes"] == [n], info
    assert psnr_db(eager_out, reference) >= 40
    np.testing.assert_allclose(first, eager_out, atol=2e-3)
    np.testing.assert_array_equal(second, first)


@pytest.mark.gpu
def test_torch_cuda_is_correct_from_eight_threads(bundle: Path) -> None:
    import threading

    inputs = [batch(1 + i % 3, seed=10 + i) for i in range(8)]
    with Translator.load(bundle, backend="torch", cuda_graphs=True) as t:
        reference = [t.infer(x, c) for x, c in inputs]
        results: dict[int, np.ndarray] = {}

        def work(i: int) -> None:
            for _ in range(5):
                results[i] = t.infer(*inputs[i])
                np.testing.assert_array_equal(results[i], reference[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert len(results) == 8 and all(np.array_equal(results[i], reference[i]) for i in range(8))


BACKEND_CLASSES = [
    ("stargan_sdk.backends.onnxruntime", "OrtBackend"),
    ("stargan_sdk.backends.openvino", "OpenVinoBackend"),
    ("stargan_sdk.backends.tensorrt", "TrtBackend"),
    ("stargan_sdk.backends.torch_backend", "TorchBackend"),
]


@pytest.mark.parametrize("module, cls", BACKEND_CLASSES)
@pytest.mark.parametrize("options, message", [
    ({"thread": 4}, "unknown .* option\\(s\\) thread; known"),
    ({"threads": 0}, "threads must be a positive integer"),
    ({"threads": True}, "threads must be a positive integer"),
    ({"max_batch": 0}, "max_batch must be a positive integer"),
    ({"device": -1}, "device must be a CUDA device ordinal"),
])
def test_every_backend_refuses_unknown_options_and_bad_counts(bundle: Path, module: str, cls: str, options: dict,
                                                              message: str) -> None:
    """Checked in the constructor, before any heavy import or GPU work; `cuda_graphs` (which
    Translator.load passes to every backend) is always accepted."""
    from stargan_sdk.errors import BackendOptionError
    from stargan_sdk.manifest import read_manifest

    backend_cls = getattr(importlib.import_module(module), cls)
    manifest = read_manifest(bundle)
    if "threads" in options and "threads" not in (backend_cls.accepted_options or ()):
        options = {"thread_count": 1}  # a backend without threads refuses the name itself
        message = "unknown .* option\\(s\\) thread_count"
    with pytest.raises(BackendOptionError, match=message):
        backend_cls(bundle, manifest, **options)
    backend_cls(bundle, manifest, cuda_graphs=False)  # accepted everywhere, nothing loaded


def test_translator_load_refuses_a_misspelt_option(bundle: Path) -> None:
    from stargan_sdk.errors import BackendOptionError

    with pytest.raises(BackendOptionError, match="unknown onnxruntime option\\(s\\) thread; known: precision"):
        Translator.load(bundle, backend="onnxruntime", thread=2)


def test_openvino_load_errors_keep_their_reason(bundle_copy: Path) -> None:
    """OpenVINO's first lines are source locations; the one-line error must still say what went wrong."""
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'stargan[openvino]')")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from stargan_sdk.backends.openvino import OpenVinoBackend
    from stargan_sdk.errors import BundleError
    from stargan_sdk.manifest import sha256_file

    io = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32]),
          helper.make_tensor_value_info("label", TensorProto.FLOAT, ["N", 5])]
    out = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 32, 32])]
    graph = helper.make_graph([helper.make_node("FooBarOp", ["image", "label"], ["output"])], "g", io, out)
    onnx.save(helper.make_model(graph), str(bundle_copy / "generator.onnx"))
    manifest_path = bundle_copy / "manifest.json"
    text = manifest_path.read_text()
    old = next(a for a in read_manifest(bundle_copy).artifacts if a.file == "generator.onnx").sha256
    manifest_path.write_text(text.replace(old, sha256_file(bundle_copy / "generator.onnx")))
    with pytest.raises(BundleError) as info:
        OpenVinoBackend(bundle_copy, read_manifest(bundle_copy), precision="fp32").load()
    message = str(info.value)
    assert "\n" not in message and "No conversion rule found for operations: FooBarOp" in message
    assert message.startswith("OpenVINO could not read generator.onnx: ")
