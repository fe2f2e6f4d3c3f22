"""inductor backend: compiled generator == ONNX FP32 through the public API, chunk planning, parity refusal,
Inductor's cache reused by a second process, and (gpu) FP16 + CUDA graphs close to FP32."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stargan_sdk import Translator
from stargan_sdk.backends import registry
from stargan_sdk.backends.compiled_sizes import pipelined_plan, plan_chunks
from stargan_sdk.backends.inductor import InductorBackend
from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.errors import BackendUnavailableError, ImageInputError

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]
COMPILED = (2,)  # one static size keeps the CPU compile to one graph; batches of 1 and 3 pad and split around it


def batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32), rng.integers(0, 2, (n, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inductor-cache")


@pytest.fixture(scope="module")
def compiled(bundle: Path, cache_dir: Path):
    with Translator.load(bundle, backend="inductor", batch_sizes=COMPILED, cache_dir=str(cache_dir)) as t:
        yield t


@given(n=st.integers(1, 700), sizes=st.lists(st.integers(1, 300), min_size=1, max_size=5, unique=True))
def test_plan_covers_every_batch_with_compiled_sizes(n: int, sizes: list[int]) -> None:
    plan = plan_chunks(n, sizes)
    assert sum(take for take, _ in plan) == n
    assert all(run in sizes and 1 <= take <= run for take, run in plan)
    assert all(take == run for take, run in plan[:-1])  # only the last chunk is padded
    take, run = plan[-1]
    assert run <= 2 * take or run == min(sizes)  # padding wastes at most half a launch unless nothing smaller exists


@given(n=st.integers(1, 700), chunk=st.sampled_from([0, 16, 32]))
def test_pipelined_plan_cuts_large_batches_into_chunks(n: int, chunk: int) -> None:
    sizes = (1, 8, 32, 64, 256)
    plan = pipelined_plan(n, sizes, chunk)
    assert sum(take for take, _ in plan) == n and all(run in sizes + (chunk,) for _, run in plan)
    if chunk and n >= 2 * chunk:
        assert plan[: n // chunk] == [(chunk, chunk)] * (n // chunk)
    else:
        assert plan == plan_chunks(n, sizes)


def test_plan_examples() -> None:
    sizes = (1, 8, 64, 256)
    assert plan_chunks(64, sizes) == [(64, 64)]
    assert plan_chunks(5, sizes) == [(5, 8)]
    assert plan_chunks(65, sizes) == [(64, 64), (1, 1)]
    assert plan_chunks(300, sizes) == [(256, 256), (44, 64)]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_compiled_equals_onnx_fp32(compiled: Translator, translator: Translator, n: int) -> None:
    x, c = batch(n, seed=n)
    np.testing.assert_allclose(compiled.infer(x, c), translator.infer(x, c), atol=1e-4)


def test_translate_through_the_public_api(compiled: Translator, translator: Translator) -> None:
    face = np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    ours = compiled.translate(face, Blond_Hair=1, original={"Black_Hair": 1, "Male": 0, "Young": 1})
    ref = translator.translate(face, Blond_Hair=1, original={"Black_Hair": 1, "Male": 0, "Young": 1})
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1  # uint8 rounding of 1e-4-close floats


def test_out_of_range_images_are_refused_by_the_backend(compiled: Translator) -> None:
    assert compiled.backend.checks_input_range  # the Translator leaves the scan to the backend
    x, c = batch(3, seed=9)
    for bad in (np.nan, 1.5, -np.inf):
        y = x.copy()
        y[2, 1, 5, 5] = bad
        with pytest.raises(ImageInputError, match="normalised to"):
            compiled.infer(y, c)
    np.testing.assert_array_equal(compiled.infer(x, c), compiled.infer(x, c))  # still usable


def test_a_nan_in_any_chunk_fails_the_device_range_check(compiled: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA runner reports each chunk's (min, max); a NaN in a later chunk must not be stepped over."""

    class Runner:  # stands in for CudaGraphRunner on the CPU: what the graphs would report
        def run(self, chunks):
            return [x for x, _ in chunks], [(-0.5, 0.5), (float("nan"), float("nan")), (-0.2, 0.9)]

    monkeypatch.setattr(compiled.backend, "_runner", Runner())
    x, c = batch(2)
    with pytest.raises(ImageInputError, match="normalised to"):
        compiled.backend._run_sizes([(x, c)] * 3)


