"""Hostile-input suite, the audit's API and CLI edges: fuzzed file names, detector boxes, options and iterables.
Each ends in a correct result or one specific stargan_sdk error (one printable line from the CLI).

Examples are few and seeded (derandomize), as in test_hostile_inputs.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_hostile_inputs import _damage, _encoded
from typer.testing import CliRunner

from stargan_sdk import Translator
from stargan_sdk.cli.stargan import app, printable
from stargan_sdk.errors import FaceDetectorError, ImageInputError, OptionError

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ORIGINAL = {"Black_Hair": 1, "Male": 1, "Young": 0}
# File names a user can have: any character but "/" and NUL (control characters, newlines, markup included).
NAME_CHARS = st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))


@FUZZ
@given(stem=st.text(NAME_CHARS, min_size=1, max_size=12).filter(lambda s: s not in (".", "..")))
def test_fuzzed_file_names_keep_the_whole_reason(
    bundle: Path, tmp_path_factory: pytest.TempPathFactory, stem: str
) -> None:
    src = tmp_path_factory.mktemp("names")
    bad = src / f"{stem}.png"
    try:
        bad.write_bytes(b"not an image")
    except OSError:
        return  # a name this file system refuses (too long once encoded)
    result = CliRunner().invoke(
        app, ["translate", str(src), "-b", str(bundle), "--set", "Male=0", "-o", str(src / "out")]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {printable(bad)}: not a readable image (cannot identify image file")
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in line)


boxes = st.tuples(*[st.one_of(st.floats(-1e7, 1e7), st.sampled_from([0.0, 1.0, 31.0, 64.0, 1e6]))] * 4)


@FUZZ
@given(box=boxes)
def test_fuzzed_detector_boxes(translator: Translator, face: np.ndarray, box: tuple[float, ...]) -> None:
    """Any box a caller's detector returns: the photo back (edited or not) or one FaceDetectorError."""
    try:
        out = translator.translate_photo(
            face, Male=0, original=ORIGINAL, detector=lambda rgb: [box], on_no_face="return"
        )  # a box wholly outside the photo is no face
    except FaceDetectorError as e:
        assert "\n" not in str(e)
        return
    assert out.shape == face.shape and out.dtype == np.uint8
    assert max(box[2], box[3]) <= 2 * 32  # a larger box must have been refused


@FUZZ
@given(value=st.one_of(st.text(max_size=8), st.none(), st.integers(), st.sampled_from(["raise", "return"])))
def test_fuzzed_on_no_face(translator: Translator, face: np.ndarray, value: object) -> None:
    try:
        out = translator.translate_photo(face, Male=0, original=ORIGINAL, on_no_face=value, detector=lambda rgb: [])
    except OptionError as e:
        assert value not in ("raise", "return") and "'raise', 'return'" in str(e)
        return
    except Exception as e:  # noqa: BLE001  only "raise" may get here, with its own error
        assert value == "raise" and type(e).__name__ == "NoFaceFoundError"
        return
    assert value == "return"
    np.testing.assert_array_equal(out, face)


@FUZZ
@given(
    picks=st.lists(
        st.sampled_from([{"Male": 0}, {"Blond_Hair": 1}, {}, {"Young": 1, "Male": 1}]), min_size=1, max_size=3
    ),
    wrap=st.sampled_from(["list", "tuple", "generator", "map", "dict-values"]),
)
def test_fuzzed_iterables_of_changes(translator: Translator, face: np.ndarray, picks: list[dict], wrap: str) -> None:
    faces = [np.roll(face, i, axis=0) for i in range(len(picks))]
    wrapped = {
        "list": lambda: list(picks),
        "tuple": lambda: tuple(picks),
        "generator": lambda: (p for p in picks),
        "map": lambda: map(dict, picks),
        "dict-values": lambda: dict(enumerate(picks)).values(),
    }[wrap]()
    got = translator.translate_batch(faces, wrapped, original=ORIGINAL)
    for image, change, out in zip(faces, picks, got):
        np.testing.assert_array_equal(out, translator.translate(image, change, original=ORIGINAL))


@FUZZ
@given(
    fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]),
    size=st.tuples(st.integers(1, 48), st.integers(1, 48)),
    how=st.sampled_from(["truncate", "flip", "insert"]),
    at=st.floats(0.2, 1),
    byte=st.integers(0, 255),
    seed=st.integers(0, 9),
)
def test_fuzzed_lazily_opened_files(
    translator: Translator,
    tmp_path_factory: pytest.TempPathFactory,
    fmt: str,
    size: tuple[int, int],
    how: str,
    at: float,
    byte: int,
    seed: int,
) -> None:
    """`Image.open` reads only the header; whatever the pixel data hides, translate() edits the image or raises
    one ImageInputError, never PIL's own OSError."""
    path = tmp_path_factory.mktemp("lazy") / f"x.{fmt.lower()}"
    path.write_bytes(_damage(_encoded(fmt, size, seed), how, at, byte))
    try:
        image = Image.open(path)
    except Exception:  # noqa: BLE001  PIL refuses the header itself: nothing reached the SDK
        return
    try:
        out = translator.translate(image, Male=0, original=ORIGINAL)
    except ImageInputError as e:
        assert "\n" not in str(e)
        return
    assert out.size == image.size
