"""`stargan translate-dataset`: a folder (or object-store prefix) of images edited by a Ray Data job.

Usage: stargan translate-dataset faces/ edited/ -b models/toyfaces-64 --set Blond_Hair=1 [--ray ADDRESS] [--json]

Ray (extra `ray`) is imported only when the command runs. Without --ray (or RAY_ADDRESS) it starts a local
instance on this machine's cores, loopback only, no dashboard, and stops it at the end. SRC and DST are local
folders or URIs that Arrow's file systems open (`s3://`, `gs://`, `file://`): the same ones Ray's readers take.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn

from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.cli.assignments import UsageError, parse_assignments
from stargan_sdk.errors import StarGANError
from stargan_sdk.host.files import atomic_write_bytes
from stargan_sdk.images.imaging import IMAGE_SUFFIXES
from stargan_sdk.images.labels import AttributeSpace
from stargan_sdk.pipeline.plans import MODES


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise StarGANError("translate-dataset needs Ray Data: pip install 'stargan[ray]'") from None
    return ray


@dataclass(frozen=True)
class Location:
    """A folder on a file system Arrow can open: the local one, or an object store named by a URI."""

    fs: Any  # pyarrow.fs.FileSystem
    path: str
    uri: bool

    @classmethod
    def parse(cls, text: str) -> Location:
        from pyarrow import fs

        if "://" in text:
            try:
                filesystem, path = fs.FileSystem.from_uri(text)
            except Exception as e:  # noqa: BLE001 - Arrow raises ArrowInvalid/OSError for unknown or bad URIs
                raise StarGANError(f"cannot open {text!r}: {e}") from None
            return cls(filesystem, path.rstrip("/"), True)
        return cls(fs.LocalFileSystem(), str(Path(text).resolve()), False)

    def child(self, name: str) -> str:
        return f"{self.path}/{name}"

    def same_as(self, other: Location) -> bool:
        return self.fs.type_name == other.fs.type_name and self.path == other.path

    def exists(self, path: str) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(path).type != fs.FileType.NotFound

    def write(self, name: str, data: bytes) -> None:
        """Whole or absent: a temp file renamed into place locally; one PUT (atomic by nature) on object stores."""
        if self.uri and self.fs.type_name != "local":
            with self.fs.open_output_stream(self.child(name)) as out:
                out.write(data)
        else:
            atomic_write_bytes(Path(self.child(name)), data)


def pending_inputs(src: Location, dst: Location, skip_existing: bool) -> tuple[list[str], int]:
    """The image files still to edit, and how many were skipped; inputs are never overwritten."""
    from pyarrow import fs

    if src.same_as(dst):
        raise UsageError("DST is the input folder: choose another destination (inputs are never overwritten)")
    info = src.fs.get_file_info(src.path)
    if info.type != fs.FileType.Directory:
        raise StarGANError(f"{src.path} is not a folder of images")
    files = sorted(
        f.path
        for f in src.fs.get_file_info(fs.FileSelector(src.path))
        if f.type == fs.FileType.File and Path(f.base_name).suffix.lower() in IMAGE_SUFFIXES
    )
    if not skip_existing:
        return files, 0
    todo = [f for f in files if not dst.exists(dst.child(Path(f).name))]
    return todo, len(files) - len(todo)


def start_ray(address: str | None) -> int:
    """Connect to the cluster, or start a loopback-only local instance; the CPUs Ray schedules on."""
    ray = _ray()
    logging.getLogger("ray").setLevel(logging.WARNING)  # Ray Data's INFO lines would drown the CLI's own output
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, log_to_driver=False)
    else:  # at least 2 logical CPUs so one actor and the decode/encode tasks can always run side by side
        ray.init(
            num_cpus=max(2, os.cpu_count() or 1),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
    return int(ray.cluster_resources().get("CPU", 1))


def run_job(
    files: list[str],
    src: Location,
    dst: Location,
    bundle: Path,
    changes: dict[str, int],
    *,
    mode: str = "auto",
    original: dict[str, int] | None = None,
    batch_size: int = 64,
    concurrency: int = 1,
    num_gpus: float = 0,
    actor_cpus: float = 1,
    backend: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Edit `files` into `dst` (each write whole or absent, from the driver); the summary a program reads."""
    ray = _ray()
    from stargan_sdk.pipeline.ray_job import edit_dataset
    from stargan_sdk.translator import Translator

    start = time.perf_counter()
    written, failed = 0, []
    if files:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts images, not blocks
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # set by Ray Data on import: after it
        ds = ray.data.read_binary_files(files, filesystem=src.fs, include_paths=True)
        edited = edit_dataset(
            ds,
            str(bundle),
            changes,
            load=Translator.load,
            mode=mode,
            original=original,
            batch_size=batch_size,
            concurrency=concurrency,
            num_gpus=num_gpus,
            actor_cpus=actor_cpus,
            backend=backend,
        )
        columns = (*Progress.get_default_columns(), TextColumn("{task.fields[rate]} images/s"))
        with Progress(*columns, console=Console(stderr=True), transient=True, disable=not progress) as bar:
            task = bar.add_task("editing", total=len(files), rate="-")
            for row in edited.iter_rows():
                if row["error"]:
                    failed.append({"path": str(row["path"]), "error": str(row["error"])})
                else:
                    dst.write(str(row["name"]), bytes(row["data"]))
                    written += 1
                rate = written / max(time.perf_counter() - start, 1e-9)
                bar.update(task, advance=1, rate=f"{rate:.1f}")
    seconds = time.perf_counter() - start
    return {
        "rows": written + len(failed),
        "written": written,
        "errors": len(failed),
        "seconds": round(seconds, 3),
        "images_per_s": round(written / seconds, 2) if seconds > 0 else 0.0,
        "failed": failed,
    }


