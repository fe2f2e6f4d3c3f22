"""TrtBackend: why it is unavailable (CPU), its buffer/stream/graph machinery on a GPU with a torch-backed stand-in
for TensorRT (`gpu`), and an engine built by the exporter against ONNX Runtime FP32: real TensorRT (`tensorrt`)
and NVIDIA's newest bindings simulated on the CPU (`trt_api`)."""

from __future__ import annotations

import hashlib
import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from stargan_sdk import cuda
from stargan_sdk.backends import tensorrt_compat
from stargan_sdk.backends import tensorrt_engine as trt_engine
from stargan_sdk.backends.base import Availability
from stargan_sdk.backends.tensorrt import TrtBackend
from stargan_sdk.bundle.manifest import Artifact, Manifest, Profile, derive_groups
from stargan_sdk.errors import EngineMismatchError, ImageInputError, StarGANError

ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
SIZE = 32
H100 = cuda.DeviceInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 80 << 30)


def make_manifest(engine: Artifact | None) -> Manifest:
    return Manifest(
        attributes=ATTRS, groups=derive_groups(ATTRS), image_size=SIZE, dataset="celeba",
        generator={"conv_dim": 8, "c_dim": len(ATTRS), "repeat_num": 2}, artifacts=(engine,) if engine else (),
        source={"checkpoint": "runs/a/1000-G.ckpt", "sha256": "0" * 64, "kind": "official"},
    )  # fmt: skip


def engine_artifact(version: str = "10.9.0.34", gpu: cuda.DeviceInfo = H100, sha: str = "0" * 64) -> Artifact:
    return Artifact(
        kind="tensorrt", role="generator", file="generator.plan", sha256=sha, precision="fp16",
        tensorrt_version=version, gpu_name=gpu.name, compute_capability=gpu.compute_capability,
        profile=Profile(1, 4, 8),
    )  # fmt: skip


