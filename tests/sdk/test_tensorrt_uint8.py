"""uint8 at the TensorRT boundary: preprocess.plan → generator.plan → postprocess.plan on the device, against
NVIDIA's real 10.0, 10.13 and 11.4 bindings (simulated, `trt_api`: ONNX Runtime runs each plan on simulated
device memory) and real TensorRT on a GPU (`tensorrt`). Results equal the host's Normalizer around the float
path; a bundle without the two plans keeps today's behaviour.

Usage: pytest -q tests/sdk/test_tensorrt_uint8.py
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bundle_edits import engine_artifacts
from stargan_sdk import Translator
from stargan_sdk.backends.tensorrt import TrtBackend
from stargan_sdk.bundle.constants import NORM_MEAN, NORM_STD, UINT8_ROLES
from stargan_sdk.bundle.manifest import Artifact, Profile, read_manifest, sha256_file, write_manifest
from stargan_sdk.errors import ImageInputError, ManifestError
from trtsim.fixtures import sim, trt_surface  # noqa: F401

SIZE, C_DIM, MAX_BATCH = 32, 5, 4


def add_engines(folder: Path, uint8: bool = True) -> Path:
    """generator.plan (and the two uint8 plans) built with the exporter's builders and recorded in the manifest."""
    from stargan_export.tensorrt_build import onnx_to_engine, uint8_engines

    batches = (1, 2, MAX_BATCH)
    info = onnx_to_engine(folder / "generator.fp16.onnx", folder / "generator.plan", min_batch=1, opt_batch=2,
                          max_batch=MAX_BATCH, image_size=SIZE, c_dim=C_DIM)  # fmt: skip
    plans = [("generator", "generator.plan")]
    if uint8:
        uint8_engines(folder, batches=batches, image_size=SIZE, mean=NORM_MEAN, std=NORM_STD)
        plans += [("preprocess", "preprocess.plan"), ("postprocess", "postprocess.plan")]
    arts = tuple(
        Artifact(kind="tensorrt", role=role, file=file, sha256=sha256_file(folder / file),
                 precision="fp16" if role == "generator" else "fp32", tensorrt_version=info.tensorrt_version,
                 gpu_name=info.gpu_name, compute_capability=info.compute_capability, profile=Profile(*batches))
        for role, file in plans
    )  # fmt: skip
    manifest = read_manifest(folder)
    write_manifest(folder, dataclasses.replace(manifest, artifacts=(*manifest.artifacts, *arts)))
    return folder


def crops(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8), rng.integers(0, 2, (n, C_DIM)).astype(np.float32)


