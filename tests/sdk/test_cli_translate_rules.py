"""`stargan translate`: the auto framing rule on real toy faces and real photos, what it says, and outputs that
are inputs. Usage: pytest -q tests/sdk/test_cli_translate_rules.py"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from stargan_sdk import Translator
from stargan_sdk.cli.stargan import app

pytest.importorskip("cv2", reason="the auto rule's face detector needs OpenCV (stargan[photo])")
ORIGINAL = ["--original", "Black_Hair=1", "--original", "Male=1", "--original", "Young=0"]
ORIGINAL_DICT = {"Black_Hair": 1, "Male": 1, "Young": 0}


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _tree(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_toyfaces_folder_is_edited_without_crop(bundle: Path, translator: Translator, tmp_path: Path) -> None:
    """`stargan-train toyfaces` writes 178x218 aligned faces that the Haar cascade mostly misses: every one is
    edited (whole), and each one edited without a detected face gets its own note on stderr."""
    from stargan_sdk.photo.faces import detect_faces
    from stargan_train.data.toyfaces import generate_toyfaces

    images = generate_toyfaces(tmp_path / "toy", 16, seed=3, progress=False) / "images"
    missed = sorted(p.name for p in images.iterdir() if not detect_faces(Image.open(p)))
    assert 0 < len(missed) < 16  # the detector sees some toy faces and misses others (136 of 200 at seed 0)
    result = invoke(
        "translate",
        images,
        "-b",
        bundle,
        "--backend",
        "onnxruntime",
        "--set",
        "Blond_Hair=1",
        *ORIGINAL,
        "-o",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in images.iterdir())
    notes = result.stderr.splitlines()
    assert len(notes) == len(missed) and all(line.startswith("note: ") for line in notes)
    for name, line in zip(missed, notes):
        assert line == (
            f"note: {images / name}: no face detected; edited whole as an aligned face "
            "(178x218, CelebA's aligned shape)"
        )
    face = Image.open(images / missed[0])
    expected = translator.translate(face, Blond_Hair=1, original=ORIGINAL_DICT)  # whole: its centre square
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / missed[0])), np.asarray(expected))


@pytest.mark.parametrize("flag", [None, "--photo"])
def test_a_photo_without_a_face_is_refused_in_cli_words(bundle: Path, tmp_path: Path, flag: str | None) -> None:
    """scikit-image's 512x512 camera man (a square photo, face in profile): no face, not an aligned shape."""
    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.camera()).save(tmp_path / "camera.png")
    result = invoke(
        "translate",
        tmp_path / "camera.png",
        "-b",
        bundle,
        "--set",
        "Blond_Hair=1",
        *ORIGINAL,
        "-o",
        tmp_path / "out.png",
        *([flag] if flag else []),
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: no face found; --crop edits the centre square as an aligned face, or use a photo with a clear "
        "frontal face"
    ]
    assert not (tmp_path / "out.png").exists()


def test_shapes_that_count_as_aligned_faces(bundle: Path, tmp_path: Path) -> None:
    """With no face found: the model's square size is edited whole (with a note), another square is refused."""
    rng = np.random.default_rng(5)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / "model-size.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(src / "other.png")
    result = invoke("translate", src, "-b", bundle, "--set", "Male=0", *ORIGINAL, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"note: {src / 'model-size.png'}: no face detected; edited whole as an aligned face "
        "(32x32, the model's own size)",
        f"error: {src / 'other.png'}: no face found; --crop edits the centre square as an aligned face, or use a "
        "photo with a clear frontal face",
    ]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model-size.png"]


def _folder(tmp_path: Path, face: np.ndarray) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(face, i, axis=0)).save(src / f"{i}.png")
    return src


@pytest.mark.parametrize(
    "case",
    [
        "same-folder",
        "folder-symlink",
        "same-file",
        "file-into-own-folder",
        "file-symlink",
        "hard-link-in-output-folder",
    ],
)
def test_an_output_that_is_an_input_is_refused(bundle: Path, face: np.ndarray, tmp_path: Path, case: str) -> None:
    src = _folder(tmp_path, face)
    one = src / "0.png"
    if case == "same-folder":
        args = [src, "-o", src]
    elif case == "folder-symlink":
        (tmp_path / "link").symlink_to(src, target_is_directory=True)
        args = [src, "-o", tmp_path / "link"]
    elif case == "same-file":
        args = [one, "-o", one]
    elif case == "file-into-own-folder":
        args = [one, "-o", src]
    elif case == "file-symlink":
        (tmp_path / "link.png").symlink_to(one)
        args = [one, "-o", tmp_path / "link.png"]
    else:
        (tmp_path / "out").mkdir()
        os.link(src / "1.png", tmp_path / "out" / "1.png")
        args = [src, "-o", tmp_path / "out"]
    before = _tree(src)
    result = invoke("translate", *args, "-b", bundle, "--set", "Male=0", *ORIGINAL)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("error: -o ") and result.stderr.rstrip().endswith("or pass --overwrite-inputs")
    assert _tree(src) == before  # nothing written, no temp file left
    assert not result.stdout


