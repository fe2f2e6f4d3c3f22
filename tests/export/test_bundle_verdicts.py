"""`stargan-export validate` and `triton` give the SDK loader's verdict on hostile bundles: one schema, one verdict,
one-line errors and a non-zero exit (issue 25, bundle item 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stargan_export.cli import main
from stargan_sdk import Translator
from stargan_sdk.errors import StarGANError

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "toyfaces-64"


def _copy(tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    out.mkdir()
    for name in ("manifest.json", "generator.onnx", "generator.fp16.onnx", "classifier.onnx", "generator.safetensors"):
        shutil.copy(SHIPPED / name, out / name)
    return out


def _huge_int(b: Path) -> None:
    text = (b / "manifest.json").read_text()
    (b / "manifest.json").write_text(text.replace('"image_size": 64', '"image_size": ' + "7" * 5000, 1))


def _edit(change):
    def apply(b: Path) -> None:
        m = json.loads((b / "manifest.json").read_text())
        change(m)
        (b / "manifest.json").write_text(json.dumps(m))

    return apply


def _symlink_out(b: Path) -> None:
    outside = b.parent / "outside.onnx"
    shutil.move(b / "generator.onnx", outside)
    (b / "generator.onnx").symlink_to(outside)


HOSTILE = {
    "huge_int": _huge_int,
    "tiny_std": _edit(lambda m: m["normalization"].update(std=[1e-300] * 3)),
    "huge_mean": _edit(lambda m: m["normalization"].update(mean=[1e300] * 3)),
    "float_version": _edit(lambda m: m.update(format_version=1.0)),
    "duplicates": _edit(lambda m: m.update(artifacts=m["artifacts"] * 1000)),
    "symlink_out": _symlink_out,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_validate_and_triton_refuse_what_the_sdk_refuses(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _copy(tmp_path)
    HOSTILE[case](bundle)
    with pytest.raises(StarGANError):
        Translator.load(bundle, backend="onnxruntime")
    for args in (
        ["validate", str(bundle)],
        ["triton", str(bundle), "--out", str(tmp_path / "repo"), "--backend", "onnxruntime", "--kind", "cpu"],
        ["triton", str(bundle), "--out", str(tmp_path / "repo"), "--backend", "python", "--kind", "cpu"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code not in (0, None), args
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, err)
    assert not (tmp_path / "repo" / "stargan" / "1" / "model.onnx").exists()
