"""Translator through the public API: export -> Translator.load -> translate, checked against `infer`."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stargan_sdk import Translator
from stargan_sdk.errors import AttributeNameError, AttributeValueError, ImageInputError, StarGANError

ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


def expected(t: Translator, image: np.ndarray, label: list[float]) -> np.ndarray:
    """What translate must return, computed by hand on the raw path."""
    x = t.normalizer.preprocess(image[None])
    return t.normalizer.postprocess(t.infer(x, np.asarray([label], np.float32)))[0]


def test_load_exposes_bundle_facts(translator: Translator) -> None:
    assert translator.attributes == ATTRS
    assert translator.image_size == 32 and translator.backend_name == "onnxruntime"
    assert translator.manifest.c_dim == 5 and translator.classifier is not None
    assert translator.describe()["providers"] == ["CPUExecutionProvider"]


def test_translate_with_original_equals_infer_on_hand_built_label(translator: Translator, face: np.ndarray) -> None:
    original = {"Black_Hair": 1, "Male": 1, "Young": 0}
    out = translator.translate(face, Blond_Hair=1, original=original)
    assert out.dtype == np.uint8 and out.shape == face.shape
    np.testing.assert_array_equal(out, expected(translator, face, [0, 1, 0, 1, 0]))
    same = translator.translate(face, {"Blond_Hair": True}, original=original)  # dict form, bool value
    np.testing.assert_array_equal(same, out)
    assert not np.array_equal(out, translator.translate(face, Young=1, original=original))  # labels matter


def test_changes_apply_on_top_of_the_classifier_estimate(translator: Translator, face: np.ndarray) -> None:
    estimate = translator.estimate(face)
    assert set(estimate) == set(ATTRS) and sum(estimate[a] for a in ATTRS[:3]) == 1
    label = [float(estimate[a]) for a in ATTRS]
    label[4] = 1.0 - label[4]  # flip Young, keep everything else as estimated
    out = translator.translate(face, Young=1 - estimate["Young"])
    np.testing.assert_array_equal(out, expected(translator, face, label))


def test_pil_in_pil_out_matches_numpy_path(translator: Translator, face: np.ndarray) -> None:
    original = {"Brown_Hair": 1, "Male": 0, "Young": 1}
    pil = translator.translate(Image.fromarray(face), Male=1, original=original)
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and pil.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(pil), translator.translate(face, Male=1, original=original))
    big = translator.translate(Image.fromarray(face).resize((80, 80)), Male=1, original=original)
    assert big.size == (80, 80)
    grey = translator.translate(Image.fromarray(face).convert("L"), Male=1, original=original)
    assert grey.mode == "L" and grey.size == (32, 32)


def test_translate_all_is_the_figure_row(translator: Translator, face: np.ndarray) -> None:
    original = {"Black_Hair": 1, "Male": 1, "Young": 0}
    row = translator.translate_all(face, original=original)
    assert list(row) == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male=0", "Young=1"]
    edits = [{"Black_Hair": 1}, {"Blond_Hair": 1}, {"Brown_Hair": 1}, {"Male": 0}, {"Young": 1}]
    for (name, image), change in zip(row.items(), edits):
        np.testing.assert_array_equal(image, translator.translate(face, change, original=original), err_msg=name)


def test_translate_batch_per_image_changes(translator: Translator) -> None:
    images = np.random.default_rng(3).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    changes = [{"Blond_Hair": 1}, {"Male": 0}, {}]
    original = {"Black_Hair": 1, "Male": 1, "Young": 1}
    out = translator.translate_batch(images, changes, original=original)
    assert isinstance(out, np.ndarray) and out.shape == images.shape
    for image, change, result in zip(images, changes, out):
        np.testing.assert_array_equal(result, translator.translate(image, change, original=original))
    as_list = translator.translate_batch(list(images), {"Young": 0}, original=original)
    assert isinstance(as_list, list) and len(as_list) == 3


def test_large_batches_are_split_by_max_batch(bundle: Path, translator: Translator) -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (5, 3, 32, 32)).astype(np.float32)
    c = np.eye(5, dtype=np.float32)
    with Translator.load(bundle, backend="onnxruntime", max_batch=2) as small:
        assert small.backend.max_batch == 2
        np.testing.assert_allclose(small.infer(x, c), translator.infer(x, c), atol=1e-5)


def test_eight_threads_give_single_thread_results(translator: Translator) -> None:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    changes = [{ATTRS[i % 5]: 1} for i in range(8)]
    original = {"Brown_Hair": 1, "Male": 0, "Young": 0}
    reference = [translator.translate(im, ch, original=original) for im, ch in zip(images, changes)]
    results: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            start.wait()
            results[i] = [translator.translate(images[i], changes[i], original=original) for _ in range(3)]
        except BaseException as e:  # surfaced below, a thread's exception would otherwise be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for i in range(8):
        for got in results[i]:
            np.testing.assert_array_equal(got, reference[i])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda t, f: t.translate(f, Blonde_Hair=1), AttributeNameError, "did you mean Blond_Hair"),
        (lambda t, f: t.translate(f, Male=0.5), AttributeValueError, "0/1"),
        (lambda t, f: t.translate(f, {"Male": 1}, Male=0), AttributeValueError, "both in the dict"),
        (lambda t, f: t.translate(f, ["Male"]), AttributeValueError, "must be a dict"),
        (lambda t, f: t.translate(f, Blond_Hair=1, Brown_Hair=1), AttributeValueError, "exclusive"),
        (lambda t, f: t.translate(f, original={"Male": 1}), AttributeValueError, "missing"),
        (lambda t, f: t.translate(f.astype(np.float32) / 255), ImageInputError, "uint8"),
        (lambda t, f: t.translate([f, f]), ImageInputError, "translate_batch"),
        (lambda t, f: t.translate_batch([]), ImageInputError, "empty batch"),
        (lambda t, f: t.translate_batch(f), ImageInputError, "uint8 \\[N, H, W, C\\]"),
        (lambda t, f: t.translate_batch([f, f], [{}]), AttributeValueError, "one per image"),
        (lambda t, f: t.translate_batch([f], original=[{}, {}]), AttributeValueError, "2 originals for 1"),
    ],
)
def test_bad_translate_input(translator: Translator, face: np.ndarray, call, error, message) -> None:
    with pytest.raises(error, match=message):
        call(translator, face)


def _x(n: int = 2) -> np.ndarray:
    return np.zeros((n, 3, 32, 32), np.float32)


@pytest.mark.parametrize(
    "images, labels, error, message",
    [
        (_x(0), np.zeros((0, 5), np.float32), ImageInputError, "empty batch"),
        (_x().astype(np.float64), np.zeros((2, 5), np.float32), ImageInputError, "float32 images"),
        (np.zeros((2, 3, 16, 16), np.float32), np.zeros((2, 5), np.float32), ImageInputError, "\\[N, 3, 32, 32\\]"),
        (_x(), np.zeros((2, 4), np.float32), AttributeValueError, "labels \\[2, 5\\]"),
        (_x(), np.zeros((3, 5), np.float32), AttributeValueError, "labels \\[2, 5\\]"),
        (_x() + np.float32(np.nan), np.zeros((2, 5), np.float32), ImageInputError, "finite"),
        (_x() + 200, np.zeros((2, 5), np.float32), ImageInputError, "normalised"),
        (_x(), np.full((2, 5), np.inf, np.float32), AttributeValueError, "NaN or infinity"),
    ],
)
def test_bad_infer_input(translator: Translator, images, labels, error, message) -> None:
    with pytest.raises(error, match=message):
        translator.infer(images, labels)


def test_without_classifier_original_is_required(bundle_copy: Path, face: np.ndarray) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["role"] != "classifier"]
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with Translator.load(bundle_copy, backend="onnxruntime") as t:
        assert t.classifier is None
        with pytest.raises(AttributeValueError, match="no classifier.*original="):
            t.translate(face, Male=1)
        assert t.translate(face, Male=1, original={"Blond_Hair": 1, "Male": 0, "Young": 1}).shape == face.shape


def test_a_celeba_aligned_face_is_edited_at_its_own_size(translator: Translator) -> None:
    """178x218 (CelebA aligned): the centre 178x178 square is edited as in training, the result has the
    input's size, and only that square changed."""
    face = np.random.default_rng(9).integers(0, 256, (218, 178, 3), dtype=np.uint8)
    original = {"Black_Hair": 1, "Male": 1, "Young": 0}
    out = translator.translate(face, Blond_Hair=1, original=original)
    assert out.shape == face.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:20], face[:20])
    np.testing.assert_array_equal(out[198:], face[198:])
    np.testing.assert_array_equal(out[20:198], translator.translate(face[20:198], Blond_Hair=1, original=original))
    pil = translator.translate(Image.fromarray(face), Blond_Hair=1, original=original)
    assert pil.size == (178, 218)
    np.testing.assert_array_equal(np.asarray(pil), out)


