"""The SDK's TensorRT backend against NVIDIA's real TensorRT 10.0, 10.13 and 11.4 bindings (simulated, `trt_api`).

A bundle gets an engine built by the exporter's `onnx_to_engine` under the simulation of one release; the
Translator then loads it on the `tensorrt` backend and runs it: every runtime call is checked against that
release's bindings, and the outputs (ONNX Runtime standing in for the kernels) prove that buffers, addresses,
shapes, batch splitting and CUDA-graph replay are wired right.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from stargan_sdk import Translator
from stargan_sdk.backends.tensorrt import TrtBackend
from stargan_sdk.bundle.manifest import Artifact, Profile, read_manifest, sha256_file, write_manifest
from stargan_sdk.errors import EngineMismatchError, ImageInputError
from trtsim.bindings import VERSIONS
from trtsim.fixtures import load_surface, sim, trt_surface  # noqa: F401
from trtsim.simulate import Simulation

pytestmark = pytest.mark.trt_api
SIZE, C_DIM, MAX_BATCH = 32, 5, 4


def add_engine(folder: Path, sim: Simulation) -> Path:
    """Build generator.plan from the bundle's FP16 graph with the exporter's builder and record it."""
    from stargan_export.tensorrt_build import onnx_to_engine

    info = onnx_to_engine(folder / "generator.fp16.onnx", folder / "generator.plan", min_batch=1, opt_batch=2,
                          max_batch=MAX_BATCH, image_size=SIZE, c_dim=C_DIM)  # fmt: skip
    manifest = read_manifest(folder)
    engine = Artifact(kind="tensorrt", role="generator", file="generator.plan", precision="fp16",
                      sha256=sha256_file(folder / "generator.plan"), tensorrt_version=info.tensorrt_version,
                      gpu_name=info.gpu_name, compute_capability=info.compute_capability,
                      profile=Profile(1, 2, MAX_BATCH))  # fmt: skip
    write_manifest(folder, dataclasses.replace(manifest, artifacts=(*manifest.artifacts, engine)))
    return folder


@pytest.fixture
def engine_bundle(sim, bundle_copy: Path) -> Path:
    return add_engine(bundle_copy, sim)


def _fp16_reference(folder: Path, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / "generator.fp16.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"image": x, "label": c})[0]


def _batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 3, SIZE, SIZE)).astype(np.float32), rng.integers(0, 2, (n, C_DIM)).astype(np.float32)


def test_translator_runs_the_engine_and_splits_batches_at_the_profile_limit(sim, engine_bundle, face):
    x, c = _batch(10, seed=1)
    with Translator.load(engine_bundle) as t:  # auto: a matching engine on a GPU comes first
        assert t.backend_name == "tensorrt" and t.backend.max_batch == MAX_BATCH
        info = t.describe()
        assert (info["tensorrt"], info["device"], info["max_batch"]) == (sim.version, "Simulated GPU", MAX_BATCH)
        np.testing.assert_allclose(t.infer(x, c), _fp16_reference(engine_bundle, x, c), atol=1e-5)  # 4 + 4 + 2
        edited = t.translate(face, {"Blond_Hair": 1}, original={"Black_Hair": 1, "Male": 0, "Young": 1})
        assert edited.shape == face.shape and edited.dtype == np.uint8
    contexts = sim.fake.called("ICudaEngine.create_execution_context")
    assert len(contexts) == 1 and not t.backend.loaded


def test_graph_replay_and_infer_batches_equal_eager(sim, engine_bundle):
    manifest = read_manifest(engine_bundle)
    batches = [dict(zip(("image", "label"), _batch(n, seed=n))) for n in (1, 3, 4, 3, 1, 4, 2)]
    with TrtBackend(engine_bundle, manifest, cuda_graphs=False) as eager:
        expected = [eager.infer(b)["output"] for b in batches]
        assert eager.graph_batches() == []
    with TrtBackend(engine_bundle, manifest, cuda_graphs=True) as b:
        for _ in range(2):  # capture, then replay the graph of each batch size
            for feeds, ref in zip(batches, expected):
                np.testing.assert_array_equal(b.infer(feeds)["output"], ref)
        assert b.graph_batches() == [1, 2, 3, 4]
        for out, ref in zip(b.infer_batches(batches), expected):  # both buffer slots, graphs per slot
            np.testing.assert_array_equal(out["output"], ref)
        too_big = dict(zip(("image", "label"), _batch(5, seed=5)))
        with pytest.raises(ImageInputError, match="batch of 5"):
            b.infer(too_big)
        with pytest.raises(ImageInputError, match="batch of 5"):  # after batch 0 is in flight
            b.infer_batches([batches[2], too_big])
        np.testing.assert_array_equal(b.infer_batches(batches[:2])[1]["output"], expected[1])  # still usable
    for feeds, ref in zip(batches, expected):
        np.testing.assert_allclose(ref, _fp16_reference(engine_bundle, feeds["image"], feeds["label"]), atol=1e-5)


def test_a_plan_from_another_release_is_refused_before_and_at_deserialization(sim, engine_bundle, monkeypatch):
    other_version = next(v for v in VERSIONS if v != sim.version)
    other = Simulation(load_surface(other_version)).install(monkeypatch)
    manifest = read_manifest(engine_bundle)
    with pytest.raises(
        EngineMismatchError, match=f"built with TensorRT {sim.version}, this machine has {other_version}"
    ):
        TrtBackend(engine_bundle, manifest).load()
    # A manifest that lies about the release: the plan itself does not deserialize, and the error says so.
    engine = manifest.artifact("generator", "tensorrt")
    lying = dataclasses.replace(
        manifest,
        artifacts=tuple(
            dataclasses.replace(a, tensorrt_version=other_version) if a is engine else a for a in manifest.artifacts
        ),
    )
    with pytest.raises(EngineMismatchError, match=f"TensorRT {other_version} could not deserialize generator.plan"):
        TrtBackend(engine_bundle, lying).load()
    other.assert_clean()


def test_explicit_max_batch_below_the_profile(sim, engine_bundle):
    x, c = _batch(5, seed=7)
    with Translator.load(engine_bundle, backend="tensorrt", max_batch=2, cuda_graphs=False) as t:
        assert t.backend.max_batch == 2
        np.testing.assert_allclose(t.infer(x, c), _fp16_reference(engine_bundle, x, c), atol=1e-5)
    shapes = [call["shape"][0] for call in sim.fake.called("IExecutionContext.set_input_shape")]
    assert max(shapes) == 2
