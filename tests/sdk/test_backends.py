"""Backend selection and parity: auto -> onnxruntime here, torch CPU == ONNX, FP16 graph, GPU paths (gpu)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from stargan_sdk import Translator
from stargan_sdk.backends import registry
from stargan_sdk.backends.onnxruntime import OrtBackend
from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.errors import BackendUnavailableError, StarGANError
from stargan_sdk.host.hardware import physical_cores


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
    assert set(report) == {"tensorrt", "inductor", "torch", "onnxruntime", "openvino"}
    assert report["torch"].ok and "generator.safetensors" in report["torch"].reason


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


@pytest.mark.parametrize(("name", "options"), [("onnxruntime", {}), ("openvino", {"precision": "fp32"})])
def test_translator_splits_a_large_batch_into_one_infer_batches_call(bundle: Path, name: str, options: dict) -> None:
    pytest.importorskip(name)
    x, c = batch(5, seed=3)
    with Translator.load(bundle, backend="onnxruntime") as whole:
        reference = whole.infer(x, c)
    with Translator.load(bundle, backend=name, max_batch=2, **options) as t:
        calls = []
        original = t.backend.infer_batches
        t.backend.infer_batches = lambda parts: calls.append([len(p["image"]) for p in parts]) or original(parts)
        np.testing.assert_allclose(t.infer(x, c), reference, atol=1e-4)
        assert calls == [[2, 2, 1]]
        np.testing.assert_allclose(t.infer(x[:2], c[:2]), reference[:2], atol=1e-4)  # one part: plain infer
        assert calls == [[2, 2, 1]]


def test_default_infer_batches_is_one_infer_per_batch(bundle: Path) -> None:
    x, c = batch(3, seed=4)
    parts = [{"image": x[:1], "label": c[:1]}, {"image": x[1:], "label": c[1:]}]
    with OrtBackend(bundle, read_manifest(bundle)) as backend:
        outs = backend.infer_batches(parts)
        assert [o["output"].shape[0] for o in outs] == [1, 2]
        for part, out in zip(parts, outs):
            np.testing.assert_array_equal(out["output"], backend.infer(part)["output"])


def test_fp16_keeps_norms_fp32(bundle: Path) -> None:
    torch = pytest.importorskip("torch")
    from stargan_sdk.backends.torch_backend import to_precision
    from stargan_sdk.backends.torch_generator import InstanceNorm32, load_generator

    module = to_precision(torch, load_generator(bundle, read_manifest(bundle)), fp16=True)
    convs = [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    norms = [m for m in module.modules() if isinstance(m, InstanceNorm32)]
    assert (len(convs), len(norms)) == (10, 9)  # repeat_num 2
    assert {m.weight.dtype for m in convs} == {torch.float16}
    assert {p.dtype for m in norms for p in m.parameters()} == {torch.float32}
    x = torch.randn(1, 4, 8, 8, dtype=torch.float16) * 300  # FP16 variance of this would overflow (> 65504)
    assert norms[0].__class__(4)(x).isfinite().all()


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


def _backend_imports() -> dict[str, set[str]]:
    """Backend module -> the stargan_sdk modules it imports anywhere (also inside functions), from its source."""
    folder = Path(registry.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[f"stargan_sdk.backends.{path.stem}"] = {m for m in found if m.startswith("stargan_sdk.")}
    return graph


def test_no_import_cycle_between_backends() -> None:
    graph = _backend_imports()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), set()):
                if nxt in graph and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(m for m in graph if m in reach(m))
    assert cycles == [], f"backend modules importing each other in a cycle: {cycles}"
    assert "stargan_sdk.backends.openvino" not in graph["stargan_sdk.backends.onnxruntime"]


BACKEND_CLASSES = [
    ("stargan_sdk.backends.onnxruntime", "OrtBackend"),
    ("stargan_sdk.backends.openvino", "OpenVinoBackend"),
    ("stargan_sdk.backends.tensorrt", "TrtBackend"),
    ("stargan_sdk.backends.torch_backend", "TorchBackend"),
    ("stargan_sdk.backends.inductor", "InductorBackend"),
]


@pytest.mark.parametrize("module, cls", BACKEND_CLASSES)
@pytest.mark.parametrize(
    "options, message",
    [
        ({"thread": 4}, "unknown .* option\\(s\\) thread; known"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"threads": True}, "threads must be a positive integer"),
        ({"max_batch": 0}, "max_batch must be a positive integer"),
        ({"device": -1}, "device must be a CUDA device ordinal"),
    ],
)
def test_every_backend_refuses_unknown_options_and_bad_counts(
    bundle: Path, module: str, cls: str, options: dict, message: str
) -> None:
    """Checked in the constructor, before any heavy import or GPU work; `cuda_graphs` (which
    Translator.load passes to every backend) is always accepted."""
    from stargan_sdk.bundle.manifest import read_manifest
    from stargan_sdk.errors import BackendOptionError

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
    from stargan_sdk.bundle.manifest import sha256_file
    from stargan_sdk.errors import BundleError

    io = [
        helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32]),
        helper.make_tensor_value_info("label", TensorProto.FLOAT, ["N", 5]),
    ]
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
    # An unknown operator is now refused by the SDK's allow-list before OpenVINO reads the graph (issue 25 item 7).
    assert "\n" not in message and "operator 'FooBarOp'" in message


def test_auto_gives_each_backend_its_own_options_and_refuses_a_typo(bundle: Path) -> None:
    """Under auto, a backend gets the options it takes (OpenVINO never sees io_binding); a name that no
    backend takes is refused before any is tried."""
    from stargan_sdk.errors import BackendOptionError

    with Translator.load(bundle, backend="auto", io_binding=True, threads=1) as t:
        assert t.backend_name in ("openvino", "onnxruntime")
    with pytest.raises(BackendOptionError, match="unknown backend option\\(s\\) io_bindings; known: .*io_binding"):
        Translator.load(bundle, backend="auto", io_bindings=True)
