"""The logic behind the `stargan ui` page (no browser): deciding how to edit, estimates, edits, errors, the CLI.

Usage: pytest -q tests/sdk/test_ui.py
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from stargan_sdk import Translator
from stargan_sdk.cli.stargan import app
from stargan_sdk.errors import AttributeValueError, ImageInputError, NoFaceFoundError
from stargan_sdk.ui.actions import (
    changes_from,
    controls_for,
    describe,
    edit,
    original_from,
    prepare,
    single_edits,
)

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "toyfaces-64"
EXAMPLE = ROOT / "docs" / "example-face.png"
EXAMPLE_ESTIMATE = {"Black_Hair": 0, "Blond_Hair": 0, "Brown_Hair": 1, "Male": 1, "Young": 1}


@pytest.fixture(scope="module")
def toy() -> Translator:
    with Translator.load(BUNDLE, backend="onnxruntime") as t:
        yield t


class NoClassifier:
    """The Translator API of a bundle without a classifier, and without translate_all (as a minimal client)."""

    def __init__(self, inner: Translator) -> None:
        self.inner = inner
        self.attributes, self.image_size, self.manifest = inner.attributes, inner.image_size, inner.manifest

    def estimate(self, image):
        raise AttributeValueError("this bundle has no classifier to estimate what the image shows; pass original")

    def translate(self, image, changes=None, /, *, original=None, **kw):
        return self.inner.translate(image, changes, original=original, **kw)

    def translate_batch(self, images, changes=None, *, original=None):
        return self.inner.translate_batch(images, changes, original=original)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's shape, without the memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def astronaut(tmp_path: Path) -> Path:
    data = pytest.importorskip("skimage.data")
    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)  # 512 x 512: square, but a photo with a small face
    return path


def test_controls_put_hair_in_one_choice_and_the_rest_as_toggles(toy: Translator) -> None:
    c = controls_for(toy)
    assert c.choice == ("Black_Hair", "Blond_Hair", "Brown_Hair") and c.toggles == ("Male", "Young")
    assert controls_for(NoClassifier(toy)) == c  # from manifest.groups when there is no `space`
    assert describe(c, EXAMPLE_ESTIMATE) == "Brown_Hair · Male · Young"
    assert describe(c, {"Male": 0, "Young": 1}) == "none of Black_Hair, Blond_Hair, Brown_Hair · not Male · Young"


def test_changes_are_the_chosen_colour_and_the_flipped_toggles(toy: Translator) -> None:
    c = controls_for(toy)
    original = original_from(c, "Brown_Hair", {"Male": True, "Young": True})
    assert original == EXAMPLE_ESTIMATE
    assert changes_from(c, original, "keep", {"Male": True, "Young": True}) == {}
    assert changes_from(c, original, "Blond_Hair", {"Male": True, "Young": False}) == {"Blond_Hair": 1, "Young": 0}
    with pytest.raises(AttributeValueError, match="Red_Hair"):
        changes_from(c, original, "Red_Hair", {})


def test_a_square_face_the_detector_misses_is_edited_whole(toy: Translator) -> None:
    prepared = prepare(toy, EXAMPLE)
    assert prepared.whole and prepared.estimate == EXAMPLE_ESTIMATE and "whole" in prepared.note
    result, row = edit(toy, prepared, {"Blond_Hair": 1}, None)
    expected = toy.translate(Image.open(EXAMPLE), Blond_Hair=1)
    np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))
    assert list(row) == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male=0", "Young=0"]
    np.testing.assert_array_equal(np.asarray(row["Blond_Hair"]), np.asarray(expected))


def test_a_square_photo_goes_through_the_face_pipeline(toy: Translator, tmp_path: Path) -> None:
    prepared = prepare(toy, astronaut(tmp_path))
    assert not prepared.whole and len(prepared.faces) == 1 and "Found 1 face" in prepared.note
    assert prepared.face.size[0] == prepared.face.size[1] < 512  # the face crop, not the photo
    result, row = edit(toy, prepared, {"Blond_Hair": 1}, None)
    before, after = np.asarray(prepared.image), np.asarray(result)
    assert after.shape == before.shape
    x, y, w, h = prepared.faces[0]
    changed = np.any(after != before, axis=2)
    assert changed[y : y + h, x : x + w].mean() > 0.5  # the face was edited...
    assert not changed[:, :40].any() and not changed[-40:, :].any()  # ...and the photo around it kept bit-exact
    assert len(row) == 5 and all(img.size == prepared.face.size for img in row.values())


def test_whole_mode_centre_crops_a_photo(toy: Translator, tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200), (120, 130, 140)).save(path)
    prepared = prepare(toy, path, "whole")
    assert prepared.whole and prepared.image.size == (200, 200) and "centre-cropped" in prepared.note


def test_uploads_of_any_mode_become_upright_rgb(tmp_path: Path) -> None:
    from stargan_sdk.ui.actions import open_upload

    clear = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(clear)
    assert np.asarray(open_upload(clear)).tolist() == [[[255, 255, 255]] * 8] * 8  # transparent: white, as translate
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(deep)  # 16-bit greyscale, full scale
    assert np.asarray(open_upload(deep)).min() == 255
    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (0, 128, 0)).save(turned, exif=exif)
    assert open_upload(turned).size == (20, 40)


def test_no_face_in_a_photo_says_so(toy: Translator, tmp_path: Path) -> None:
    path = tmp_path / "wall.png"
    Image.new("RGB", (300, 200), (120, 130, 140)).save(path)
    with pytest.raises(NoFaceFoundError, match="no face found"):
        prepare(toy, path)  # not square: auto means the face pipeline
    with pytest.raises(NoFaceFoundError):
        prepare(toy, EXAMPLE, "faces")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not an image at all", "not a readable image"),
        (png_claiming(20_000, 20_000), "decompression bomb"),
        (png_claiming(9_000, 9_000), "exceeds the limit"),  # under PIL's own bomb limit, over the SDK's
    ],
)
def test_bad_files_are_refused_with_a_reason(toy: Translator, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(ImageInputError, match=message):
        prepare(toy, path)


def test_without_a_classifier_the_user_says_what_the_input_shows(toy: Translator) -> None:
    client = NoClassifier(toy)
    prepared = prepare(client, EXAMPLE)
    assert prepared.estimate is None and "no classifier" in describe(controls_for(client), None)
    result, row = edit(client, prepared, {"Blond_Hair": 1}, EXAMPLE_ESTIMATE)
    np.testing.assert_array_equal(np.asarray(result), np.asarray(toy.translate(Image.open(EXAMPLE), Blond_Hair=1)))
    # Without translate_all the row is built from translate_batch: the same images, the same names.
    reference = toy.translate_all(Image.open(EXAMPLE), original=EXAMPLE_ESTIMATE)
    fallback = single_edits(client, Image.open(EXAMPLE), EXAMPLE_ESTIMATE)
    assert list(fallback) == list(reference) == list(row)
    for name in reference:
        np.testing.assert_array_equal(np.asarray(fallback[name]), np.asarray(reference[name]))


# ---- the page's handlers (gradio) ----


def test_page_handlers_estimate_edit_and_offer_the_download(toy: Translator, tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    from stargan_sdk.ui.page import Page

    page = Page(toy, tmp_path)
    out = page.on_image(str(EXAMPLE), "auto")
    prepared, text, hair, male, young, target_hair = out[0], out[1], out[3], out[4], out[5], out[6]
    assert text == "**Estimated:** Brown_Hair · Male · Young"
    assert (hair, male, young, target_hair) == ("Brown_Hair", True, True, "keep")
    result, gallery, download, note = page.on_edit(prepared, "Blond_Hair", True, True, "Brown_Hair", True, True)
    np.testing.assert_array_equal(np.asarray(result), np.asarray(toy.translate(Image.open(EXAMPLE), Blond_Hair=1)))
    assert [caption for _, caption in gallery] == [
        "input",
        "Black_Hair",
        "Blond_Hair",
        "Brown_Hair",
        "Male=0",
        "Young=0",
    ]
    saved = Path(download["value"])
    assert download["visible"] and saved.parent.parent == tmp_path
    np.testing.assert_array_equal(np.asarray(Image.open(saved)), np.asarray(result))
    assert note.endswith("Changed: Blond_Hair=1.")
    # A corrected estimate is used as the original: 'the input is blond' + choose blond = a reconstruction.
    _, _, _, note = page.on_edit(prepared, "Blond_Hair", True, True, "Blond_Hair", True, True)
    assert note.endswith("Changed: Blond_Hair=1.")


def test_page_handlers_turn_errors_into_messages(toy: Translator, tmp_path: Path) -> None:
    gr = pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    from stargan_sdk.ui.page import Page

    page = Page(toy, tmp_path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"GIF89a but not really")
    with pytest.raises(gr.Error, match="not a readable image"):
        page.on_image(str(bad), "auto")
    with pytest.raises(gr.Error, match="Upload a face or a photo first"):
        page.on_edit(None, "Blond_Hair", True, True, "Brown_Hair", True, True)
    cleared = page.on_image(None, "auto")
    assert cleared[0] is None and cleared[1] == "Upload a face or a photo."


# ---- the command ----


def test_sdk_and_cli_import_without_gradio() -> None:
    code = """
        import sys
        import stargan_sdk, stargan_sdk.cli.stargan, stargan_sdk.cli.ui, stargan_sdk.ui.actions
        print("gradio" in sys.modules)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_cli_needs_a_bundle_or_a_url() -> None:
    result = CliRunner().invoke(app, ["ui"])
    assert result.exit_code == 2 and "give a BUNDLE folder, or --url" in result.output


