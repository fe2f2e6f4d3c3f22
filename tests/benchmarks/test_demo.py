"""stargan-demo: the shipped bundle edits fresh toy faces into a grid; a missing bundle is a one-line error."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))  # stargan_demo, also where no editable install maps it

from stargan_demo.demo import app, run_benchmark, toy_faces  # noqa: E402


def test_demo_writes_the_grid(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "--bundle",
            str(ROOT / "models" / "toyfaces-64"),
            "--out",
            str(tmp_path),
            "--faces",
            "2",
            "--tile",
            "64",
            "--no-benchmark",
        ],
    )
    assert result.exit_code == 0, result.output
    grid = Image.open(tmp_path / "grid.png")
    # per face 2 rows of [input | black | blond | brown | gender | age] (the model's, the truth's), 64 px tiles,
    # 2 px gaps, 16 px captions
    assert grid.size == (6 * 66 - 2, 2 * 2 * (64 + 16))
    assert "Next steps" in result.output
    pixels = np.asarray(grid)
    input_tile, truth_row = pixels[16:80, :64], pixels[80 + 16 : 160]
    assert (truth_row[:, :64] == 255).all()  # the truth row starts with a blank tile, not a second input
    face = toy_faces(1, 20261126)[0]  # the grid's first face
    own = [h for h in ("Black_Hair", "Blond_Hair", "Brown_Hair") if face.labels[h]][0]
    x = (1 + ("Black_Hair", "Blond_Hair", "Brown_Hair").index(own)) * 66
    # "set the hair it already has": the truth is the input itself, at the model's 64 px
    at_64 = np.asarray(Image.fromarray(face.image).resize((64, 64), Image.Resampling.BILINEAR))
    assert np.array_equal(truth_row[:, x : x + 64], at_64)
    assert not np.array_equal(truth_row[:, 5 * 66 : 5 * 66 + 64], input_tile)  # the age flip changes the face


def test_counterfactual_is_the_same_person_with_the_target_labels() -> None:
    face = toy_faces(2, 5)[1]
    assert np.array_equal(face.counterfactual(face.labels), face.image)
    flipped = face.counterfactual({**face.labels, "Young": 1 - face.labels["Young"]})
    changed = np.any(flipped != face.image, axis=-1)
    assert 0.0 < changed.mean() < 0.5  # grey strands / face lines change; background and pose stay


def test_demo_without_a_bundle_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--bundle", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--no-benchmark"]
    )
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and len(result.output.strip().splitlines()) == 1


def test_benchmark_is_looked_up_in_the_working_directory_not_the_installation(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """An installed module never reaches into the repository checkout by its own path: outside a checkout
    the benchmark is skipped with its reason, whatever folder the demo module was installed from."""
    monkeypatch.chdir(tmp_path)
    assert run_benchmark(ROOT / "models" / "toyfaces-64", tmp_path) == 0
    assert "benchmark skipped: no benchmarks/latency.py here" in capsys.readouterr().out
    assert not (tmp_path / "benchmark.json").exists()