def test_closed_translator_refuses_work(bundle: Path, face: np.ndarray) -> None:
    t = Translator.load(bundle, backend="onnxruntime")
    t.close()
    with pytest.raises(StarGANError, match="closed"):
        t.translate(face, Male=1)
    with pytest.raises(StarGANError, match="closed"):
        t.estimate(face)


def test_large_batches_are_prepared_in_chunks(translator: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays bounded: at most CHUNK_PIXELS of float tensors exist at once, results are unchanged."""
    import stargan_sdk.translator as translator_mod

    images = np.random.default_rng(5).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    originals = [{"Black_Hair": i % 2, "Male": 1, "Young": 0} for i in range(7)]
    whole = translator.translate_batch(images, {"Blond_Hair": 1}, original=originals)
    monkeypatch.setattr(translator_mod, "CHUNK_PIXELS", 3 * 32 * 32)
    seen: list[int] = []
    real = translator.infer
    monkeypatch.setattr(translator, "infer", lambda x, c: (seen.append(len(x)), real(x, c))[1])
    chunked = translator.translate_batch(images, {"Blond_Hair": 1}, original=originals)
    assert seen == [3, 3, 1]
    np.testing.assert_array_equal(chunked, whole)


def test_translate_photo_edits_only_the_face_region(translator: Translator) -> None:
    photo = np.random.default_rng(6).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    out = translator.translate_photo(
        photo, Blond_Hair=1, original={"Black_Hair": 1, "Male": 0, "Young": 1}, detector=lambda rgb: [(30, 20, 20, 20)]
    )
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert not np.array_equal(out, photo)
    np.testing.assert_array_equal(out[:, :10], photo[:, :10])  # far from the face: untouched
    with pytest.raises(AttributeNameError):
        translator.translate_photo(photo, Blue_Hair=1, detector=lambda rgb: [])
