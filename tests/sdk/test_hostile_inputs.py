"""Hostile-input suite: fuzzed manifest fields, image bytes, modes and sizes. Every input ends in a correct
result or one specific stargan_sdk error (one line from the CLI) — never a traceback, never a file lost.

Examples are few and seeded (derandomize) so the suite stays fast and repeatable in the default run.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from stargan_sdk import Translator
from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.cli.stargan import app
from stargan_sdk.errors import ImageInputError, ManifestError, StarGANError
from stargan_sdk.photo.faces import open_photo

MANIFEST_FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ORIGINAL = {"Black_Hair": 1, "Male": 1, "Young": 0}

# ---------------------------------------------------------------- manifests


def _leaves(node, path=()):
    """Every path into a manifest: dict keys and list indices, inner nodes included."""
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _leaves(child, (*path, key))


hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 4, 31, 32.0, 32.5, 1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "N",
            "\x1b[31m",
            "[bold]x[/]",
            "../generator.onnx",
            "a" * 5000,
            "generator.onnx",
            "0" * 64,
            "float16",
            "exclusive",
        ]
    ),
    st.lists(st.integers(-3, 40), max_size=5),
    st.lists(st.text(string.printable, max_size=5), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.recursive(st.none(), lambda inner: st.lists(inner, max_size=2), max_leaves=200),
)


@pytest.fixture(scope="module")
def fuzz_bundle(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session bundle without the safetensors weights (validate would run torch for them on every example)."""
    out = Path(shutil.copytree(bundle, tmp_path_factory.mktemp("fuzz") / "bundle"))
    m = json.loads((out / "manifest.json").read_text())
    m["artifacts"] = [a for a in m["artifacts"] if a["kind"] != "safetensors"]
    (out / "manifest.json").write_text(json.dumps(m))
    return out


def _plausible(current) -> st.SearchStrategy:
    """A value of the field's own JSON type: these get past the type checks and test the cross-checks."""
    if isinstance(current, bool):
        return st.booleans()
    if isinstance(current, int):
        return st.integers(-5, 300)
    if isinstance(current, float):
        return st.floats(-10, 200)
    if isinstance(current, str):
        return st.one_of(
            st.text(string.ascii_letters + "_.", max_size=12),
            st.sampled_from(
                ["fp16", "int8", "tensorrt", "classifier", "binary", "mask", "Male", "Young", "label", "image", "N"]
            ),
        )
    if isinstance(current, list):
        return st.permutations(current).map(list) | st.just(current[:-1]) | st.just(current + current[:1])
    return hostile_values


def _mutate(manifest: dict, path: tuple, action: str, value) -> None:
    node = manifest
    for key in path[:-1]:
        node = node[key]
    last = path[-1]
    if action == "delete":
        node.pop(last) if isinstance(node, (dict, list)) else None
    elif action == "add" and isinstance(node, dict):
        node[f"{last}_extra"] = value
    else:
        node[last] = value


@MANIFEST_FUZZ
@given(data=st.data())
def test_fuzzed_manifest_fields(fuzz_bundle: Path, data: st.DataObject) -> None:
    """read_manifest: a Manifest or one ManifestError. If `validate` passes, the loader loads it too."""
    from stargan_export.errors import ExportError
    from stargan_export.validate import validate_bundle

    text = (fuzz_bundle / "manifest.json").read_text()
    manifest = json.loads(text)
    paths = [p for p in _leaves(manifest) if p]
    path = data.draw(st.sampled_from(paths), label="path")
    action = data.draw(st.sampled_from(["plausible", "plausible", "set", "delete", "add"]), label="action")
    current = manifest
    for key in path:
        current = current[key]
    value = data.draw(_plausible(current) if action == "plausible" else hostile_values, label="value")
    _mutate(manifest, path, action, value)
    try:
        (fuzz_bundle / "manifest.json").write_text(json.dumps(manifest))
        try:
            read_manifest(fuzz_bundle)
        except ManifestError as e:
            assert str(e) and "\n" not in str(e)
            event("refused by the schema")
            return
        try:
            validate_bundle(fuzz_bundle)
        except (StarGANError, ExportError) as e:
            assert "\n" not in str(e)
            event("refused by validate")
            return
        event("accepted by validate and the loader")
        Translator.load(fuzz_bundle, backend="onnxruntime").close()  # validate passed: the SDK must load it
    finally:
        (fuzz_bundle / "manifest.json").write_text(text)


# ---------------------------------------------------------------- images

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F", "HSV", "LAB"]


