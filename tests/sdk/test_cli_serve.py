"""`stargan serve` refusals (busy port, bad bundle, bad options: one error line, exit 2, nothing started) and
Ctrl-C during start-up (nothing left)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from procs import descendants, free_ports, running
from stargan_sdk.cli.stargan import app

runner = CliRunner()


def _serve(*args: object):
    return runner.invoke(app, ["serve", *map(str, args)])


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_busy_port_is_one_line(bundle: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_error_line(
            _serve(bundle, "--grpc-port", port, "--http-port", port + 1 if port < 65535 else 1, "--workdir", tmp_path)
        )
    assert f"cannot listen on 127.0.0.1:{port} (--grpc-port)" in line
    assert list(tmp_path.iterdir()) == []


def test_bad_bundle_is_one_line(bundle_copy: Path, tmp_path: Path) -> None:
    (bundle_copy / "generator.onnx").write_bytes(b"damaged")
    ports = free_ports(3)
    line = _one_error_line(
        _serve(
            bundle_copy,
            "--backend",
            "onnxruntime",
            "--workdir",
            tmp_path,
            "--http-port",
            ports[0],
            "--grpc-port",
            ports[1],
            "--metrics-port",
            ports[2],
        )
    )
    assert "checksum" in line or "sha256" in line
    assert _one_error_line(_serve(tmp_path / "missing")).startswith("error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-batch", "0"], "--max-batch and --instances must be >= 1"),
        (["--http-port", "8001"], "must differ"),
        (["--metrics-port", "70000"], "1..65535"),
        (["--kind", "tpu"], "--kind must be auto, cpu or gpu"),
    ],
)
def test_bad_options(bundle: Path, args: list[str], message: str) -> None:
    assert message in _one_error_line(_serve(bundle, *args))


def test_ctrl_c_while_the_models_load_leaves_nothing(bundle: Path, tmp_path: Path) -> None:
    """SIGINT to the foreground process group (a terminal's Ctrl-C) while tritonserver is still starting."""
    pytest.importorskip("pytriton", reason="needs the serve extra (make install-dev installs it)")
    ports = free_ports(3)
    cmd = [
        sys.executable,
        "-m",
        "stargan_sdk.cli",
        "serve",
        str(bundle),
        "--backend",
        "onnxruntime",
        "--workdir",
        str(tmp_path),
        "--http-port",
        str(ports[0]),
        "--grpc-port",
        str(ports[1]),
        "--metrics-port",
        str(ports[2]),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        assert "starting tritonserver" in proc.stderr.readline()
        deadline = time.monotonic() + 60
        while not descendants(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = descendants(proc.pid)
        assert tree, "tritonserver did not start"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "stopped" in proc.stderr.read()
    assert not [pid for pid in tree if running(pid)]
    assert not list(Path("/dev/shm").glob(f"stargan_{proc.pid}_*"))
    assert list(tmp_path.iterdir()) == []


def test_a_sigkilled_serves_folders_are_removed_on_the_next_start(bundle: Path, tmp_path: Path) -> None:
    """SIGKILL leaves the repository and workspace folders; the next start removes them (their owner is gone)
    and nothing else: a live process's folder, an unnamed folder and a stranger's file stay."""
    import tempfile

    from stargan_sdk.serve.leftovers import owned_prefix

    pytest.importorskip("pytriton", reason="needs the serve extra (make install-dev installs it)")
    ports = free_ports(3)
    cmd = [
        sys.executable,
        "-m",
        "stargan_sdk.cli",
        "serve",
        str(bundle),
        "--backend",
        "onnxruntime",
        "--workdir",
        str(tmp_path),
        "--http-port",
        str(ports[0]),
        "--grpc-port",
        str(ports[1]),
        "--metrics-port",
        str(ports[2]),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        assert "starting tritonserver" in proc.stderr.readline()
        deadline = time.monotonic() + 60
        while not descendants(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = descendants(proc.pid)
        assert tree, "tritonserver did not start"
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30  # tritonserver gets SIGTERM from its dead parent and stops
    while [pid for pid in tree if running(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    left = sorted(p.name.split("-")[1] for p in tmp_path.iterdir())
    assert left == ["repo", "serve"], left
    alive = Path(tempfile.mkdtemp(prefix=owned_prefix("stargan-repo-"), dir=tmp_path))  # this test process lives
    (tmp_path / "stargan-repo-unnamed").mkdir()
    (tmp_path / "notes.txt").write_text("keep")
    result = _serve(
        tmp_path / "missing",
        "--workdir",
        tmp_path,
        "--http-port",
        ports[0],
        "--grpc-port",
        ports[1],
        "--metrics-port",
        ports[2],
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("removed 2 folder(s)") and "error: bundle folder not found" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "stargan-repo-unnamed", "notes.txt"])
    # nothing the killed server started runs on (a tritonserver SIGTERMed while loading outlives its parent and
    # can leave Python-backend stubs waiting forever): the start stopped them
    deadline = time.monotonic() + 10
    while (named := _processes_naming(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not named, named


def _processes_naming(folder: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(folder) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()[:200]!r}")
        except OSError:
            continue
    return found


def test_serve_kind_auto_and_backend_auto_ask_the_same_question(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU machine without cuda-bindings `auto` tried the GPU engines while `serve --kind auto` chose CPU
    instances: both now follow the driver's answer (whether a GPU engine can run is the backend's own check)."""
    from stargan_sdk.backends import registry
    from stargan_sdk.cli import serve as cli_serve
    from stargan_sdk.host import hardware

    for present in (True, False):
        monkeypatch.setattr(hardware, "nvidia_gpu_present", lambda present=present: present)
        monkeypatch.setattr(registry, "nvidia_gpu_present", hardware.nvidia_gpu_present)
        assert cli_serve._instance_kind("auto") == ("gpu" if present else "cpu")
        assert ("inductor" in registry.auto_order()) is present
        assert cli_serve._instance_kind("cpu") == "cpu"
