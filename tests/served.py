"""One `stargan serve` process for a test module: free loopback ports, readiness, its tritonserver, a clean stop.

Usage: server = Served(bundle, workdir, max_batch=16); server.wait_ready(); ...; server.stop()
(tests/ is on sys.path via its conftest; test_serve.py and test_serve_hostile.py share it)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from procs import descendants, free_ports


class Served:
    """`stargan serve BUNDLE` on ONNX Runtime, started in its own session; stderr goes to `log` (a file, not a
    pipe nobody reads, which a chatty server could fill and block on)."""

    def __init__(self, bundle: Path, workdir: Path, *, max_batch: int, queue_delay_us: int, extra: tuple = ()) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.workdir = workdir
        self.http, self.grpc = f"http://127.0.0.1:{self.http_port}", f"grpc://127.0.0.1:{self.grpc_port}"
        cmd = [
            sys.executable, "-m", "stargan_sdk.cli", "serve", str(bundle),
            "--backend", "onnxruntime",
            "--http-port", str(self.http_port),
            "--grpc-port", str(self.grpc_port),
            "--metrics-port", str(self.metrics_port),
            "--max-batch", str(max_batch),
            "--max-queue-delay-us", str(queue_delay_us),
            "--workdir", str(workdir),
            *extra,
        ]  # fmt: skip
        self.log = workdir.parent / f"serve-{self.http_port}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds until ready; fails with the server's log if it exits or is not ready in time."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            assert self.proc.poll() is None, self.log.read_text()
            if self.ready():
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"stargan serve was not ready in {timeout} s: {self.log.read_text()}")

    def triton_pid(self) -> int:
        [pid] = [
            p
            for p in descendants(self.proc.pid)
            if Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/tritonserver")
        ]
        return pid

    def stop(self) -> int:
        """SIGTERM to the serve process group; its exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)
        return self.proc.returncode

    def kill(self) -> None:
        """The fixtures' safety net (the last test of a module stops the server properly)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