def test_describe_reports_sizes_and_parity(compiled: Translator) -> None:
    info = compiled.describe()
    assert info["backend"] == "inductor" and info["device"] == "cpu" and info["precision"] == "fp32"
    assert info["batch_sizes"] == [2] and compiled.backend.max_batch == 2 and info["pipeline_chunk"] == 0
    assert info["parity_psnr_db"]["2"] > 100  # FP32 compiled vs FP32 eager: summation order only
    # on the CPU the host normalises unless uint8_graphs=True asks (tests/sdk/test_inductor_uint8.py)
    assert not compiled.backend.uint8_on_device and info["uint8_batch_sizes"] == [] and info["uint8_error"] == ""


def test_parity_miss_refuses_and_auto_falls_through(
    bundle: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = InductorBackend._run_size

    def miscompiled(self, image, label):  # what a wrong kernel would return: close, but not FP32-close
        return real(self, image, label) + np.float32(0.01)

    monkeypatch.setattr(InductorBackend, "_run_size", miscompiled)
    with pytest.raises(BackendUnavailableError, match="batch 2 misses FP32 parity.*max abs 0.01"):
        Translator.load(bundle, backend="inductor", batch_sizes=COMPILED, cache_dir=str(cache_dir))
    monkeypatch.setattr(registry, "nvidia_gpu_present", lambda: True)  # so auto considers the torch backends
    with Translator.load(bundle, batch_sizes=COMPILED, cache_dir=str(cache_dir), device_type="cpu") as t:
        assert t.backend_name == "torch"
        assert "failed to load" in t.candidates["inductor"].reason and "parity" in t.candidates["inductor"].reason
        assert not t.candidates["tensorrt"].ok


def test_auto_leaves_torch_backends_alone_without_a_gpu(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "nvidia_gpu_present", lambda: False)
    cls, reasons = registry.select_backend("auto", bundle, read_manifest(bundle))
    assert cls.name in ("openvino", "onnxruntime") and "inductor" not in reasons
    assert registry.availability("inductor", bundle, read_manifest(bundle)).ok  # by name it runs on the CPU


def test_bad_options_are_refused(bundle: Path, cache_dir: Path) -> None:
    for options, message in (
        ({"batch_sizes": (0, 2)}, "positive integers"),
        ({"precision": "fp16"}, "fp16 needs CUDA"),
        ({"mode": "reduce-overhead"}, "mode must be one of"),
        ({"uint8_graphs": 1}, "uint8_graphs must be True or False"),
    ):
        with pytest.raises(BackendUnavailableError, match=message):
            Translator.load(bundle, backend="inductor", cache_dir=str(cache_dir), device_type="cpu", **options)


def test_second_process_reuses_the_cache(bundle: Path, tmp_path: Path) -> None:
    """A fresh process with the same cache folder gets Inductor's compiled graph from disk. Both processes are fresh
    (not this one, whose in-memory caches may already hold the graph from another test and then write nothing)."""
    cache_dir = tmp_path / "cache"
    script = (
        "import json, sys, time\n"
        "from stargan_sdk import Translator\n"
        "t0 = time.perf_counter()\n"
        f"t = Translator.load({str(bundle)!r}, backend='inductor', batch_sizes=(2,), cache_dir={str(cache_dir)!r})\n"
        "load_s = time.perf_counter() - t0\n"
        "from torch._dynamo.utils import counters\n"
        "print(json.dumps({'load_s': load_s, 'hits': counters['inductor']['fxgraph_cache_hit'],\n"
        "                  'misses': counters['inductor']['fxgraph_cache_miss']}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("sdk", "training", "export"))}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["misses"] >= 1, runs  # the first process compiled and wrote the cache
    assert runs[1]["hits"] >= 1 and runs[1]["misses"] == 0, runs


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 3, 8])
def test_cuda_fp16_graphs_close_to_fp32(bundle: Path, translator: Translator, n: int) -> None:
    x, c = batch(n, seed=n)
    with Translator.load(bundle, backend="inductor", batch_sizes=(1, 4)) as t:
        first, second = t.infer(x, c), t.infer(x, c)
        info = t.describe()
    assert info["precision"] == "fp16" and info["cuda_graphs"] and info["graph_batch_sizes"] == [1, 4], info
    assert min(info["parity_psnr_db"].values()) >= 40
    reference = translator.infer(x, c)
    mse = float(np.mean((first.astype(np.float64) - reference) ** 2))
    assert 10 * np.log10(4.0 / mse) >= 40
    np.testing.assert_array_equal(second, first)


