"""What `stargan serve` runs: tritonserver with its HTTP on a private loopback port, the checking HTTP front on the
public port, and a supervisor that restarts tritonserver when it dies.

Usage: with ServeStack(repo, http_port=8000, grpc_port=8001, metrics_port=8002) as stack: stack.run()

No single request may take the service down: the front refuses what crashes the binary (`serve.guard`), and if
the binary dies anyway (a request over gRPC or straight to the private port, a bug) it is restarted within
seconds, counted in `restarts` and logged; HTTP clients meanwhile get 503 from the front, not a dead port.
More than MAX_RESTARTS deaths within RESTART_WINDOW_S stop the service (a crash at start-up is not load).

Graceful stop (`stop`, on SIGTERM): the public HTTP port stops accepting, the requests in flight are answered
(at most DRAIN_S), then tritonserver gets SIGTERM (it waits at most EXIT_TIMEOUT_S for gRPC requests in flight,
and is killed STOP_TIMEOUT_S after SIGTERM): the whole stop takes at most STOP_BOUND_S.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stargan_sdk.serve.front import IDLE_GRACE, HttpFront
from stargan_sdk.serve.guard import Guard, ModelLimits
from stargan_sdk.serve.triton_server import STOP_TIMEOUT_S, ServeError, TritonServer, check_port_free

DRAIN_S = 10.0
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0
STOP_BOUND_S = DRAIN_S + STOP_TIMEOUT_S + 5  # + the process group's grace after tritonserver exits


def _private_port(public: set[int]) -> int:
    """A free loopback port for tritonserver's own HTTP, never one of the public ports (not bound yet here)."""
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in public:
            return port
    raise ServeError(f"no free loopback port outside {sorted(public)} for tritonserver's private HTTP")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ServeStack:
    """tritonserver + HTTP front + supervisor on one model repository (see the module docstring).

    Args:
        repository: the model repository folder (one sub-folder with config.pbtxt per model).
        host: public address of HTTP, gRPC and metrics; http_port, grpc_port, metrics_port: public ports.
        max_body: largest HTTP request body accepted, in bytes.
        log: where restart messages go (default: stderr).
        Other keyword arguments go to `TritonServer` (workdir, verbose, gpu_metrics).
    """

    def __init__(
        self,
        repository: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        max_body: int = 128 << 20,
        log: Callable[[str], None] = _log,
        **server_options: object,
    ) -> None:
        if len({http_port, grpc_port, metrics_port}) != 3:
            raise ServeError(
                f"the HTTP, gRPC and metrics ports must differ, got {[http_port, grpc_port, metrics_port]}"
            )
        self.repository = Path(repository)
        self.server = TritonServer(
            repository,
            host=host,
            http_host="127.0.0.1",
            http_port=_private_port({http_port, grpc_port, metrics_port}),
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            **server_options,
        )
        self.front = HttpFront(host, http_port, ("127.0.0.1", self.server.ports["--http-port"]), max_body=max_body)
        self.host, self.http_port, self.log = host, http_port, log
        self.restarts: list[float] = []  # monotonic times of the restarts

    @property
    def http_url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return self.server.grpc_url

    @property
    def metrics_url(self) -> str:
        return self.server.metrics_url

    def models(self) -> list[str]:
        return sorted(p.name for p in self.repository.iterdir() if (p / "config.pbtxt").is_file())

    def start(self, timeout: float = 180.0) -> ServeStack:
        for flag, port in (
            ("--grpc-port", self.server.ports["--grpc-port"]),
            ("--metrics-port", self.server.ports["--metrics-port"]),
        ):
            check_port_free(self.host, port, flag)  # before the front takes the HTTP port
        try:
            self.front.start()
            self.server.start(timeout)
            self.front.guard = Guard(self._limits())
        except BaseException:
            self.stop(drain=0)
            raise
        return self

    def _limits(self) -> dict[str, ModelLimits]:
        limits = {}
        for name in self.models():
            with urllib.request.urlopen(f"{self.server.http_url}/v2/models/{name}/config", timeout=10) as r:
                limits[name] = ModelLimits.from_config(json.loads(r.read()))
        return limits

    def run(self, timeout: float = 180.0) -> None:
        """Supervise until stopped from outside (a signal's exception, `stop` from another thread); raises
        ServeError when tritonserver dies more than MAX_RESTARTS times within RESTART_WINDOW_S."""
        while True:
            status = self.server.wait()
            now = time.monotonic()
            recent = [t for t in self.restarts if now - t < RESTART_WINDOW_S]
            cause = f"killed by {signal.Signals(-status).name}" if status < 0 else self.server.last_error()
            reason = f"tritonserver stopped unexpectedly (status {status}): {cause}"
            if len(recent) >= MAX_RESTARTS:
                raise ServeError(f"{reason}; it died {len(recent) + 1} times in {RESTART_WINDOW_S:.0f} s, giving up")
            self.restarts.append(now)
            self.log(f"{reason}; restarting (restart {len(self.restarts)})")
            self.server.stop(grace=0)  # what is left of the dead one: its stubs, shared memory, workspace
            self.server.start(timeout)
            self.log(f"tritonserver restarted in {time.monotonic() - now:.1f} s (restart {len(self.restarts)})")

    def stop(self, drain: float = DRAIN_S) -> int:
        """Graceful stop within STOP_BOUND_S; returns the HTTP requests cut (still unanswered after `drain`)."""
        cut = self.front.drain(max(drain, IDLE_GRACE)) if drain else 0
        self.server.stop()
        self.front.stop()
        counts = self.front.counts
        if counts:
            self.log(
                f"HTTP: {counts['forwarded']} forwarded, {counts['refused']} refused, {counts['unavailable']} "
                f"unavailable, {cut} cut at the drain's end; {len(self.restarts)} tritonserver restart(s)"
            )
        return cut

    def __enter__(self) -> ServeStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