def host_path(t: Translator, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return t.normalizer.postprocess(t.infer(t.normalizer.preprocess(images), labels))


@pytest.mark.trt_api
def test_uint8_chain_equals_the_host_path_with_graph_replay(sim, bundle_copy):
    add_engines(bundle_copy)
    with Translator.load(bundle_copy, backend="tensorrt") as t:
        assert t.backend.uint8_on_device and t.describe()["uint8_error"] == ""
        for _ in range(2):  # capture, then replay the one graph of the three engines per batch size
            for n, seed in ((1, 1), (3, 2), (4, 3), (7, 4)):  # 7: split 4 + 3 by the Translator
                images, labels = crops(n, seed)
                got = t.infer_uint8(images, labels)
                assert got.dtype == np.uint8 and got.shape == images.shape
                np.testing.assert_array_equal(got, host_path(t, images, labels))
        assert t.describe()["uint8_graph_batches"] == [1, 3, 4]
        original = {"Black_Hair": 1, "Male": 0, "Young": 1}
        images, _ = crops(3, 5)
        want = np.stack([t.translate(im, {"Blond_Hair": 1}, original=original) for im in images])
        np.testing.assert_array_equal(t.edit_rgb(list(images), {"Blond_Hair": 1}, original=original), want)
    executes = sim.fake.called("IExecutionContext.execute_async_v3")
    assert executes and len(sim.fake.called("ICudaEngine.create_execution_context")) == 3  # per load: 3 engines


@pytest.mark.trt_api
def test_pinned_crops_are_uploaded_in_place_and_bad_ones_refused(sim, bundle_copy):
    from stargan_sdk import cuda

    add_engines(bundle_copy)
    images, labels = crops(3, 6)
    with TrtBackend(bundle_copy) as b:
        want = b.infer_uint8(images, labels)
        staging = b.engine._uint8.host_in.array
        with cuda.PinnedBuffer((3, SIZE, SIZE, 3), np.uint8) as pinned:
            pinned.array[...] = images
            staging.fill(7)
            np.testing.assert_array_equal(b.infer_uint8(pinned.array, labels), want)
            assert (staging == 7).all()  # read in place: no staging copy
        with pytest.raises(ImageInputError, match="batch"):
            b.infer_uint8(*crops(MAX_BATCH + 1, 7))
        with pytest.raises(ImageInputError, match="uint8 crops"):
            b.infer_uint8(images.astype(np.float32), labels)
        np.testing.assert_array_equal(b.infer_uint8(images, labels), want)  # still usable


@pytest.mark.trt_api
def test_a_bundle_without_the_uint8_plans_keeps_the_host_path(sim, bundle_copy):
    add_engines(bundle_copy, uint8=False)
    images, labels = crops(3, 8)
    with Translator.load(bundle_copy, backend="tensorrt") as t:
        assert not t.backend.uint8_on_device and "no uint8 boundary engines" in t.describe()["uint8_error"]
        np.testing.assert_array_equal(t.infer_uint8(images, labels), host_path(t, images, labels))
    assert len(sim.fake.called("ICudaEngine.create_execution_context")) == 1


@pytest.mark.trt_api
def test_validate_runs_the_uint8_plans(sim, bundle_copy):
    from stargan_export.validate import validate_bundle

    add_engines(bundle_copy)
    results = {r.file: r for r in validate_bundle(bundle_copy)}
    for file in ("preprocess.plan", "postprocess.plan"):
        assert results[file].status == "ok" and "max 0 LSB" in results[file].detail, results[file]


def test_the_manifest_wants_both_plans_beside_the_engine(bundle_copy):
    manifest = read_manifest(bundle_copy)
    engine, pre, post = engine_artifacts()
    dataclasses.replace(manifest, artifacts=(*manifest.artifacts, engine, pre, post))  # accepted
    with pytest.raises(ManifestError, match="one TensorRT plan each for preprocess and postprocess"):
        dataclasses.replace(manifest, artifacts=(*manifest.artifacts, engine, pre))
    with pytest.raises(ManifestError, match="beside the generator's engine"):
        dataclasses.replace(manifest, artifacts=(*manifest.artifacts, pre, post))
    with pytest.raises(ManifestError, match="another TensorRT release, GPU or batch profile"):
        other = dataclasses.replace(post, profile=Profile(1, 2, 8))
        dataclasses.replace(manifest, artifacts=(*manifest.artifacts, engine, pre, other))
    assert UINT8_ROLES == ("preprocess", "postprocess")


@pytest.mark.tensorrt
def test_real_tensorrt_uint8_chain_within_one_lsb(official_checkpoint, tmp_path):
    """On a GPU: the exporter builds and checks the plans; TensorRT may fuse Mul+Add into an FMA, so one LSB."""
    from stargan_export.bundle import build_bundle

    build_bundle(official_checkpoint, tmp_path / "b", attributes=["Black_Hair", "Blond_Hair", "Brown_Hair", "Male",
                 "Young"], image_size=SIZE, engine=True, opt_batch=2, max_batch=MAX_BATCH)  # fmt: skip
    images, labels = crops(7, 9)
    with Translator.load(tmp_path / "b", backend="tensorrt") as t:
        assert t.backend.uint8_on_device
        got = t.infer_uint8(images, labels)
        assert np.abs(got.astype(int) - host_path(t, images, labels).astype(int)).max() <= 1