def test_cli_without_the_remote_client_or_gradio_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    monkeypatch.setitem(sys.modules, "stargan_sdk.serve.remote", None)  # import fails as if the module were absent
    result = CliRunner().invoke(app, ["ui", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "--url needs the remote client" in result.output
    monkeypatch.setitem(sys.modules, "stargan_sdk.ui.page", None)
    result = CliRunner().invoke(app, ["ui", str(BUNDLE)])
    assert result.exit_code == 2 and "pip install 'stargan[ui]'" in result.output


def test_cli_reports_a_busy_port_in_one_line() -> None:
    pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", str(BUNDLE), "--port", str(port), "--backend", "onnxruntime"])
    assert result.exit_code == 2, result.output
    assert f"cannot serve on 127.0.0.1:{port}" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [(png_claiming(20_000, 20_000), "decompression bomb"), (b"<html>not an image</html>", "not a readable image")],
)
def test_upload_component_turns_pil_errors_into_messages(tmp_path: Path, content: bytes, message: str) -> None:
    """Gradio opens the upload before any handler runs; its errors must still read as a reason."""
    gr = pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    from gradio.data_classes import FileData

    from stargan_sdk.ui.page import upload_image

    path = tmp_path / "upload.png"
    path.write_bytes(content)
    component = upload_image(type="filepath", format="png")
    with pytest.raises(gr.Error, match=message):
        component.preprocess(FileData(path=str(path), orig_name="upload.png"))
    # Gradio writes a .pyi stub beside any module that subclasses a component; the page must not (read-only installs).
    assert not (Path(sys.modules["stargan_sdk.ui.page"].__file__).with_suffix(".pyi")).exists()


def test_cli_url_serves_the_remote_translator(monkeypatch: pytest.MonkeyPatch, bundle: Path) -> None:
    """--url loads `stargan_sdk.serve.remote.RemoteTranslator` (a stand-in here: the real one needs a Triton server)
    and hands it to the page; a BUNDLE given too must be the served model."""
    pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
    import types

    import stargan_sdk.ui.page

    loaded: list[tuple[str, str]] = []

    class RemoteTranslator:
        @classmethod
        def load(cls, url: str, model: str = "stargan") -> Translator:
            loaded.append((url, model))
            return Translator.load(BUNDLE, backend="onnxruntime")  # the served bundle

    served: list[object] = []
    monkeypatch.setitem(
        sys.modules, "stargan_sdk.serve.remote", types.SimpleNamespace(RemoteTranslator=RemoteTranslator)
    )
    monkeypatch.setattr(stargan_sdk.ui.page, "serve", lambda t, **kw: served.append((t.image_size, kw)))
    result = CliRunner().invoke(app, ["ui", "--url", "grpc://127.0.0.1:8001", "--model", "faces", "--port", "7999"])
    assert result.exit_code == 0, result.output
    assert loaded == [("grpc://127.0.0.1:8001", "faces")]
    assert served == [(64, {"host": "127.0.0.1", "port": 7999, "title": "StarGAN face editor: grpc://127.0.0.1:8001"})]
    result = CliRunner().invoke(app, ["ui", str(bundle), "--url", "grpc://127.0.0.1:8001"])  # a 32 px bundle
    assert result.exit_code == 2 and "is not" in result.output and "drop BUNDLE" in result.output
    assert len(served) == 1
    result = CliRunner().invoke(app, ["ui", "--url", "grpc://127.0.0.1:8001", "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "warning: serving on 0.0.0.0: anyone who can reach it" in result.output
