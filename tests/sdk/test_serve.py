"""`stargan serve` end to end: the real tritonserver on free loopback ports, concurrent clients, metrics,
malformed requests, the numpy-free edit model, RemoteTranslator, and a SIGTERM that leaves nothing behind.

One server for the module (started by the CLI in its own session); the last test stops it with SIGTERM.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from procs import descendants, running
from served import Served
from stargan_sdk.errors import AttributeNameError, ServerError

if importlib.util.find_spec("pytriton") is None or importlib.util.find_spec("tritonclient") is None:
    pytest.skip(
        "serving needs the serve extra (pip install -e '.[serve]'; `make install-dev` installs it)",
        allow_module_level=True,
    )

from stargan_sdk.serve.remote import RemoteTranslator  # noqa: E402
from stargan_sdk.serve.triton_server import inference_counts  # noqa: E402

MAX_BATCH = 16


@pytest.fixture(scope="module")
def served(bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    server = Served(bundle, tmp_path_factory.mktemp("serve") / "work", max_batch=MAX_BATCH, queue_delay_us=2000)
    server.workdir.mkdir()
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _raw_infer(url: str, image: np.ndarray, label: np.ndarray, dtype: str = "FP32"):
    import tritonclient.http as http

    client = http.InferenceServerClient(url.split("://")[1])
    try:
        inputs = [
            http.InferInput("image", list(image.shape), dtype),
            http.InferInput("label", list(label.shape), "FP32"),
        ]
        inputs[0].set_data_from_numpy(image)
        inputs[1].set_data_from_numpy(label)
        return client.infer("stargan", inputs).as_numpy("output")
    finally:
        client.close()


def _batch(translator, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s, c = translator.image_size, translator.manifest.c_dim
    return rng.uniform(-1, 1, (n, 3, s, s)).astype(np.float32), rng.integers(0, 2, (n, c)).astype(np.float32)


def _stats(served: Served) -> tuple[int, int]:
    """(images inferred, model executions) of `stargan` from Prometheus /metrics."""
    return inference_counts(f"http://127.0.0.1:{served.metrics_port}/metrics")


def test_eight_concurrent_clients_get_the_sdks_outputs_in_batches(served: Served, translator) -> None:
    count0, exec0 = _stats(served)
    jobs = [_batch(translator, 1 + i % 2, seed=i) for i in range(48)]

    # One RemoteTranslator per protocol shared by all 8 threads: it must keep one client per thread.
    with RemoteTranslator.load(served.http) as http, RemoteTranslator.load(served.grpc) as grpc:
        with ThreadPoolExecutor(8) as pool:
            outputs = list(pool.map(lambda i: (http if i % 2 else grpc).infer(*jobs[i]), range(len(jobs))))
    for (x, c), got in zip(jobs, outputs):
        np.testing.assert_allclose(got, translator.infer(x, c), atol=1e-5)
    expected = sum(len(x) for x, _ in jobs)
    deadline = time.monotonic() + 10  # Triton counts a batch just after sending its responses
    while (_stats(served)[0] - count0 < expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    count, execs = _stats(served)
    images, runs = count - count0, execs - exec0
    assert images == expected
    assert runs < len(jobs), f"{len(jobs)} requests ran in {runs} executions: the batcher formed no batch > 1"


def test_remote_translator_has_the_translator_api(served: Served, translator, face: np.ndarray) -> None:
    with RemoteTranslator.load(served.grpc) as remote:
        assert remote.attributes == translator.attributes and remote.image_size == translator.image_size
        assert remote.estimate(face) == translator.estimate(face)
        local = translator.translate(face, Blond_Hair=1)
        assert np.abs(remote.translate(face, Blond_Hair=1).astype(int) - local).max() <= 1
        batch = remote.translate_batch([face, face[::-1]], [{"Male": 1}, {"Young": 0}])
        assert len(batch) == 2 and batch[0].shape == face.shape
        x, c = _batch(translator, MAX_BATCH + 3, seed=99)  # more than the server's max batch: split here
        np.testing.assert_allclose(remote.infer(x, c), translator.infer(x, c), atol=1e-5)
        parts = [{"image": x[i : i + 4], "label": c[i : i + 4]} for i in range(0, 12, 4)]
        outputs = remote.backend.infer_batches(parts)  # the backend contract: in order, several in flight
        np.testing.assert_allclose(
            np.concatenate([o["output"] for o in outputs]), translator.infer(x[:12], c[:12]), atol=1e-5
        )
        with pytest.raises(AttributeNameError):
            remote.translate(face, Blond=1)
    with pytest.raises(ServerError, match="no model 'nope'"):
        RemoteTranslator.load(served.http, model="nope")


def test_malformed_requests_are_refused_and_others_unaffected(served: Served, translator) -> None:
    x, c = _batch(translator, 1, seed=5)
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    s = translator.image_size
    bad = [
        (nan, c, "FP32", "finite"),
        (x * 3, c, "FP32", "in \\[-1, 1\\]"),
        (x[:, :, :-1], c, "FP32", "shape"),
        (x.astype(np.float64), c, "FP64", "data-type|datatype|FP64"),
        (
            np.zeros((MAX_BATCH + 1, 3, s, s), np.float32),
            np.zeros((MAX_BATCH + 1, c.shape[1]), np.float32),
            "FP32",
            "batch",
        ),
    ]
    good = [_batch(translator, 1, seed=100 + i) for i in range(16)]
    from tritonclient.utils import InferenceServerException

    def refused(case) -> str:
        image, label, dtype, _ = case
        with pytest.raises(InferenceServerException) as info:
            _raw_infer(served.http, image, label, dtype)
        return str(info.value)

    with ThreadPoolExecutor(6) as pool:  # bad and good requests interleaved in the same batches
        good_futures = [pool.submit(_raw_infer, served.http, gx, gc) for gx, gc in good]
        messages = list(pool.map(refused, bad * 2))
        outputs = [f.result() for f in good_futures]
    for message, (_, _, _, pattern) in zip(messages, bad * 2):
        assert re.search(pattern, message, flags=re.I), message
    for (gx, gc), got in zip(good, outputs):
        np.testing.assert_allclose(got, translator.infer(gx, gc), atol=1e-5)
    assert served.ready()


def _png_base64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _edit_body(image_text: str, changes: str, original: str | None = None) -> dict:
    inputs = [
        {"name": "image", "shape": [1, 1], "datatype": "BYTES", "data": [image_text]},
        {"name": "changes", "shape": [1, 1], "datatype": "BYTES", "data": [changes]},
    ]
    if original is not None:
        inputs.append({"name": "original", "shape": [1, 1], "datatype": "BYTES", "data": [original]})
    return {"inputs": inputs}


def test_edit_model_serves_clients_without_numpy(served: Served, translator, face: np.ndarray) -> None:
    url = f"{served.http}/v2/models/stargan_edit/infer"
    status, reply = _post(url, _edit_body(_png_base64(face), '{"Blond_Hair": 1}'))
    assert status == 200, reply
    edited = np.asarray(Image.open(io.BytesIO(base64.b64decode(reply["outputs"][0]["data"][0]))))
    assert np.array_equal(edited, translator.translate(face, Blond_Hair=1))
    status, reply = _post(
        url, _edit_body(_png_base64(face), '{"Male": 1}', original='{"Black_Hair": 1, "Male": 0, "Young": 1}')
    )
    assert status == 200, reply
    cases = [
        (_edit_body("bm90IGFuIGltYWdl", "{}"), "could not be decoded"),  # base64 of "not an image"
        (_edit_body("%%garbage%%", "{}"), "neither an encoded image"),
        (_edit_body(_png_base64(face), "{not json"), "JSON object"),
        (_edit_body(_png_base64(face), '{"Blond": 1}'), "unknown attribute 'Blond'"),
    ]
    for body, message in cases:
        status, reply = _post(url, body)
        assert status >= 400 and message in reply["error"], reply
    assert served.ready()


ROOT = Path(__file__).resolve().parents[2]


def _serve_section() -> str:
    return (ROOT / "README.md").read_text().split("## Serve", 1)[1].split("\n## ", 1)[0]


def _readme_cwd(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "example-face.png").symlink_to(ROOT / "docs" / "example-face.png")
    return tmp_path


def test_readme_python_client_runs_as_written(served: Served, tmp_path: Path) -> None:
    [code] = re.findall(r"```python\n(.*?)```", _serve_section(), flags=re.S)
    assert "grpc://127.0.0.1:8001" in code
    code = code.replace("grpc://127.0.0.1:8001", served.grpc)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=_readme_cwd(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Blond_Hair" in proc.stdout
    assert Image.open(tmp_path / "blond.png").size == Image.open(ROOT / "docs" / "example-face.png").size


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_commands_run_as_written(served: Served, tmp_path: Path) -> None:
    block = _serve_section().split("```bash", 2)[2].split("```", 1)[0]
    script = block.replace("localhost:8000", f"127.0.0.1:{served.http_port}").replace(
        "localhost:8002", f"127.0.0.1:{served.metrics_port}"
    )
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=_readme_cwd(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "blond.png").size == Image.open(ROOT / "docs" / "example-face.png").size
    counts = dict(
        re.findall(r'^(nv_inference_(?:exec_)?count)\{model="stargan_edit".* (\d+)$', proc.stdout, flags=re.M)
    )
    assert int(counts["nv_inference_count"]) >= 1 and int(counts["nv_inference_exec_count"]) >= 1, proc.stdout


def test_sigterm_leaves_no_process_shared_memory_or_workspace(served: Served) -> None:
    """Runs last: stops the module's server the way an operator or an orchestrator does."""
    tree = descendants(served.proc.pid)
    assert tree, "tritonserver and its python stubs should run below stargan serve"
    segments = {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith(f"stargan_{served.proc.pid}_")}
    assert segments, "the python backend's shared-memory regions should exist while serving"
    assert served.stop() == 0
    time.sleep(0.5)
    alive = [pid for pid in tree if running(pid)]
    assert alive == [], f"processes left after SIGTERM: {alive}"
    assert not [p for p in segments if (Path("/dev/shm") / p).exists()]
    assert list(served.workdir.iterdir()) == []
    assert "stopped" in served.log.read_text()
