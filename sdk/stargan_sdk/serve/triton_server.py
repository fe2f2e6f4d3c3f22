"""Run the real `tritonserver` binary shipped in the nvidia-pytriton wheel on a model repository.

Usage: with TritonServer(repo, http_port=8000, grpc_port=8001, metrics_port=8002) as server: server.wait()

PyTriton's wheel carries Triton core (HTTP/gRPC, dynamic batcher, Prometheus metrics) with its python
backend and one backend stub per Python version. A private workspace gets that backend plus the stub for
this interpreter; the server's environment puts this interpreter's libpython first (the stub links
libpython, and a system copy of another build breaks it) and this environment's packages on PYTHONPATH,
so the stub runs the SDK installed here. Stopping sends SIGTERM, which Triton turns into a graceful
shutdown (stubs end, shared memory released); the workspace is then removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import secrets
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from stargan_sdk.errors import StarGANError
from stargan_sdk.serve.leftovers import owned_prefix

SHM_DIR = Path("/dev/shm")
EXIT_TIMEOUT_S = 10  # tritonserver's wait for its in-flight inferences on SIGTERM
STOP_TIMEOUT_S = 15  # then SIGKILL to its process group


class ServeError(StarGANError):
    """The Triton server cannot start (missing package, busy port) or stopped unexpectedly."""


def pytriton_dist() -> Path:
    """pytriton's `tritonserver` folder (bin/, backends/, python_backend_stubs/)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServeError("serving needs the nvidia-pytriton package: pip install 'stargan[serve]'")
    dist = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (dist / "bin" / "tritonserver").is_file():
        raise ServeError(f"{dist} has no bin/tritonserver; reinstall nvidia-pytriton")
    return dist


def inference_counts(metrics_url: str, model: str = "stargan") -> tuple[int, int]:
    """(requests inferred, model executions) of `model` from Triton's Prometheus endpoint: fewer executions than
    requests means the dynamic batcher formed batches."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        for name in ("nv_inference_count", "nv_inference_exec_count"):
            if line.startswith(f'{name}{{model="{model}",'):
                values[name] = int(float(line.rsplit(" ", 1)[1]))
    return values["nv_inference_count"], values["nv_inference_exec_count"]


def check_port_free(host: str, port: int, flag: str) -> None:
    """One clear line instead of a Triton log when another process already listens on the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Triton does: TIME_WAIT is not "busy"
        try:
            s.bind((host, port))
        except OSError as e:
            raise ServeError(f"cannot listen on {host}:{port} ({flag}): {e.strerror or e}") from None


_HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Block SIGINT/SIGTERM in this thread for the block (delivered when it ends); a no-op off Linux."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _child_setup() -> None:
    """In the child before exec: take back the signals held by the parent (the mask is inherited), and get
    SIGTERM if the parent dies, so a killed `stargan serve` leaves no server."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _signal_group(pgid: int, signum: int) -> bool:
    """Signal a process group; False when it has no process left."""
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies left, or a reused id: nothing of ours to stop
        return False


def _end_group(pgid: int, grace: float = 5.0) -> None:
    """Stop what is left of the server's process group once tritonserver has exited: stopped while its
    models were still loading, it exits without waiting for their python stubs."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_running(pgid):
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)


def _group_running(pgid: int) -> bool:
    """Whether a process of the group still runs; zombies (ended, awaiting init's reaping) do not count."""
    proc = Path("/proc")
    if not proc.is_dir():
        return _signal_group(pgid, 0)
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    sdk_root = Path(__file__).resolve().parents[2]  # the folder holding stargan_sdk/ (serve/ is one level in)
    paths = [str(sdk_root), *site.getsitepackages()]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return env


