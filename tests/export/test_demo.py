"""stargan-demo: the shipped bundle edits fresh toy faces into a grid; a missing bundle is a one-line error."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from stargan_export.demo import app

ROOT = Path(__file__).resolve().parents[2]


def test_demo_writes_the_grid(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--bundle", str(ROOT / "models" / "toyfaces-64"), "--out", str(tmp_path),
                                      "--faces", "2", "--tile", "64", "--no-benchmark"])
    assert result.exit_code == 0, result.output
    grid = Image.open(tmp_path / "grid.png")
    # 2 rows of [input | black | blond | brown | gender | age], 64 px tiles, 2 px gaps, 16 px captions
    assert grid.size == (6 * 66 - 2, 2 * (64 + 16))
    assert "Next steps" in result.output


def test_demo_without_a_bundle_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--bundle", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--no-benchmark"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and len(result.output.strip().splitlines()) == 1