@FUZZ
@given(mode=st.sampled_from(MODES), width=st.integers(1, 90), height=st.integers(1, 90), seed=st.integers(0, 99))
def test_fuzzed_pil_images(translator: Translator, mode: str, width: int, height: int, seed: int) -> None:
    """Any mode, any size (1x90 strips too): an image of the same size back, or one ImageInputError."""
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    try:
        image = Image.fromarray(rgb).convert(mode)
    except ValueError:
        return  # a conversion PIL itself does not offer
    try:
        out = translator.translate(image, Male=0, original=ORIGINAL)
    except ImageInputError as e:
        assert mode in ("HSV", "LAB") and "mode" in str(e)
        return
    assert out.size == image.size
    assert out.mode in ("L", "LA", "RGB", "RGBA") or (out.mode == mode and mode in ("I", "I;16", "F"))


@FUZZ
@given(
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int8, bool]),
    shape=st.lists(st.integers(0, 40), min_size=1, max_size=4),
)
def test_fuzzed_numpy_images(translator: Translator, dtype, shape: list[int]) -> None:
    array = np.zeros(shape, dtype)
    try:
        out = translator.translate(array, Male=0, original=ORIGINAL)
    except ImageInputError as e:
        assert "\n" not in str(e)
        return
    assert out.shape == array.shape and out.dtype == np.uint8


def _encoded(fmt: str, size: tuple[int, int], seed: int) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def _damage(data: bytes, how: str, at: float, byte: int) -> bytes:
    i = int(at * (len(data) - 1))
    if how == "truncate":
        return data[:i]
    if how == "flip":
        return data[:i] + bytes([data[i] ^ (byte or 1)]) + data[i + 1 :]
    if how == "insert":
        return data[:i] + bytes([byte]) * 64 + data[i:]
    return data


@FUZZ
@given(
    fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO"]),
    size=st.tuples(st.integers(1, 64), st.integers(1, 64)),
    how=st.sampled_from(["truncate", "flip", "insert", "none"]),
    at=st.floats(0, 1),
    byte=st.integers(0, 255),
    seed=st.integers(0, 9),
)
def test_fuzzed_image_bytes(
    translator: Translator,
    tmp_path_factory: pytest.TempPathFactory,
    fmt: str,
    size: tuple[int, int],
    how: str,
    at: float,
    byte: int,
    seed: int,
) -> None:
    """Damaged files of every common format: decoded and edited, or one ImageInputError."""
    path = tmp_path_factory.mktemp("img") / f"x.{fmt.lower()}"
    path.write_bytes(_damage(_encoded(fmt, size, seed), how, at, byte))
    try:
        image = open_photo(path)
        out = translator.translate(image, Male=0, original=ORIGINAL)
    except ImageInputError as e:
        assert "\n" not in str(e)
        event("refused")
        return
    event("edited")
    assert out.size == image.size


# ---------------------------------------------------------------- the CLI on a hostile folder


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_folder_of_hostile_files(bundle: Path, tmp_path: Path) -> None:
    """One run over good, damaged, oversized and mislabelled files: each bad file one `error:` line, the good
    ones written, exit 2 at the end; no input changed, no earlier output lost, no temp file left."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    rng = np.random.default_rng(0)
    good = {
        "good.png": _encoded("PNG", (32, 32), 1),
        "tall.jpg": _encoded("JPEG", (24, 40), 2),
        "tiny.bmp": _encoded("BMP", (1, 1), 3),
    }
    bad = {
        "empty.png": b"",
        "text.jpg": b"hello",
        "cut.png": _encoded("PNG", (32, 32), 4)[:60],
        "noise.webp": rng.integers(0, 256, 500, dtype=np.uint8).tobytes(),
        "gif-as.png": _damage(_encoded("GIF", (20, 20), 5), "truncate", 0.5, 0),
    }
    for name, data in {**good, **bad}.items():
        (src / name).write_bytes(data)
    (out / "empty.png").write_bytes(b"an earlier result")  # a failing input must not clobber it
    before = {p.name: _sha(p) for p in src.iterdir()}
    result = CliRunner().invoke(
        app,
        [
            "translate",
            str(src),
            "-b",
            str(bundle),
            "--backend",
            "onnxruntime",
            "--crop",
            "--set",
            "Male=0",
            "--original",
            "Black_Hair=1",
            "--original",
            "Male=1",
            "--original",
            "Young=0",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert sorted(line.split(": ")[1].rsplit("/", 1)[-1] for line in errors) == sorted(bad)
    assert {p.name: _sha(p) for p in src.iterdir()} == before
    assert (out / "empty.png").read_bytes() == b"an earlier result"
    assert sorted(p.name for p in out.iterdir()) == sorted([*good, "empty.png"])  # no temp file left
