"""`stargan serve BUNDLE`: a real Triton Inference Server (dynamic batching, HTTP/gRPC, metrics) for a bundle.

Usage: stargan serve models/toyfaces-64 --http-port 8000 --grpc-port 8001 --metrics-port 8002

The bundle is loaded once here (so a bad bundle fails in one line before any server starts), written as a
python-backend repository into a private workspace (the bundle linked, not copied) and served by the
tritonserver binary from the nvidia-pytriton wheel. SIGINT and SIGTERM stop it gracefully: no process,
shared-memory segment or workspace is left; what a SIGKILLed one left is removed on the next start.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from stargan_sdk.cli.options import PrecisionOpt, precision_options
from stargan_sdk.errors import StarGANError
from stargan_sdk.serve.leftovers import clean_leftovers, owned_prefix
from stargan_sdk.serve.stack import ServeStack
from stargan_sdk.serve.triton_config import DEFAULT_QUEUE_DELAY_US
from stargan_sdk.serve.triton_repo import write_python_repository
from stargan_sdk.serve.triton_server import check_port_free, signals_held
from stargan_sdk.translator import Translator

SDK_PATH = Path(__file__).resolve().parents[2]  # sdk/: the served models run this SDK, the one serving them


class _Stop(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM so every `finally` and context manager runs."""


def _on_signal(signum: int, _frame: Any) -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)  # a second signal must not interrupt the clean-up
    raise _Stop(signum)


def _instance_kind(kind: str) -> str:
    """`auto`: gpu where the backends' `auto` would try the GPU engines (the same test), else cpu."""
    if kind != "auto":
        return kind
    from stargan_sdk.host.hardware import nvidia_gpu_present

    return "gpu" if nvidia_gpu_present() else "cpu"


def _check_options(max_batch: int, queue_delay: int, instances: int, ports: dict[str, int], kind: str) -> None:
    if max_batch < 1 or instances < 1 or queue_delay < 0:
        raise StarGANError(
            f"--max-batch and --instances must be >= 1 and --max-queue-delay-us >= 0, "
            f"got {max_batch}, {instances} and {queue_delay}"
        )
    if kind not in ("auto", "cpu", "gpu"):
        raise StarGANError(f"--kind must be auto, cpu or gpu, got {kind!r}")
    for flag, port in ports.items():
        if not 1 <= port <= 65535:
            raise StarGANError(f"{flag} must be a port number 1..65535, got {port}")
    if len(set(ports.values())) != len(ports):
        raise StarGANError(f"--http-port, --grpc-port and --metrics-port must differ, got {list(ports.values())}")