def translate_dataset(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Folder of images, or a URI (s3://, gs://, file://).")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="Folder or URI for the edits (same file names).")],
    bundle: Annotated[Path, typer.Option("--bundle", "-b", help="Bundle folder every Ray node can read.")],
    set_: Annotated[list[str], typer.Option("--set", "-s", help="Attribute to set, NAME=0|1 (repeat).")],
    original: Annotated[
        list[str] | None,
        typer.Option(
            "--original", help="What every input shows, NAME=0|1 (repeat); default: the classifier estimates it."
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="auto (as stargan translate: an aligned face whole, else its faces) | "
            "whole | crop (centre square) | photo (find faces)."
        ),
    ] = "auto",
    ray_address: Annotated[
        str | None, typer.Option("--ray", help="Ray cluster address (default: RAY_ADDRESS, else a local instance).")
    ] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave outputs already written.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per task and actor call.")] = 64,
    concurrency: Annotated[int, typer.Option(min=1, help="Actors (one per GPU on a GPU cluster).")] = 1,
    num_gpus: Annotated[float, typer.Option(min=0, help="GPUs per actor (1 on GPU nodes).")] = 0,
    actor_cpus: Annotated[
        float | None,
        typer.Option(min=0.01, help="CPUs Ray reserves per actor (default: 1, less where the local cores are few)."),
    ] = None,
    backend: Annotated[str, typer.Option(help="SDK backend in each actor.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Edit a folder with a Ray Data job: decode and encode as CPU tasks, the Translator in an actor pool."""
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    changes, orig = parse_assignments(set_, "--set"), parse_assignments(original, "--original") or None
    AttributeSpace.from_manifest(read_manifest(bundle)).validate_changes(changes)  # before Ray starts
    source, target = Location.parse(src), Location.parse(dst)
    files, skipped = pending_inputs(source, target, skip_existing)
    if not target.uri:
        Path(target.path).mkdir(parents=True, exist_ok=True)
    ray = _ray()
    cpus = start_ray(ray_address)
    try:
        if actor_cpus is None:  # the tasks need at least one CPU beside the actors, or the job waits forever
            actor_cpus = min(1.0, max(cpus - 1, 0.5) / concurrency)
        summary = run_job(
            files,
            source,
            target,
            bundle,
            changes,
            mode=mode,
            original=orig,
            batch_size=batch_size,
            concurrency=concurrency,
            num_gpus=num_gpus,
            actor_cpus=actor_cpus,
            backend=backend,
            progress=not as_json,
        )
    finally:
        ray.shutdown()
    summary["skipped"] = skipped
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"{summary['written']} written, {skipped} skipped, {summary['errors']} errors, "
            f"{summary['images_per_s']} images/s"
        )
    for f in summary["failed"]:
        typer.echo(f"error: {f['path']}: {f['error']}", err=True)
    if summary["failed"]:
        raise typer.Exit(2)
