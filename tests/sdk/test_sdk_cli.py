"""`stargan info / translate / grid`: outputs written, JSON readable, bad input -> one error line, exit 2."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from stargan_sdk import Translator
from stargan_sdk.cli.stargan import app

runner = CliRunner()
ORIGINAL = ["--original", "Black_Hair=1", "--original", "Male=1", "--original", "Young=0"]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def face_png(tmp_path: Path, face: np.ndarray) -> Path:
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    return path


def test_info_json_and_table(bundle: Path) -> None:
    result = invoke("info", bundle, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["attributes"] == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    expected_auto = "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"
    assert report["image_size"] == 32 and report["auto"] == expected_auto
    assert {a["file"]: a["status"] for a in report["artifacts"]}["generator.onnx"] == "ok"
    assert report["backends"]["onnxruntime"]["available"] and not report["backends"]["tensorrt"]["available"]
    assert report["backends"]["tensorrt"]["reason"]
    text = invoke("info", bundle)
    assert (
        text.exit_code == 0 and "hair_color" in text.stdout and expected_auto in text.stdout and "(auto)" in text.stdout
    )


def test_info_shows_a_corrupted_file(bundle_copy: Path) -> None:
    (bundle_copy / "classifier.onnx").write_bytes(b"garbage")
    report = json.loads(invoke("info", bundle_copy, "--json").stdout)
    assert "corrupted" in {a["file"]: a["status"] for a in report["artifacts"]}["classifier.onnx"]


def test_translate_file_matches_library(
    bundle: Path, translator: Translator, face_png: Path, face: np.ndarray, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "blond.png"
    result = invoke(
        "translate",
        face_png,
        "--bundle",
        bundle,
        "--backend",
        "onnxruntime",
        "--set",
        "Blond_Hair=1",
        "--set",
        "Young=true",
        *ORIGINAL,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    expected = translator.translate(face, Blond_Hair=1, Young=1, original={"Black_Hair": 1, "Male": 1, "Young": 0})
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)


def test_translate_folder_with_json(bundle: Path, face: np.ndarray, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(face, i, axis=0)).save(src / f"{i}.png")
    (src / "notes.txt").write_text("not an image")
    (src / "wide.jpg").write_bytes(b"broken jpeg")
    result = invoke("translate", src, "-b", bundle, "--set", "Male=0", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 2  # the broken file is reported, the others are written
    report = json.loads(result.stdout)
    assert sorted(Path(p).name for p in report["written"]) == ["0.png", "1.png", "2.png"]
    assert list(report["failed"]) == [str(src / "wide.jpg")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]


def test_translate_crop_mode(bundle: Path, tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((32, 48, 3), 120, np.uint8)).save(wide)
    result = invoke("translate", wide, "-b", bundle, "--set", "Male=1", *ORIGINAL, "--crop", "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "c.png").size == (32, 32)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "Blond_Hair"], "--set expects NAME=0|1"),
        (["--set", "Blond_Hair=maybe"], "--set expects NAME=0|1"),
        (["--set", "Blonde_Hair=1"], "did you mean Blond_Hair"),
        (["--set", "Male=1", "--original", "Male"], "--original expects NAME=0|1"),
        (["--set", "Male=1", "--crop", "--photo"], "exclude each other"),
    ],
)
def test_translate_bad_input_is_one_line(
    bundle: Path, face_png: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = invoke("translate", face_png, "-b", bundle, "-o", tmp_path / "o.png", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "o.png").exists()


def test_missing_bundle_and_input(face_png: Path, tmp_path: Path, bundle: Path) -> None:
    result = invoke("translate", face_png, "-b", tmp_path / "nope", "--set", "Male=1", "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "bundle folder not found" in result.stderr
    result = invoke("translate", tmp_path / "missing.png", "-b", bundle, "--set", "Male=1", "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "input not found" in result.stderr


def test_grid_writes_a_captioned_row(bundle: Path, face_png: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = invoke("grid", face_png, "-b", bundle, *ORIGINAL, "-o", out, "--tile", "40")
    assert result.exit_code == 0, result.output
    assert "Male=0" in result.stdout
    assert Image.open(out).size == (6 * 40 + 5 * 2, 40 + 16)  # input + 5 edits, captions above


def test_debug_env_shows_the_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "STARGAN_DEBUG": "1"}
    code = "from stargan_sdk.cli.stargan import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "info", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "BundleError" in proc.stderr
    env["STARGAN_DEBUG"] = "0"
    proc = subprocess.run(
        [sys.executable, "-c", code, "info", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: bundle folder not found: {tmp_path / 'nope'}"
    ]


def test_non_square_goes_to_the_face_pipeline(bundle: Path, tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((40, 64, 3), 200, np.uint8)).save(wide)  # flat grey: no face to find
    result = invoke("translate", wide, "-b", bundle, "--set", "Male=1", *ORIGINAL, "-o", tmp_path / "w.png")
    assert result.exit_code == 2 and result.stderr.startswith("error: no face found")
    assert not (tmp_path / "w.png").exists()


def test_translate_a_real_photo_edits_the_detected_face_only(bundle: Path, tmp_path: Path) -> None:
    """A real photo of a person (scikit-image's astronaut, shipped in its wheel) through --photo: the Haar
    detector finds the face, the edit is blended back, and the far corners are left bit-identical."""
    data = pytest.importorskip("skimage.data")
    photo = data.astronaut()[:, :400]  # 512 x 400: not square, so it is a photo even without --photo
    src, out = tmp_path / "astronaut.png", tmp_path / "out" / "astronaut.png"
    Image.fromarray(photo).save(src)
    result = invoke(
        "translate", src, "-b", bundle, "--backend", "onnxruntime", "--set", "Blond_Hair=1", *ORIGINAL, "-o", out
    )
    assert result.exit_code == 0, result.output
    edited = np.asarray(Image.open(out))
    assert edited.shape == photo.shape
    changed = np.any(edited != photo, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any() and 150 < xs.mean() < 300 and ys.mean() < 260  # around the face (box ~ x 177-270, y 67-160)
    assert not changed[400:].any() and not changed[:, :100].any()  # body and far left untouched


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height RGB pixels, with no pixel data: decoding it would need
    width * height * 3 bytes, so refusing it from the header is the only way to refuse it cheaply."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_folder_run_reports_a_bomb_and_keeps_going(bundle: Path, face: np.ndarray, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(face).save(src / "a.png")
    png_header_only(src / "b_100mp.png", 10_000, 10_000)  # 100 MP: 300 MB of RGB if decoded
    png_header_only(src / "c_bomb.png", 30_000, 30_000)  # 900 MP: PIL's own DecompressionBombError
    Image.fromarray(face).save(src / "d.png")
    result = invoke("translate", src, "-b", bundle, "--set", "Male=0", *ORIGINAL, "-o", out)
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 2 and len(lines) == 4  # and a note for each noise image edited whole (no face found)
    assert "b_100mp.png" in errors[0] and "100.0 megapixels exceeds the limit of 64" in errors[0]
    assert "c_bomb.png" in errors[1]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "d.png"]
    # the limit is the user's to raise; the header-only file then fails as the truncated file it is
    result = invoke(
        "translate",
        src / "b_100mp.png",
        "-b",
        bundle,
        "--set",
        "Male=0",
        *ORIGINAL,
        "--max-megapixels",
        "200",
        "-o",
        tmp_path / "big.png",
    )
    assert result.exit_code == 2 and "truncated or corrupt" in result.stderr


def test_exif_orientation_is_applied_on_the_whole_image_path(
    bundle: Path, translator: Translator, face: np.ndarray, tmp_path: Path
) -> None:
    """A camera JPEG stores pixels sideways plus an orientation tag; viewers show it upright, so the edit
    must see (and return) the upright face."""
    upright = np.ascontiguousarray(face[:, :24])  # 24 x 32 portrait, as a viewer shows it
    stored = Image.fromarray(np.rot90(upright, k=1))  # sensor pixels, turned 90 degrees anticlockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    src = tmp_path / "camera.png"
    stored.save(src, exif=exif)
    out = tmp_path / "out.png"
    result = invoke(
        "translate", src, "-b", bundle, "--backend", "onnxruntime", "--crop", "--set", "Male=0", *ORIGINAL, "-o", out
    )
    assert result.exit_code == 0, result.output
    expected = translator.translate(upright[4:28], Male=0, original={"Black_Hair": 1, "Male": 1, "Young": 0})
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)


def test_grid_tile_is_bounded_and_keeps_the_aspect_ratio(bundle: Path, face: np.ndarray, tmp_path: Path) -> None:
    Image.fromarray(np.ascontiguousarray(face[:, :24])).save(tmp_path / "tall.png")  # 24 x 32
    result = invoke(
        "grid", tmp_path / "tall.png", "-b", bundle, *ORIGINAL, "--tile", "100000", "-o", tmp_path / "g.png"
    )
    assert (
        result.exit_code == 2
        and result.stderr.strip() == "error: --tile must be 1..1024 pixels (0: the model size), got 100000"
    )
    result = invoke("grid", tmp_path / "tall.png", "-b", bundle, *ORIGINAL, "--tile", "64", "-o", tmp_path / "g.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "g.png").size == (6 * 48 + 5 * 2, 64 + 16)


def test_info_prints_markup_in_names_literally(bundle_copy: Path) -> None:
    """Names come from whoever wrote the bundle: Rich markup is shown as text, never interpreted."""
    path = bundle_copy / "manifest.json"
    m = json.loads(path.read_text())
    hostile = "[blink][link=http://example.invalid]Male[/link][/blink]"
    m["attributes"] = [hostile if a == "Male" else a for a in m["attributes"]]
    for g in m["groups"]:
        g["attributes"] = [hostile if a == "Male" else a for a in g["attributes"]]
    m["dataset"] = "[bold red]celeba[/]"
    path.write_text(json.dumps(m))
    result = invoke("info", bundle_copy)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())  # Rich wraps long lines at spaces
    assert hostile in flat and "[bold red]celeba[/]" in flat


def test_control_characters_in_file_names_never_reach_the_terminal(
    bundle: Path, face: np.ndarray, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(face).save(src / "good\x1b[31m.png")
    (src / "bad\x1b[2J.png").write_bytes(b"not a png")
    result = invoke("translate", src, "-b", bundle, "--set", "Male=0", *ORIGINAL, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "\x1b" not in result.output and "bad\\x1b[2J.png" in result.stderr and "good\\x1b" in result.stdout


def test_auto_edits_a_square_photo_through_the_face_pipeline(
    bundle: Path, translator: Translator, tmp_path: Path
) -> None:
    """The 512x512 astronaut is square but a photo: only the face region changes. A CelebA-style crop of the
    same face (the face fills the frame) is edited whole, exactly as translate() does."""
    data = pytest.importorskip("skimage.data")
    pytest.importorskip("cv2", reason="the auto rule's face detector needs OpenCV (stargan[photo])")
    from stargan_sdk.photo.faces import celeba_crop_box, detect_faces

    photo = data.astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    result = invoke(
        "translate",
        tmp_path / "astronaut.png",
        "-b",
        bundle,
        "--backend",
        "onnxruntime",
        "--set",
        "Blond_Hair=1",
        *ORIGINAL,
        "-o",
        tmp_path / "out.png",
    )
    assert result.exit_code == 0, result.output
    changed = np.any(np.asarray(Image.open(tmp_path / "out.png")) != photo, axis=2)
    assert changed.any() and not changed[400:].any() and not changed[:, :100].any()  # the body is untouched
    box = celeba_crop_box(detect_faces(photo)[0])
    aligned = photo[box.top : box.top + box.side, box.left : box.left + box.side]
    Image.fromarray(aligned).save(tmp_path / "aligned.png")
    result = invoke(
        "translate",
        tmp_path / "aligned.png",
        "-b",
        bundle,
        "--backend",
        "onnxruntime",
        "--set",
        "Blond_Hair=1",
        *ORIGINAL,
        "-o",
        tmp_path / "aligned-out.png",
    )
    assert result.exit_code == 0, result.output
    expected = translator.translate(aligned, Blond_Hair=1, original={"Black_Hair": 1, "Male": 1, "Young": 0})
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "aligned-out.png")), expected)


def test_auto_without_a_face_detector_says_so_once(
    bundle: Path, face: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stargan_sdk.errors import BackendUnavailableError
    from stargan_sdk.photo import face_detect

    def no_opencv():
        raise BackendUnavailableError("face detection needs OpenCV 4.x: pip install 'stargan[photo]'")

    monkeypatch.setattr(face_detect, "import_cv2", no_opencv)
    import stargan_sdk.photo.faces as faces

    faces.default_detector.cache_clear()
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(face, i, axis=1)).save(src / f"{i}.png")
    result = invoke("translate", src, "-b", bundle, "--set", "Male=0", *ORIGINAL, "-o", tmp_path / "out")
    faces.default_detector.cache_clear()
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "pip install 'stargan[photo]'" in notes[0] and "edited whole" in notes[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]


@pytest.mark.parametrize("command", ["translate", "grid", "ui"])
def test_backend_help_names_every_backend(command: str) -> None:
    """--backend's help lists what --backend accepts: every registered backend (inductor included) and auto."""
    from stargan_sdk.backends.registry import BACKENDS

    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if "--backend" in ln)
    listed = {w.strip(" .|│()") for w in line.split("--backend", 1)[1].split()}
    assert {"auto", "inductor", *BACKENDS} <= listed, line
