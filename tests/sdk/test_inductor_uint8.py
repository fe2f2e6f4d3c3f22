"""inductor's uint8 graphs: uint8 NHWC in and out with the normalisation compiled into the graph, equal to the
host's Normalizer around the float path (exactly, FP32 on the CPU), refused with a reason on a miss, and (gpu) on
by default on CUDA.

Usage: pytest -q tests/sdk/test_inductor_uint8.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stargan_sdk import Translator
from stargan_sdk.backends import inductor_uint8
from stargan_sdk.backends.inductor import InductorBackend
from stargan_sdk.errors import BackendUnavailableError

pytest.importorskip("torch")
COMPILED = (2,)  # batches of 1, 3 and 5 pad and split around it, as the float graphs do


def crops(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 2, (n, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inductor-u8-cache")


@pytest.fixture(scope="module")
def folded(bundle: Path, cache_dir: Path):
    """The uint8 function compiled on the CPU (an option there; the default on CUDA)."""
    with Translator.load(bundle, backend="inductor", batch_sizes=COMPILED, cache_dir=str(cache_dir),
                         uint8_graphs=True) as t:  # fmt: skip
        yield t


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_folded_graph_equals_the_host_path_exactly(folded: Translator, n: int) -> None:
    images, labels = crops(n, seed=n)
    got = folded.backend.infer_uint8(images, labels)
    want = folded.normalizer.postprocess(folded.infer(folded.normalizer.preprocess(images), labels))
    assert got.dtype == np.uint8 and got.shape == images.shape
    np.testing.assert_array_equal(got, want)  # FP32: the same float32 multiply, add, round and clip
    assert not np.array_equal(got, images)


def test_the_translator_hands_uint8_to_the_folded_graph(folded: Translator, monkeypatch) -> None:
    images, _ = crops(3, seed=8)
    original = {"Black_Hair": 1, "Male": 0, "Young": 1}
    want = np.stack([folded.translate(im, {"Blond_Hair": 1}, original=original) for im in images])
    seen = []
    infer_uint8 = folded.backend.infer_uint8
    monkeypatch.setattr(folded.backend, "infer_uint8", lambda x, c: seen.append(x.dtype) or infer_uint8(x, c))
    got = folded.edit_rgb(list(images), {"Blond_Hair": 1}, original=original)
    np.testing.assert_array_equal(got, want)
    assert seen == [np.uint8, np.uint8]  # uint8 crops, split at the backend's max_batch of 2


def test_describe_says_which_sizes_have_uint8_graphs(folded: Translator) -> None:
    info = folded.describe()
    assert info["uint8_on_device"] and info["uint8_batch_sizes"] == [2] and info["uint8_error"] == ""
    assert info["uint8_parity_psnr_db"] == {"2": 200.0} and set(info["uint8_first_call_s"]) == {"2"}
    assert folded.backend.compile_count == 2  # the float graph and the uint8 graph of size 2


def test_a_miss_keeps_the_float_path_and_says_why(bundle: Path, cache_dir: Path, monkeypatch) -> None:
    real = InductorBackend._run_u8_sizes

    def miscompiled(self, chunks):  # three LSB off everywhere: past the FP32 bar of one
        return [np.minimum(out, 252) + 3 for out in real(self, chunks)]

    monkeypatch.setattr(InductorBackend, "_run_u8_sizes", miscompiled)
    with pytest.warns(RuntimeWarning, match="uint8 graph at batch 2 misses"):
        t = Translator.load(bundle, backend="inductor", batch_sizes=COMPILED, cache_dir=str(cache_dir),
                            uint8_graphs=True)  # fmt: skip
    with t:
        info = t.describe()
        assert not t.backend.uint8_on_device and info["uint8_batch_sizes"] == []
        assert "misses the FP32 reference's uint8 result (max abs 0.0235 > 0.00785" in info["uint8_error"]
        images, labels = crops(3)  # still served, normalised on the host around the checked float graph
        want = t.normalizer.postprocess(t.infer(t.normalizer.preprocess(images), labels))
        np.testing.assert_array_equal(t.infer_uint8(images, labels), want)


def test_a_failed_compile_keeps_the_float_path(bundle: Path, cache_dir: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("Inductor could not lower aten.floor")  # what a compiler bug would raise

    monkeypatch.setattr(inductor_uint8, "compile_uint8", broken)
    with pytest.warns(RuntimeWarning, match="did not compile"):
        t = Translator.load(bundle, backend="inductor", batch_sizes=COMPILED, cache_dir=str(cache_dir),
                            uint8_graphs=True)  # fmt: skip
    with t:
        assert not t.backend.uint8_on_device
        assert "RuntimeError: Inductor could not lower aten.floor" in t.describe()["uint8_error"]


def test_uint8_graphs_must_be_a_bool(bundle: Path, cache_dir: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="uint8_graphs must be True or False"):
        Translator.load(bundle, backend="inductor", cache_dir=str(cache_dir), device_type="cpu", uint8_graphs="yes")


@pytest.mark.gpu
def test_cuda_uint8_graphs_by_default_close_to_fp32(bundle: Path, translator: Translator) -> None:
    images, labels = crops(11, seed=4)  # 8 + 1 + 1 + 1 or 8 + pad: over the sizes 1 and 8
    with Translator.load(bundle, backend="inductor", batch_sizes=(1, 8)) as t:
        info = t.describe()
        assert t.backend.uint8_on_device and info["uint8_batch_sizes"] == [1, 8], info
        assert info["uint8_graph_batch_sizes"] == [1, 8] and info["uint8_error"] == ""
        got = t.infer_uint8(images, labels)
        for _ in range(2):  # graph replays give the same bytes
            np.testing.assert_array_equal(t.infer_uint8(images, labels), got)
    want = translator.normalizer.postprocess(translator.infer(translator.normalizer.preprocess(images), labels))
    tolerance = inductor_uint8.TOLERANCES["uint8_fp16"]
    a, b = inductor_uint8.uint8_signal(want), inductor_uint8.uint8_signal(got)
    assert tolerance.passes(float(np.abs(a - b).max()), inductor_uint8.psnr_db(a, b))
