"""The README demo: the shipped toyfaces bundle edits freshly generated faces; grid, benchmark, next steps.

Usage: stargan-demo --bundle models/toyfaces-64 --out demo-out
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from PIL import Image

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])

NEXT_STEPS = """\
Next steps
  Train on CelebA      stargan-train train --dataset celeba --data-dir data/celeba --run-dir runs/celeba
  Official checkpoint  stargan-export build 200000-G.ckpt --out bundles/official --image-size 128 \\
                           --attrs Black_Hair,Blond_Hair,Brown_Hair,Male,Young --fp16 --classifier
  TensorRT engine      stargan-export build CHECKPOINT --out BUNDLE --fp16 --engine   (NVIDIA GPU + tensorrt)
  Triton repository    stargan-export triton BUNDLE --out model_repository --backend onnxruntime
  Your own photos      stargan translate photo.jpg --bundle BUNDLE --set Blond_Hair=1 -o out.jpg"""


def toy_faces(count: int, seed: int) -> list[np.ndarray]:
    """Fresh toy faces (never seen in training: a seed outside the training set's), CelebA-cropped."""
    from stargan_sdk.imaging import center_crop
    from stargan_train.data.toyfaces import render_face, sample_params

    rng = np.random.default_rng(seed)
    return [center_crop(render_face(sample_params(rng))[0]) for _ in range(count)]


def edit_grid(bundle: Path, faces: list[np.ndarray], tile: int) -> tuple[Image.Image, str]:
    """One figure row per face: [input | Black | Blond | Brown | gender | age], stacked."""
    from stargan_sdk import Translator
    from stargan_sdk.figure import figure_row

    with Translator.load(bundle) as t:
        rows = [figure_row(face, t.translate_all(face), tile=tile) for face in faces]
        backend = t.backend_name
    grid = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        grid.paste(row, (0, y))
        y += row.height
    return grid, backend


def run_benchmark(bundle: Path, out: Path) -> int:
    """The CPU latency table for the shipped bundle (benchmarks/latency.py of this checkout)."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "latency.py"
    if not script.is_file():
        typer.echo("benchmark skipped: benchmarks/latency.py is not in this installation (run from the repo)")
        return 0
    cmd = [sys.executable, str(script), str(bundle), "--backends", "auto,onnxruntime", "--batch-sizes", "1,8",
           "--iterations", "20", "--budget-s", "20", "--json", str(out / "benchmark.json")]
    return subprocess.run(cmd, check=False).returncode


@app.command()
def main(
    bundle: Annotated[Path, typer.Option(help="Bundle to load.")] = Path("models/toyfaces-64"),
    out: Annotated[Path, typer.Option(help="Folder for grid.png and benchmark.json.")] = Path("demo-out"),
    faces: Annotated[int, typer.Option(min=1, max=16, help="How many fresh toy faces to edit.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the fresh faces.")] = 20261126,
    tile: Annotated[int, typer.Option(min=32, max=512, help="Tile size in the grid (px).")] = 96,
    benchmark: Annotated[bool, typer.Option(help="Also print the CPU benchmark table.")] = True,
) -> None:
    from stargan_sdk.errors import StarGANError
    from stargan_sdk.imaging import save_image

    t0 = time.perf_counter()
    try:
        grid, backend = edit_grid(bundle, toy_faces(faces, seed), tile)
        out.mkdir(parents=True, exist_ok=True)
        path = save_image(grid, out / "grid.png")
    except (StarGANError, OSError) as e:
        if os.environ.get("STARGAN_DEBUG"):
            raise
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    typer.echo(f"edited {faces} fresh toy faces with {bundle} on {backend} in {time.perf_counter() - t0:.1f}s")
    typer.echo(f"wrote {path}  (columns: input | black | blond | brown hair | gender | age)")
    if benchmark and run_benchmark(bundle, out) != 0:
        raise typer.Exit(1)
    typer.echo(NEXT_STEPS)


def cli() -> None:
    app()


if __name__ == "__main__":
    cli()