def test_overwrite_inputs_is_explicit(bundle: Path, translator: Translator, face: np.ndarray, tmp_path: Path) -> None:
    src = _folder(tmp_path, face)
    result = invoke(
        "translate",
        src,
        "-b",
        bundle,
        "--backend",
        "onnxruntime",
        "--set",
        "Male=0",
        *ORIGINAL,
        "-o",
        src,
        "--overwrite-inputs",
    )
    assert result.exit_code == 0, result.output
    expected = translator.translate(face, Male=0, original=ORIGINAL_DICT)
    np.testing.assert_array_equal(np.asarray(Image.open(src / "0.png")), expected)
    assert sorted(p.name for p in src.iterdir()) == ["0.png", "1.png"]


@pytest.mark.parametrize("folder", [True, False])
def test_a_newline_in_a_file_name_keeps_the_whole_reason(bundle: Path, tmp_path: Path, folder: bool) -> None:
    src = tmp_path / "in"
    src.mkdir()
    bad = src / "bad\nname.png"
    bad.write_bytes(b"not a png")
    result = invoke(
        "translate",
        src if folder else bad,
        "-b",
        bundle,
        "--set",
        "Male=0",
        *ORIGINAL,
        "-o",
        tmp_path / ("out" if folder else "o.png"),
    )
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {src}/bad\\x0aname.png: not a readable image (cannot identify image file")


def test_crop_accepts_a_jpeg_with_a_garbage_exif_block(bundle: Path, translator: Translator, tmp_path: Path) -> None:
    """Viewers ignore an EXIF block they cannot parse; so do `auto` and --crop (the image is used as stored)."""
    rgb = np.random.default_rng(2).integers(0, 256, (40, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95, exif=b"Exif\x00\x00" + b"\xde\xad" * 40)
    (tmp_path / "garbage-exif.jpg").write_bytes(buffer.getvalue())
    stored = np.asarray(Image.open(tmp_path / "garbage-exif.jpg").convert("RGB"))
    result = invoke(
        "translate",
        tmp_path / "garbage-exif.jpg",
        "-b",
        bundle,
        "--backend",
        "onnxruntime",
        "--crop",
        "--set",
        "Male=0",
        *ORIGINAL,
        "-o",
        tmp_path / "out.png",
    )
    assert result.exit_code == 0, result.output
    expected = translator.translate(stored[4:36], Male=0, original=ORIGINAL_DICT)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)


def test_a_newline_in_a_refused_output_name_keeps_the_whole_message(
    bundle: Path, face: np.ndarray, tmp_path: Path
) -> None:
    odd = tmp_path / "odd\nname.png"
    Image.fromarray(face).save(odd, format="PNG")
    before = odd.read_bytes()
    result = invoke("translate", odd, "-b", bundle, "--set", "Male=0", *ORIGINAL, "-o", odd)
    assert result.exit_code == 2 and odd.read_bytes() == before
    assert result.stderr.splitlines() == [
        f"error: -o {tmp_path}/odd\\x0aname.png is an input (the same file or a link "
        "to one); choose another output, or pass --overwrite-inputs"
    ]


def test_precision_flag_reaches_the_backend(bundle: Path, tmp_path: Path) -> None:
    """--precision fp32 opts out of auto's choice; int8 on a bundle without an INT8 model says how to get one."""
    pytest.importorskip("openvino")
    src = tmp_path / "face.png"
    Image.new("RGB", (64, 64), (120, 90, 80)).save(src)
    ok = invoke(
        "translate",
        src,
        "-b",
        bundle,
        "--backend",
        "openvino",
        "--precision",
        "fp32",
        "--crop",
        "--set",
        "Male=0",
        *ORIGINAL,
        "-o",
        tmp_path / "out.png",
    )
    assert ok.exit_code == 0, ok.output
    refused = invoke(
        "translate",
        src,
        "-b",
        bundle,
        "--backend",
        "openvino",
        "--precision",
        "int8",
        "--crop",
        "--set",
        "Male=0",
        *ORIGINAL,
        "-o",
        tmp_path / "out8.png",
    )
    assert refused.exit_code == 2 and "--int8-calibration" in refused.output


def test_info_says_which_precision_auto_runs(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As an AVX2-only CPU (override), a bundle without an INT8 model keeps FP32 and `info` says why."""
    pytest.importorskip("openvino")
    import json

    monkeypatch.setenv("STARGAN_CPU_CAPABILITIES", "FP32,INT8")
    result = invoke("info", bundle, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    if report["auto"] == "openvino":  # tensorrt first where a GPU runs it
        assert report["cpu_precision"]["precision"] == "fp32"
        assert "no INT8 model" in report["cpu_precision"]["reason"]