@pytest.mark.gpu
def test_cuda_pipelined_chunks_equal_single_launches(bundle: Path) -> None:
    x, c = batch(11, seed=5)
    with Translator.load(bundle, backend="inductor", batch_sizes=(1, 4, 8), pipeline_chunk=2) as t:
        piped = t.infer(x, c)  # 5 chunks of 2 (two staging slots alternate) and 1
        single = np.concatenate([t.infer(x[i : i + 1], c[i : i + 1]) for i in range(11)])
        assert t.describe()["pipeline_chunk"] == 2 and 2 in t.describe()["batch_sizes"]
        y = x.copy()
        y[7, 0, 0, 0] = np.nan  # a bad row in the fourth chunk: refused on the device
        with pytest.raises(ImageInputError):
            t.infer(y, c)
    mse = float(np.mean((piped.astype(np.float64) - single) ** 2))  # other batch sizes: other FP16 kernels
    assert 10 * np.log10(4.0 / max(mse, 1e-20)) >= 50


@pytest.mark.gpu
def test_cuda_graphs_are_correct_from_eight_threads(bundle: Path) -> None:
    import threading

    inputs = [batch(1 + i % 4, seed=20 + i) for i in range(8)]
    with Translator.load(bundle, backend="inductor", batch_sizes=(1, 4)) as t:
        reference = [t.infer(x, c) for x, c in inputs]
        errors: list[str] = []

        def work(i: int) -> None:
            for _ in range(5):
                if not np.array_equal(t.infer(*inputs[i]), reference[i]):
                    errors.append(f"thread {i} got another output")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors, errors


@pytest.mark.gpu
def test_cuda_pinned_inputs_are_uploaded_in_place(bundle: Path) -> None:
    import torch

    x, c = batch(4, seed=9)
    pinned = torch.empty(x.shape, dtype=torch.float32, pin_memory=True).numpy()
    pinned[...] = x
    with Translator.load(bundle, backend="inductor", batch_sizes=(4,)) as t:
        expected = t.infer(x, c)  # pageable: through the staging slot
        staging = [slot[0].numpy() for slot in t.backend._runner.slots]
        for s in staging:
            s.fill(7.0)  # a sentinel no image holds
        np.testing.assert_array_equal(t.infer(pinned, c), expected)
        assert all((s == 7.0).all() for s in staging)  # the staging copy was skipped
        chained = t.infer(expected, c)  # an output is pinned too: feeding it back costs no host copy
        assert all((s == 7.0).all() for s in staging)
        np.testing.assert_array_equal(chained, t.infer(expected.copy(), c))
        pinned[2, 1, 3, 3] = np.nan
        with pytest.raises(ImageInputError):  # the device-side range check still sees in-place inputs
            t.infer(pinned, c)