@pytest.fixture
def fake_machine(monkeypatch):
    """TensorRT 10.9 importable and one H100, without either being here."""
    monkeypatch.setattr(tensorrt_compat, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.9.0.34"))
    monkeypatch.setattr(cuda, "cuda_available", lambda: Availability(True, "1 CUDA device"))
    monkeypatch.setattr(cuda, "device_count", lambda: 1)
    monkeypatch.setattr(cuda, "device_properties", lambda i=0: H100)


# ---- CPU: availability and mismatch messages -------------------------------------------------------------


def test_no_tensorrt_explained(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    av = TrtBackend.availability(tmp_path, make_manifest(engine_artifact()))
    assert not av.ok and "TensorRT is not installed" in av.reason and "stargan[tensorrt]" in av.reason


def test_old_tensorrt_refused(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    av = TrtBackend.availability(tmp_path, make_manifest(engine_artifact()))
    assert not av.ok and "TensorRT 8.6.1 is too old" in av.reason


def test_no_gpu_explained(fake_machine, monkeypatch, tmp_path):
    monkeypatch.setattr(
        cuda, "cuda_available", lambda: Availability(False, "cudaGetDeviceCount failed: cudaErrorNoDevice")
    )
    av = TrtBackend.availability(tmp_path, make_manifest(engine_artifact()))
    assert av == Availability(False, "no usable CUDA GPU: cudaGetDeviceCount failed: cudaErrorNoDevice")


def test_missing_device_ordinal_explained(fake_machine, tmp_path):
    av = TrtBackend.availability(tmp_path, make_manifest(engine_artifact()), device=2)
    assert not av.ok and av.reason == "CUDA device 2 does not exist (this machine has 1)"


def test_no_engine_in_bundle_explained(fake_machine, tmp_path):
    av = TrtBackend.availability(tmp_path, make_manifest(None))
    assert not av.ok
    assert av.reason == (
        f"bundle {tmp_path} has no TensorRT engine; build one on this GPU: "
        f"stargan-export build runs/a/1000-G.ckpt --out {tmp_path} --fp16 --engine"
    )


def test_tensorrt_version_mismatch_says_what_to_rebuild(fake_machine, tmp_path):
    manifest = make_manifest(engine_artifact(version="10.3.0.26"))
    av = TrtBackend.availability(tmp_path, manifest)
    assert not av.ok
    assert av.reason == (
        "generator.plan was built with TensorRT 10.3.0.26, this machine has 10.9.0.34 (a plan only loads in the "
        "exact release that built it); rebuild it on this GPU (NVIDIA H100 80GB HBM3) with TensorRT 10.9.0.34: "
        f"stargan-export build runs/a/1000-G.ckpt --out {tmp_path} --fp16 --engine"
    )
    with pytest.raises(EngineMismatchError, match="built with TensorRT 10.3.0.26"):
        TrtBackend(tmp_path, manifest).load()  # refused before any file or GPU work


@pytest.mark.parametrize("built", ["10.9.1.2", "10.9.0.35", "10.9.0", "10.9", "11.9.0.34"])
def test_any_other_release_is_refused_even_a_patch_or_build(fake_machine, tmp_path, built):
    # NVIDIA guarantees a plan only in the release that built it (it is not built version-compatible)
    av = TrtBackend.availability(tmp_path, make_manifest(engine_artifact(version=built)))
    assert not av.ok and f"built with TensorRT {built}, this machine has 10.9.0.34" in av.reason


@pytest.mark.parametrize("built", ["10.9.0.34", "10.9.0.34.post1", " 10.9.0.34"])
def test_the_same_release_is_accepted(fake_machine, tmp_path, built):
    assert TrtBackend.availability(tmp_path, make_manifest(engine_artifact(version=built))).ok


def test_max_batch_is_the_profile_limit_before_and_after_load(tmp_path):
    manifest = make_manifest(engine_artifact())  # profile 1/4/8
    assert TrtBackend(tmp_path, manifest).max_batch == 8
    assert TrtBackend(tmp_path, manifest, max_batch=3).max_batch == 3
    assert TrtBackend(tmp_path, manifest, max_batch=64).max_batch == 8


def test_other_gpu_architecture_mismatch(fake_machine, tmp_path):
    l40 = cuda.DeviceInfo(0, "NVIDIA L40S", "8.9", 48 << 30)
    av = TrtBackend.availability(tmp_path, make_manifest(engine_artifact(gpu=l40)))
    assert not av.ok
    assert "built for compute capability 8.9 (NVIDIA L40S), this GPU is 9.0 (NVIDIA H100 80GB HBM3)" in av.reason
    assert "with TensorRT 10.9.0.34: stargan-export build" in av.reason


def test_same_architecture_other_model_only_warns(fake_machine, tmp_path, caplog):
    pcie = cuda.DeviceInfo(0, "NVIDIA H100 PCIe", "9.0", 80 << 30)
    with caplog.at_level(logging.WARNING, logger=tensorrt_compat.log.name):
        av = TrtBackend.availability(tmp_path, make_manifest(engine_artifact(gpu=pcie)))
    assert av.ok, av.reason
    assert "built on NVIDIA H100 PCIe, runs on NVIDIA H100 80GB HBM3" in caplog.text


def test_unrecorded_version_is_a_mismatch(fake_machine, tmp_path):
    av = TrtBackend.availability(tmp_path, make_manifest(engine_artifact(version="")))
    assert not av.ok and "does not record its TensorRT version; rebuild it" in av.reason


def test_unloaded_backend_refuses_and_describes(tmp_path):
    b = TrtBackend(tmp_path, make_manifest(engine_artifact()), cuda_graphs=False)
    with pytest.raises(StarGANError, match="not loaded"):
        b.infer({})
    assert b.describe() == {
        "backend": "tensorrt", "cuda_graphs": False, "engine": "generator.plan", "precision": "fp16",
        "profile": {"min": 1, "opt": 4, "max": 8}, "max_batch": 8,
    }  # fmt: skip
    b.close()  # closing an unloaded backend is a no-op


# ---- GPU: the backend's machinery, with a torch stand-in for TensorRT --------------------------------------


class _FakeContext:
    """Computes output = 0.5 * image, plus label[:, c] on channel c < 3, with two in-place torch kernels on the
    given stream. Like TensorRT, it refuses a capture unless the previous enqueue had the same shapes/addresses."""

    def __init__(self, torch, refuse_capture: bool) -> None:
        self.torch, self.refuse_capture = torch, refuse_capture
        self.addr: dict[str, int] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.last: object = None
        self.views: dict[object, tuple] = {}
        self.streams: dict[int, object] = {}

    def set_tensor_address(self, name, ptr):
        self.addr[name] = int(ptr)
        return True

    def set_input_shape(self, name, shape):
        if not 1 <= shape[0] <= 8:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def _view(self, name, shape):
        class Cai:  # zero-copy torch view of a raw device pointer
            __cuda_array_interface__ = {
                "data": (self.addr[name], False),
                "shape": shape,
                "typestr": "<f4",
                "version": 2,
            }

        return self.torch.as_tensor(Cai(), device="cuda")

    def execute_async_v3(self, stream_handle):
        from cuda.bindings import runtime as rt

        state = (tuple(sorted(self.addr.items())), tuple(sorted(self.shapes.items())))
        capturing = int(cuda.check(rt.cudaStreamIsCapturing(stream_handle))) != 0
        if capturing and (self.refuse_capture or state != self.last):
            return False
        if state not in self.views:  # torch objects are made outside capture, as TensorRT prepares at enqueue
            n = self.shapes["image"][0]
            self.views[state] = (self._view("image", (n, 3, SIZE, SIZE)), self._view("label", (n, len(ATTRS))),
                                 self._view("output", (n, 3, SIZE, SIZE)))  # fmt: skip
        stream = self.streams.setdefault(stream_handle, self.torch.cuda.ExternalStream(stream_handle))
        image, label, out = self.views[state]
        with self.torch.cuda.stream(stream):
            self.torch.mul(image, 0.5, out=out)
            out[:, :3].add_(label[:, :3, None, None])
        self.last = state
        return True


def _fake_tensorrt(torch, refuse_capture: bool = False) -> types.SimpleNamespace:
    dims = {"image": (-1, 3, SIZE, SIZE), "label": (-1, len(ATTRS)), "output": (-1, 3, SIZE, SIZE)}
    io = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    engine = types.SimpleNamespace(
        num_io_tensors=3, get_tensor_name=lambda i: list(dims)[i], get_tensor_shape=lambda n: dims[n],
        get_tensor_mode=lambda n: io.OUTPUT if n == "output" else io.INPUT, get_tensor_dtype=lambda n: "float",
        get_tensor_profile_shape=lambda n, p: [(1, *dims[n][1:]), (4, *dims[n][1:]), (8, *dims[n][1:])],
        create_execution_context=lambda: _FakeContext(torch, refuse_capture),
    )  # fmt: skip
    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda plan: engine if plan == b"fake plan" else None)

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    return types.SimpleNamespace(
        __version__="10.99.0", Logger=Logger, Runtime=lambda lg: runtime, TensorIOMode=io,
        nptype=lambda dt: np.float32,
    )  # fmt: skip


def _reference(image: np.ndarray, label: np.ndarray) -> np.ndarray:
    out = 0.5 * image
    out[:, :3] += label[:, :3, None, None]
    return out


def _batch(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    image = rng.uniform(-1, 1, (n, 3, SIZE, SIZE)).astype(np.float32)
    return {"image": image, "label": rng.integers(0, 2, (n, len(ATTRS))).astype(np.float32)}


@pytest.fixture
def fake_bundle(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or not cuda.cuda_available().ok:
        pytest.skip(f"needs torch CUDA and cuda-bindings on a GPU: {cuda.cuda_available().reason}")
    (tmp_path / "generator.plan").write_bytes(b"fake plan")
    sha = hashlib.sha256(b"fake plan").hexdigest()
    manifest = make_manifest(engine_artifact("10.99.0", cuda.device_properties(0), sha))
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(torch))
    return tmp_path, manifest, torch


@pytest.mark.gpu
def test_fake_engine_every_batch_size_with_graph_replay(fake_bundle):
    folder, manifest, _ = fake_bundle
    rng = np.random.default_rng(0)
    with TrtBackend(folder, manifest, cuda_graphs=True) as b:
        assert b.max_batch == 8 and b.describe()["device"] == cuda.device_properties(0).name
        for n in [1, 8, 3, 1, 8, 3, 5, 2, 4, 6, 7, 5, 2, 4, 6, 7]:  # each size twice: capture, then replay
            feeds = _batch(rng, n)
            np.testing.assert_allclose(b.infer(feeds)["output"], _reference(**feeds), atol=1e-6)
        assert b.graph_batches() == list(range(1, 9))
        with pytest.raises(ImageInputError, match="batch of 9"):
            b.infer(_batch(rng, 9))
        with pytest.raises(ImageInputError, match="'label' has shape"):
            b.infer({"image": _batch(rng, 2)["image"], "label": np.zeros((2, 4), np.float32)})
        with pytest.raises(ImageInputError, match="missing"):
            b.infer({"image": _batch(rng, 2)["image"]})
    assert not b.loaded
    with pytest.raises(StarGANError, match="not loaded"):
        b.infer(_batch(rng, 1))


@pytest.mark.gpu
def test_fake_engine_infer_batches_equal_reference(fake_bundle):
    folder, manifest, _ = fake_bundle
    rng = np.random.default_rng(1)
    batches = [_batch(rng, n) for n in (3, 8, 1, 5, 8, 2, 7, 3)]
    with TrtBackend(folder, manifest, cuda_graphs=True) as b:
        for _ in range(2):  # second pass replays the graphs captured per (slot, batch)
            outs = b.infer_batches(batches)
            assert len(outs) == len(batches)
            for feeds, out in zip(batches, outs):
                np.testing.assert_allclose(out["output"], _reference(**feeds), atol=1e-6)
        feeds = batches[1]  # after infer_batches moved the context to slot 1, slot 0 must be rebound
        np.testing.assert_allclose(b.infer(feeds)["output"], _reference(**feeds), atol=1e-6)
        with pytest.raises(ImageInputError, match="batch of 9"):
            b.infer_batches([feeds, _batch(rng, 9)])
        np.testing.assert_allclose(b.infer_batches([feeds])[0]["output"], _reference(**feeds), atol=1e-6)


@pytest.mark.gpu
def test_fake_engine_capture_refused_falls_back(fake_bundle, monkeypatch, caplog):
    folder, manifest, torch = fake_bundle
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(torch, refuse_capture=True))
    rng = np.random.default_rng(2)
    with caplog.at_level(logging.WARNING, logger=trt_engine.log.name):
        with TrtBackend(folder, manifest, cuda_graphs=True) as b:
            for n in (2, 2, 2, 4):
                feeds = _batch(rng, n)
                np.testing.assert_allclose(b.infer(feeds)["output"], _reference(**feeds), atol=1e-6)
            assert b.graph_batches() == []
    warnings = [r for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
    assert [w.args[0] for w in warnings] == [2, 4]  # once per batch size, then plain enqueues


@pytest.mark.gpu
def test_fake_engine_reads_torch_pinned_inputs_in_place(fake_bundle):
    """The real cuda-bindings check: torch's page-locked arrays skip the staging copy; pageable ones do not."""
    folder, manifest, torch = fake_bundle
    feeds = _batch(np.random.default_rng(3), 5)
    pinned = {k: torch.from_numpy(v).pin_memory().numpy() for k, v in feeds.items()}
    with TrtBackend(folder, manifest, cuda_graphs=True) as b:
        staging = [s.host[name].array for s in b.engine._slots for name in ("image", "label")]
        for buf in staging:
            buf.fill(7.0)
        for _ in range(2):  # capture, then replay
            np.testing.assert_allclose(b.infer(pinned)["output"], _reference(**feeds), atol=1e-6)
        np.testing.assert_allclose(b.infer_batches([pinned, pinned])[1]["output"], _reference(**feeds), atol=1e-6)
        assert all((buf == 7.0).all() for buf in staging)
        np.testing.assert_allclose(b.infer(feeds)["output"], _reference(**feeds), atol=1e-6)
        np.testing.assert_array_equal(staging[0][:5], feeds["image"])


@pytest.mark.gpu
def test_fake_engine_corrupt_plan_refused(fake_bundle):
    folder, manifest, _ = fake_bundle
    (folder / "generator.plan").write_bytes(b"fake plan, but changed")
    with pytest.raises(StarGANError, match="corrupted or was replaced"):
        TrtBackend(folder, manifest).load()


# ---- TensorRT: a real engine from the exporter ------------------------------------------------------------


@pytest.fixture(
    scope="module",
    params=[pytest.param("tensorrt", marks=pytest.mark.tensorrt), pytest.param("simulated", marks=pytest.mark.trt_api)],
)
def engine_bundle(request, official_checkpoint, tmp_path_factory) -> Iterator[tuple[Path, Manifest]]:
    """A bundle with an engine from the exporter: real TensorRT on a GPU, or the newest release's bindings
    simulated on the CPU (tests/trtsim), so these tests also run, and fail on a wiring bug, without a GPU."""
    from stargan_export.bundle import build_bundle

    with pytest.MonkeyPatch.context() as patch:
        simulation = None
        if request.param == "simulated":
            from trtsim.bindings import VERSIONS
            from trtsim.fixtures import load_surface
            from trtsim.simulate import Simulation

            simulation = Simulation(load_surface(list(VERSIONS)[-1])).install(patch)
        folder = tmp_path_factory.mktemp("trt-bundle")
        manifest = build_bundle(official_checkpoint, folder, attributes=list(ATTRS), image_size=SIZE, engine=True,
                                torch_weights=False, opt_batch=4, max_batch=8)  # fmt: skip
        yield folder, manifest
        if simulation is not None:
            simulation.assert_clean()


def _ort_fp32(folder: Path, manifest: Manifest, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    art = manifest.artifact(role="generator", kind="onnx", precision="fp32")
    session = ort.InferenceSession(str(folder / art.file), providers=["CPUExecutionProvider"])
    return session.run(["output"], feeds)[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)  # peak-to-peak of [-1, 1] is 2


def test_engine_matches_onnxruntime_fp32(engine_bundle):
    folder, manifest = engine_bundle
    rng = np.random.default_rng(3)
    with TrtBackend(folder, manifest, cuda_graphs=False) as b:
        assert b.max_batch == 8 and b.describe()["tensorrt"]
        for n in range(1, b.max_batch + 1):
            feeds = _batch(rng, n)
            out = b.infer(feeds)["output"]
            assert out.shape == (n, 3, SIZE, SIZE) and out.dtype == np.float32
            assert _psnr(out, _ort_fp32(folder, manifest, feeds)) >= 40.0


def test_engine_graph_replay_and_infer_batches_equal_eager(engine_bundle):
    folder, manifest = engine_bundle
    rng = np.random.default_rng(4)
    batches = [_batch(rng, n) for n in (1, 3, 8, 3, 1, 8, 5)]
    with TrtBackend(folder, manifest, cuda_graphs=False) as eager:
        expected = [eager.infer(f)["output"] for f in batches]
    with TrtBackend(folder, manifest, cuda_graphs=True) as b:
        for _ in range(2):
            for feeds, ref in zip(batches, expected):
                np.testing.assert_allclose(b.infer(feeds)["output"], ref, atol=1e-5)
        assert b.graph_batches() == [1, 3, 5, 8]
        for out, ref in zip(b.infer_batches(batches), expected):
            np.testing.assert_allclose(out["output"], ref, atol=1e-5)


def test_engine_uploads_page_locked_inputs_in_place(engine_bundle):
    """Inputs that already lie in page-locked memory are uploaded from there: the staging buffers keep a
    sentinel and the outputs equal those of pageable inputs; anything else still goes through staging."""
    folder, manifest = engine_bundle
    rng = np.random.default_rng(5)
    batches = [_batch(rng, n) for n in (3, 8)]
    with TrtBackend(folder, manifest, cuda_graphs=True) as b:
        expected = [b.infer(f)["output"] for f in batches]
        staging = [s.host[name].array for s in b.engine._slots for name in ("image", "label")]
        with cuda.PinnedBuffer((11, 3, SIZE, SIZE)) as img, cuda.PinnedBuffer((11, len(ATTRS))) as lbl:
            pinned, start = [], 0
            for f in batches:  # side by side in one pinned block: infer_batches has both in flight at once
                n = len(f["image"])
                img.array[start : start + n], lbl.array[start : start + n] = f["image"], f["label"]
                pinned.append({"image": img.array[start : start + n], "label": lbl.array[start : start + n]})
                start += n
            for buf in staging:
                buf.fill(7.0)
            for feeds, ref in zip(pinned, expected):
                np.testing.assert_allclose(b.infer(feeds)["output"], ref, atol=1e-5)
            for out, ref in zip(b.infer_batches(pinned), expected):
                np.testing.assert_allclose(out["output"], ref, atol=1e-5)
            assert all((buf == 7.0).all() for buf in staging)  # no host copy was made
            wide = {"image": pinned[0]["image"].astype(np.float64), "label": pinned[0]["label"]}
            np.testing.assert_allclose(b.infer(wide)["output"], expected[0], atol=1e-5)
        np.testing.assert_array_equal(staging[0][:3], batches[0]["image"])  # float64 is cast in staging
        assert (staging[1] == 7.0).all()  # the pinned label was still read in place
