"""The web page after the reliability audit: the CLI's framing rule, no-face uploads, messages without
tracebacks, and the example face shipped as package data. Usage: pytest -q tests/sdk/test_ui_rules.py"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stargan_sdk import Translator
from stargan_sdk.errors import NoFaceFoundError
from stargan_sdk.ui.actions import prepare

pytest.importorskip("cv2", reason="the page's auto mode detects faces (stargan[photo])")
ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "toyfaces-64"
EXAMPLE = ROOT / "docs" / "example-face.png"
NO_FACE = (
    "No face found in the image: upload a photo with a clear frontal face, or choose 'whole image' to edit "
    "it as one aligned face."
)


@pytest.fixture(scope="module")
def toy() -> Translator:
    with Translator.load(BUNDLE, backend="onnxruntime") as t:
        yield t


def test_the_example_face_is_said_to_be_edited_as_an_aligned_face(toy: Translator) -> None:
    prepared = prepare(toy, EXAMPLE)
    assert prepared.whole and prepared.faces == []
    assert prepared.note == (
        "No face detected; the image is 178x178, CelebA's aligned centre square, so it is "
        "edited whole as one aligned face."
    )


def test_the_page_applies_the_cli_rule(toy: Translator, tmp_path: Path) -> None:
    """A toy face in CelebA's 178x218 that the detector misses is edited whole; a square photo without a face
    (scikit-image's camera man) is refused, as `stargan translate` refuses it."""
    from stargan_sdk.photo.faces import detect_faces
    from stargan_train.data.toyfaces import generate_toyfaces

    images = generate_toyfaces(tmp_path / "toy", 8, seed=3, progress=False) / "images"
    missed = next(p for p in sorted(images.iterdir()) if not detect_faces(Image.open(p)))
    prepared = prepare(toy, missed)
    assert prepared.whole and prepared.image.size == (178, 178)  # its centre square, as translate() edits
    assert prepared.note.startswith("No face detected; the image is 178x218, CelebA's aligned shape")
    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.camera()).save(tmp_path / "camera.png")
    with pytest.raises(NoFaceFoundError, match="no face found in the image"):
        prepare(toy, tmp_path / "camera.png")


def test_a_no_face_upload_is_one_message_and_edit_repeats_it(toy: Translator, tmp_path: Path) -> None:
    gr = pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    from stargan_sdk.ui.page import Page, Refused

    page = Page(toy, tmp_path)
    wall = tmp_path / "wall.png"
    Image.new("RGB", (300, 200), (120, 130, 140)).save(wall)
    out = page.on_image(str(wall), "auto")  # no gr.Error: no red badges, no traceback on the server
    assert out[0] == Refused(NO_FACE) and out[1] == NO_FACE
    result, gallery, download, note = page.on_edit(out[0], "Blond_Hair", True, True, "Brown_Hair", True, True)
    assert result is None and gallery == [] and not download["visible"] and note == NO_FACE
    with pytest.raises(gr.Error) as info:
        page.on_edit(None, "Blond_Hair", True, True, "Brown_Hair", True, True)
    assert not info.value.print_exception  # a message for the user, not a server error


def test_messages_to_the_user_log_no_traceback(toy: Translator, tmp_path: Path) -> None:
    gr = pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    from stargan_sdk.ui.page import Page, upload_image

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"GIF89a but not really")
    with pytest.raises(gr.Error, match="not a readable image") as info:
        Page(toy, tmp_path).on_image(str(bad), "auto")
    assert not info.value.print_exception
    from gradio.data_classes import FileData

    component = upload_image(type="filepath", format="png")
    with pytest.raises(gr.Error) as info:
        component.preprocess(FileData(path=str(bad), orig_name="bad.png"))
    assert not info.value.print_exception


def test_the_example_face_ships_in_the_wheel(tmp_path: Path) -> None:
    """Built and installed as a user does (no clone around it), the page still finds its example."""
    pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    packaged = ROOT / "sdk" / "stargan_sdk" / "ui" / "assets" / "example-face.png"
    assert packaged.read_bytes() == EXAMPLE.read_bytes()  # the README's example and the page's are one image
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("sdk", "export", "training", "benchmarks/stargan_demo"):  # every package-dir of pyproject
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("stargan-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "site")
    code = "import stargan_sdk.ui.page as u; print(u.EXAMPLE); print(u.EXAMPLE.is_file())"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site"), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    where, found = proc.stdout.split()
    assert Path(where) == tmp_path / "site" / "stargan_sdk" / "ui" / "assets" / "example-face.png" and found == "True"
    assert np.array_equal(np.asarray(Image.open(where)), np.asarray(Image.open(EXAMPLE)))


def test_an_upload_with_a_garbage_exif_block_is_used_as_stored(tmp_path: Path) -> None:
    """As `stargan translate` (auto and --crop): an EXIF block that cannot be parsed means no turn."""
    import io

    from stargan_sdk.ui.actions import open_upload

    rgb = np.random.default_rng(4).integers(0, 256, (40, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95, exif=b"Exif\x00\x00" + b"\xde\xad" * 40)
    (tmp_path / "garbage-exif.jpg").write_bytes(buffer.getvalue())
    stored = np.asarray(Image.open(tmp_path / "garbage-exif.jpg").convert("RGB"))
    np.testing.assert_array_equal(np.asarray(open_upload(tmp_path / "garbage-exif.jpg")), stored)