def serve(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder to serve.")],
    backend: Annotated[
        str,
        typer.Option(
            help="SDK backend in each model instance: auto | tensorrt | inductor | openvino | onnxruntime | torch."
        ),
    ] = "auto",
    precision: PrecisionOpt = "auto",
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="HTTP/REST port (KServe v2 protocol).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port (/metrics).")] = 8002,
    max_batch: Annotated[int, typer.Option(help="Largest batch the dynamic batcher forms.")] = 16,
    max_queue_delay_us: Annotated[
        int, typer.Option(help="How long the batcher may hold a request to fill a batch (microseconds).")
    ] = DEFAULT_QUEUE_DELAY_US,
    instances: Annotated[int, typer.Option(help="Model instances (per GPU with --kind gpu).")] = 1,
    threads: Annotated[
        int, typer.Option(help="CPU threads per instance (0: the cores divided among the instances, on the CPU).")
    ] = 0,
    kind: Annotated[
        str, typer.Option(help="Instance kind: auto (gpu when a CUDA GPU is visible) | cpu | gpu.")
    ] = "auto",
    workdir: Annotated[Path | None, typer.Option(help="Folder for the private workspace (default: temp).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Triton's own log.")] = False,
    max_body_mb: Annotated[
        int, typer.Option(help="Largest HTTP request body accepted (MiB); larger ones get 413.")
    ] = 128,
) -> None:
    """Serve a bundle with Triton: models <name> (image+label arrays), <name>_classifier and <name>_edit
    (encoded image + JSON changes). HTTP requests are checked before they reach Triton, which is restarted if
    it dies. Stop with Ctrl-C or SIGTERM: requests in flight are answered, then it exits (within 30 s)."""
    ports = {"--http-port": http_port, "--grpc-port": grpc_port, "--metrics-port": metrics_port}
    _check_options(max_batch, max_queue_delay_us, instances, ports, kind)
    if threads < 0:
        raise StarGANError(f"--threads must be >= 0 (0: automatic), got {threads}")
    if not 1 <= max_body_mb <= 4096:
        raise StarGANError(f"--max-body-mb must be 1..4096, got {max_body_mb}")
    for flag, port in ports.items():
        check_port_free(host, port, flag)
    removed = clean_leftovers(workdir or tempfile.gettempdir())  # of a serve that was SIGKILLed
    if removed:
        typer.echo(removed.describe(), err=True)
    options = precision_options(precision)
    with Translator.load(bundle, backend=backend, **options) as t:  # a bad bundle or precision fails here, in one line
        ran = t.describe().get("precision")
        summary = f"{bundle} ({t.backend_name}{f' {ran}' if ran else ''}, {t.image_size} px: {', '.join(t.attributes)})"
    handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    kind = _instance_kind(kind)
    try:
        _run(
            bundle,
            summary,
            backend,
            host,
            ports,
            max_batch,
            max_queue_delay_us,
            instances,
            kind,
            _threads(threads, instances, kind),
            workdir,
            verbose,
            max_body_mb,
            options,
        )
    except _Stop:
        typer.echo("stopped", err=True)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def _threads(threads: int, instances: int, kind: str) -> int | None:
    """Instances on the CPU share its cores rather than each taking all of them (which oversubscribes)."""
    if threads or kind != "cpu":
        return threads or None
    from stargan_sdk.host.hardware import physical_cores

    return max(1, physical_cores() // instances)


def _run(
    bundle: Path,
    summary: str,
    backend: str,
    host: str,
    ports: dict[str, int],
    max_batch: int,
    queue_delay: int,
    instances: int,
    kind: str,
    threads: int | None,
    workdir: Path | None,
    verbose: bool,
    max_body_mb: int,
    options: dict[str, str],
) -> None:
    with signals_held():  # created and recorded in one piece: a Ctrl-C now cannot leak the folder
        repo_dir = tempfile.TemporaryDirectory(prefix=owned_prefix("stargan-repo-"), dir=workdir)
    with repo_dir as repo:
        write_python_repository(
            bundle,
            repo,
            backend=backend,
            max_batch=max_batch,
            instances=instances,
            kind=kind,
            queue_delay_us=queue_delay,
            threads=threads,
            link_bundle=True,
            sdk_path=SDK_PATH,
            precision=options.get("precision"),
        )
        stack = ServeStack(
            repo,
            host=host,
            http_port=ports["--http-port"],
            grpc_port=ports["--grpc-port"],
            metrics_port=ports["--metrics-port"],
            max_body=max_body_mb << 20,
            workdir=workdir,
            verbose=verbose,
            gpu_metrics=kind == "gpu",
        )
        typer.echo(f"starting tritonserver: loading and warming up {instances} instance(s) per model ...", err=True)
        with stack:  # leaving it (SIGINT/SIGTERM) drains HTTP, then stops tritonserver, within STOP_BOUND_S
            per_instance = f" x {threads} threads" if threads else ""
            typer.echo(
                f"serving {summary}\n"
                f"  HTTP     {stack.http_url}  (models: {', '.join(stack.models())})\n"
                f"  gRPC     {stack.grpc_url}\n"
                f"  metrics  {stack.metrics_url}\n"
                f"  batching up to {max_batch}, {instances} {kind} instance(s){per_instance}; Ctrl-C to stop",
                err=True,
            )
            stack.run()
