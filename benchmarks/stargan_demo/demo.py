"""The README demo: the shipped toyfaces bundle edits fresh toy faces beside the true edits; grid, benchmark.

Usage: stargan-demo --bundle models/toyfaces-64 --out demo-out   (from the repository's root, as `make demo`)

It lives beside the benchmarks, above every package: it renders toy faces with `stargan_train`, edits them
with `stargan_sdk`, and runs `benchmarks/latency.py`; none of the three packages may import the others' demo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from PIL import Image

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])

NEXT_STEPS = """\
Next steps
  Train on CelebA      stargan-train train --dataset celeba --data-dir data/celeba --run-dir runs/celeba
  Official checkpoint  stargan-export build 200000-G.ckpt --out bundles/official --image-size 128 \\
                           --attrs Black_Hair,Blond_Hair,Brown_Hair,Male,Young --classifier
  TensorRT engine      stargan-export build CHECKPOINT --out BUNDLE --engine   (NVIDIA GPU + tensorrt)
  Triton repository    stargan-export triton BUNDLE --out model_repository --backend onnxruntime
  Your own photos      stargan translate photo.jpg --bundle BUNDLE --set Blond_Hair=1 -o out.jpg"""


@dataclass(frozen=True)
class ToyFace:
    """A fresh toy face (CelebA-cropped), its true labels, and the generator state that drew it."""

    image: np.ndarray
    labels: dict[str, int]
    rng_state: dict[str, Any]

    def counterfactual(self, labels: dict[str, int]) -> np.ndarray:
        """The same person drawn with `labels` instead: what a perfect edit would return."""
        from stargan_sdk.images.imaging import center_crop
        from stargan_train.data.toyfaces import render_face, sample_params

        rng = np.random.default_rng()
        rng.bit_generator.state = self.rng_state
        return center_crop(render_face(sample_params(rng, labels))[0])


def toy_faces(count: int, seed: int) -> list[ToyFace]:
    """Fresh toy faces (never seen in training: a seed outside the training set's)."""
    from stargan_sdk.images.imaging import center_crop
    from stargan_train.data.toyfaces import render_face, sample_params

    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(count):
        state = rng.bit_generator.state  # a copy: replaying it draws the same person again
        params = sample_params(rng)
        faces.append(ToyFace(center_crop(render_face(params)[0]), dict(params.labels), state))
    return faces


def edit_grid(bundle: Path, faces: list[ToyFace], tile: int) -> tuple[Image.Image, str]:
    """Per face two figure rows, stacked: [input | Black | Blond | Brown | gender | age] as the model edits it,
    then the true counterfactual of each edit (the same toy face drawn with the target labels, at the model's
    resolution)."""
    from stargan_sdk import Translator
    from stargan_sdk.images.figure import figure_row
    from stargan_sdk.images.imaging import to_model_rgb

    rows = []
    with Translator.load(bundle) as t:
        for face in faces:
            # The true labels, not the bundle classifier's guess: the edits then aim at exactly the truth's labels.
            outputs = t.translate_all(face.image, original=face.labels)
            rows.append(figure_row(face.image, outputs, tile=tile))
            truths = {}
            for name, target in t.space.single_attribute_targets(t.space.original_vector(face.labels)):
                truth = face.counterfactual(dict(zip(t.attributes, (int(v) for v in target))))
                # At the model's resolution, as the model sees its input: the sharpest output it could give.
                truths[f"true {name}"] = to_model_rgb(truth, t.image_size)[0]
            blank = np.full_like(face.image, 255)
            rows.append(figure_row(blank, truths, tile=tile, first_caption="ground truth:"))
        backend = t.backend_name
    grid = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        grid.paste(row, (0, y))
        y += row.height
    return grid, backend


def run_benchmark(bundle: Path, out: Path) -> int:
    """The CPU latency table for the shipped bundle: benchmarks/latency.py of the checkout the demo runs in
    (found from the working directory, like the default bundle; never from where this module is installed)."""
    script = Path("benchmarks") / "latency.py"
    if not script.is_file():
        typer.echo("benchmark skipped: no benchmarks/latency.py here (run the demo from the repository's root)")
        return 0
    cmd = [
        sys.executable,
        str(script),
        str(bundle),
        "--backends",
        "auto,onnxruntime",
        "--batch-sizes",
        "1,8",
        "--iterations",
        "20",
        "--budget-s",
        "20",
        "--json",
        str(out / "benchmark.json"),
    ]
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
    from stargan_sdk.images.imaging import save_image

    t0 = time.perf_counter()
    try:
        grid, backend = edit_grid(bundle, toy_faces(faces, seed), tile)
        out.mkdir(parents=True, exist_ok=True)
        path = save_image(grid, out / "grid.png")
    except (StarGANError, OSError) as e:
        if os.environ.get("STARGAN_DEBUG") == "1":
            raise
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"edited {faces} fresh toy faces with {bundle} on {backend} in {time.perf_counter() - t0:.1f}s")
    typer.echo(
        f"wrote {path}  (columns: input | black | blond | brown hair | gender | age; under each face its true edits)"
    )
    if benchmark and run_benchmark(bundle, out) != 0:
        raise typer.Exit(1)
    typer.echo(NEXT_STEPS)


def cli() -> None:
    app()


if __name__ == "__main__":
    cli()
