"""stargan-export CLI: build/validate/triton through `main`, one-line errors with exit 2, --json output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stargan_export.cli import join_attr_values, main
from stargan_export.tensorrt_build import engine_unavailable_reason

ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ([], "without attribute names"),
        (["--attrs", "Black_Hair", "Male"], "2 attribute names given but the generator takes c_dim 5"),
        (["--attrs", *ATTRS, "--opset", "11"], "unsupported opset 11: choose one in 15..21"),
        (["--attrs", *ATTRS, "--max-batch", "0"], "1 <= min <= opt <= max"),
        (
            ["--attrs", *ATTRS, "--image-size", "100000"],
            "image size 100000 must be a multiple of 4 (two stride-2 convolutions) from 4 to 2048",
        ),
        (["--attrs", *ATTRS[:4], "Young\x1b[2J"], "attribute name 'Young\\x1b[2J': 'Young\\x1b[2J' must be printable"),
    ],
)
def test_build_bad_inputs(official_checkpoint, tmp_path, capsys, extra, fragment):
    code, _, err = _run(["build", str(official_checkpoint), "--out", str(tmp_path / "b"), *extra], capsys)
    _assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "b").exists()


def test_build_missing_corrupt_and_file_out(tmp_path, official_checkpoint, capsys):
    code, _, err = _run(
        ["build", str(tmp_path / "missing-G.ckpt"), "--out", str(tmp_path / "b"), "--attrs", "A"], capsys
    )
    _assert_one_line_error(code, err, "checkpoint not found")
    corrupt = tmp_path / "5-G.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 not a real zip")
    code, _, err = _run(["build", str(corrupt), "--out", str(tmp_path / "b"), "--attrs", *ATTRS], capsys)
    _assert_one_line_error(code, err, "corrupt or truncated")
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = _run(["build", str(official_checkpoint), "--out", str(afile), "--attrs", *ATTRS], capsys)
    _assert_one_line_error(code, err, "is a file")


@pytest.mark.skipif(engine_unavailable_reason() is None, reason="TensorRT and a GPU are present here")
def test_forced_engine_without_tensorrt_fails(official_checkpoint, tmp_path, capsys):
    code, _, err = _run(
        ["build", str(official_checkpoint), "--out", str(tmp_path / "b"), "--attrs", *ATTRS, "--engine"], capsys
    )
    _assert_one_line_error(code, err, "pip install stargan[tensorrt]")


def test_debug_env_shows_the_traceback(tmp_path, monkeypatch):
    from stargan_export.errors import ExportError

    monkeypatch.setenv("STARGAN_DEBUG", "1")
    with pytest.raises(ExportError, match="checkpoint not found"):
        main(["build", str(tmp_path / "x-G.ckpt"), "--out", str(tmp_path / "b"), "--attrs", "A"])


def test_rebuild_into_existing_bundle_with_json(official_checkpoint, bundle_copy, capsys):
    code, out, err = _run(
        [
            "build",
            str(official_checkpoint),
            "--out",
            str(bundle_copy),
            "--attrs",
            ",".join(ATTRS),
            "--image-size",
            "32",
            "--no-fp16",
            "--no-torch-weights",
            "--opt-batch",
            "2",
            "--max-batch",
            "4",
            "--no-engine",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    summary = json.loads(out)
    assert [a["file"] for a in summary["artifacts"]] == ["generator.onnx"]
    assert summary["artifacts"][0]["parity"]["max_batch_checked"] == 4
    assert summary["artifacts"][0]["bytes"] == (bundle_copy / "generator.onnx").stat().st_size
    assert summary["notes"] == [] and err == ""  # --no-engine: not even the "no engine" note
    # Files of the previous build that the new manifest does not list are gone.
    assert sorted(p.name for p in bundle_copy.iterdir()) == ["generator.onnx", "manifest.json"]
    code, out, _ = _run(["validate", str(bundle_copy), "--json"], capsys)
    assert code == 0 and json.loads(out)["ok"] is True


def test_validate_reports_tampering_with_exit_1(bundle_copy, capsys):
    (bundle_copy / "classifier.onnx").write_bytes(b"not onnx")
    code, out, err = _run(["validate", str(bundle_copy), "--json"], capsys)
    assert code == 1 and json.loads(out)["ok"] is False
    assert err.strip().startswith("error: classifier.onnx is corrupted") and len(err.strip().splitlines()) == 1
    code, _, err = _run(["validate", str(bundle_copy / "nope")], capsys)
    _assert_one_line_error(code, err, "bundle folder not found")


def test_triton_command(tiny_bundle, tmp_path, capsys):
    code, out, _ = _run(
        [
            "triton",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "repo"),
            "--backend",
            "onnxruntime",
            "--instances",
            "2",
            "--json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["model_dir"] == str(tmp_path / "repo" / "stargan")
    assert (tmp_path / "repo" / "stargan" / "1" / "model.onnx").is_file()
    code, _, err = _run(["triton", str(tiny_bundle), "--out", str(tmp_path / "repo2")], capsys)
    _assert_one_line_error(code, err, "the bundle has no TensorRT engine")


def test_attrs_accept_space_separated_values():
    assert join_attr_values(["build", "x", "--attrs", "A", "B", "--out", "o"]) == [
        "build",
        "x",
        "--attrs",
        "A,B",
        "--out",
        "o",
    ]
    assert join_attr_values(["--attrs", "A,B"]) == ["--attrs", "A,B"]


def test_console_script_entry_point(tmp_path):
    """The installed `stargan-export` runs `main` (checked through the module, no export work)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stargan_export.cli",
            "build",
            str(tmp_path / "none-G.ckpt"),
            "--out",
            str(tmp_path / "b"),
            "--attrs",
            "A",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: checkpoint not found: {tmp_path / 'none-G.ckpt'}"


def test_fp16_is_on_by_default_and_its_help_says_it_sets_the_engine_precision(official_checkpoint, tmp_path, capsys):
    code, out, _ = _run(["build", "--help"], capsys)
    text = " ".join(out.replace("│", " ").split())
    assert code == 0
    assert "--fp16 --no-fp16" in text and "[default: fp16]" in text  # the default, said where the flag is
    assert "build the TensorRT engine from it (an FP16 engine); --no-fp16: FP32 ONNX only and an FP32 engine" in text
    code, out, err = _run(
        [
            "build",
            str(official_checkpoint),
            "--out",
            str(tmp_path / "b"),
            "--attrs",
            ",".join(ATTRS),
            "--image-size",
            "32",
            "--no-torch-weights",
            "--opt-batch",
            "2",
            "--max-batch",
            "2",
            "--no-engine",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    files = {a["file"]: a["precision"] for a in json.loads(out)["artifacts"]}
    assert files == {"generator.onnx": "fp32", "generator.fp16.onnx": "fp16"}  # no flag: the FP16 graph is built