class TritonServer:
    """A tritonserver process on `repository`; a context manager that starts it and stops it cleanly.

    Args:
        repository: the model repository folder.
        host: address for HTTP, gRPC and metrics (default loopback).
        http_port, grpc_port, metrics_port: the three listening ports.
        workdir: where the private workspace is made (default: the system temp folder).
        verbose: pass Triton's log through to stderr instead of keeping it in the workspace.
        gpu_metrics: also export GPU metrics (utilisation, memory, power) on /metrics.
        http_host: address for HTTP alone (default `host`; `stargan serve` keeps it on loopback, behind its front).
    """

    def __init__(
        self,
        repository: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        workdir: str | os.PathLike[str] | None = None,
        verbose: bool = False,
        gpu_metrics: bool = False,
        http_host: str | None = None,
    ) -> None:
        self.repository = Path(repository)
        self.http_host = http_host or host
        self.gpu_metrics = gpu_metrics
        self.host = host
        self.ports = {"--http-port": http_port, "--grpc-port": grpc_port, "--metrics-port": metrics_port}
        self.workdir = workdir
        self.verbose = verbose
        self.shm_prefix = f"stargan_{os.getpid()}_{secrets.token_hex(4)}_"
        self.workspace: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self._client_host(self.http_host)}:{self.ports['--http-port']}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self._client_host()}:{self.ports['--grpc-port']}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._client_host()}:{self.ports['--metrics-port']}/metrics"

    def _client_host(self, host: str | None = None) -> str:
        host = host or self.host
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"[{host}]" if ":" in host else host

    def _prepare_workspace(self, dist: Path) -> Path:
        """backends/python with the wheel's backend library, utils and this Python's stub."""
        self.workspace = Path(tempfile.mkdtemp(prefix=owned_prefix("stargan-serve-"), dir=self.workdir))
        python = self.workspace / "backends" / "python"
        python.mkdir(parents=True)
        for item in (dist / "backends" / "python").iterdir():
            (python / item.name).symlink_to(item)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise ServeError(f"nvidia-pytriton ships no python backend stub for Python {version}")
        (python / stub.name).symlink_to(stub)
        return self.workspace

    def command(self, dist: Path, workspace: Path) -> list[str]:
        args = [
            str(dist / "bin" / "tritonserver"),
            f"--model-repository={self.repository.resolve()}",
            f"--backend-directory={workspace / 'backends'}",
            f"--http-address={self.http_host}",
            f"--grpc-address={self.host}",
            f"--metrics-address={self.host}",
            f"--allow-gpu-metrics={str(self.gpu_metrics).lower()}",
            "--exit-on-error=true",
            "--strict-readiness=true",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        return args + [f"{flag}={port}" for flag, port in self.ports.items()]

    def start(self, timeout: float = 180.0) -> TritonServer:
        if len(set(self.ports.values())) != 3:
            raise ServeError(f"the HTTP, gRPC and metrics ports must differ, got {sorted(self.ports.values())}")
        for flag, port in self.ports.items():
            check_port_free(self.http_host if flag == "--http-port" else self.host, port, flag)
        dist = pytriton_dist()
        try:
            # A SIGINT/SIGTERM between creating the workspace or the process and recording them would leak
            # them: hold both signals until the handles are kept, then the handler's exception cleans up.
            with signals_held():
                self._launch(dist)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, dist: Path) -> None:
        workspace = self._prepare_workspace(dist)
        log = None if self.verbose else (workspace / "triton.log").open("wb")
        try:
            self.process = subprocess.Popen(
                self.command(dist, workspace),
                env=_environment(),
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        finally:
            if log:
                log.close()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeError(f"tritonserver exited with status {self.process.returncode}: {self.last_error()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise ServeError(f"tritonserver was not ready after {timeout:.0f} s: {self.last_error()}")

    def last_error(self) -> str:
        """The most telling line of Triton's log (its first error), for one-line messages."""
        path = self.workspace / "triton.log" if self.workspace else None
        if path is None or not path.is_file():
            return "see the log above"
        lines = path.read_text(errors="replace").splitlines()
        errors = [line for line in lines if line.startswith("E") or "error" in line.lower()]
        return (errors or lines or ["no log"])[0][:500]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, poll: float = 0.5) -> int:
        """Block until the server exits (use `stop` from a signal handler or another thread)."""
        while self.alive():
            time.sleep(poll)
        return self.process.returncode if self.process else 0

    def stop(self, timeout: float = STOP_TIMEOUT_S, grace: float = 5.0) -> None:
        """SIGTERM (graceful: in-flight requests finish, stubs exit), SIGKILL to the group if it hangs;
        then remove any shared-memory segment of ours that survived, and the workspace. `grace`: how long
        the python stubs left behind get after SIGTERM (0 after a crash: nothing to finish gracefully)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            _end_group(self.process.pid, grace)
        for segment in SHM_DIR.glob(f"{self.shm_prefix}*") if SHM_DIR.is_dir() else ():
            segment.unlink(missing_ok=True)
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.workspace = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
