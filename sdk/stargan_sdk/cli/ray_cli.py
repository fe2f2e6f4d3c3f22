"""`stargan translate-dataset`: a folder of faces edited by a Ray Data job (local Ray or a cluster).

Usage: stargan translate-dataset faces/ edited/ -b models/toyfaces-64 --set Blond_Hair=1 [--ray ADDRESS] [--json]

Ray (extra `ray`) is imported only when the command runs. Without --ray (or RAY_ADDRESS) it starts a local
instance on this machine's cores, loopback only, no dashboard, and stops it at the end.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from stargan_sdk.errors import StarGANError
from stargan_sdk.host.files import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")  # as `stargan translate FOLDER`


def output_path(dst: Path, src_path: str) -> Path:
    return dst / (Path(src_path).stem + ".png")


def pending_inputs(src: Path, dst: Path, skip_existing: bool) -> list[Path]:
    """The input files still to edit; refuses a destination that is the source (inputs are never overwritten)."""
    if src.resolve() == dst.resolve():
        raise StarGANError(f"{dst} is the input folder: choose another destination (inputs are never overwritten)")
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [p for p in files if not (skip_existing and output_path(dst, str(p)).exists())]


def start_ray(address: str | None) -> Any:
    import ray

    if address or os.environ.get("RAY_ADDRESS"):
        return ray.init(address=address or None)
    # loopback only: no dashboard, nodes bound to 127.0.0.1
    return ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1")


def run_job(files: list[Path], dst: Path, bundle: Path, changes: dict[str, int], *, batch_size: int,
            concurrency: int, num_gpus: float, backend: str, progress: bool) -> dict[str, Any]:
    """Edit `files` into `dst` (atomic writes from the driver); the summary a program reads."""
    import ray

    from stargan_sdk.pipeline.ray_job import edit_dataset
    from stargan_sdk.translator import Translator

    start = time.perf_counter()
    rows = errors = 0
    failed: list[dict[str, str]] = []
    dst.mkdir(parents=True, exist_ok=True)
    if files:
        ds = ray.data.read_binary_files([str(p) for p in files], include_paths=True)
        edited = edit_dataset(ds, str(bundle), changes, batch_size=batch_size, concurrency=concurrency,
                              num_gpus=num_gpus, backend=backend, load=Translator.load)
        with Progress(disable=not progress) as bar:
            task = bar.add_task("editing", total=len(files))
            for row in edited.iter_rows():
                rows += 1
                if row["error"]:
                    errors += 1
                    failed.append({"path": str(row["path"]), "error": str(row["error"])})
                else:
                    data = bytes(row["image"])
                    atomic_write(output_path(dst, row["path"]), lambda f, d=data: f.write(d))
                bar.advance(task)
    seconds = time.perf_counter() - start
    return {"rows": rows, "errors": errors, "seconds": round(seconds, 3),
            "images_per_s": round((rows - errors) / seconds, 2) if seconds > 0 else 0.0, "failed": failed}


def translate_dataset(
    src: Annotated[Path, typer.Argument(help="Folder of face images.")],
    dst: Annotated[Path, typer.Argument(help="Folder for the edited PNGs (created).")],
    bundle: Annotated[Path, typer.Option("--bundle", "-b", help="Bundle folder every Ray node can read.")],
    set_: Annotated[list[str], typer.Option("--set", "-s", help="Attribute to set, NAME=0|1 (repeat).")],
    ray_address: Annotated[str | None, typer.Option("--ray", help="Ray cluster address (default: RAY_ADDRESS, "
                                                       "else a local instance).")] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave outputs already written.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per actor call.")] = 64,
    concurrency: Annotated[int, typer.Option(help="Actors (one per GPU on a GPU cluster).")] = 1,
    num_gpus: Annotated[float, typer.Option(help="GPUs per actor (1 on GPU nodes).")] = 0,
    backend: Annotated[str, typer.Option(help="SDK backend in each actor.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Edit a folder with a Ray Data job: decode and encode as CPU tasks, the Translator in an actor pool."""
    import ray

    from stargan_sdk.cli.stargan import parse_assignments

    changes = parse_assignments(set_, "--set")
    files = pending_inputs(src, dst, skip_existing)
    start_ray(ray_address)
    try:
        summary = run_job(files, dst, bundle, changes, batch_size=batch_size, concurrency=concurrency,
                          num_gpus=num_gpus, backend=backend, progress=not json_out)
    finally:
        ray.shutdown()
    if json_out:
        print(json.dumps(summary))
    else:
        print(f"{summary['rows']} images, {summary['errors']} errors, {summary['images_per_s']} images/s")
        for f in summary["failed"]:
            print(f"  {f['path']}: {f['error']}")
