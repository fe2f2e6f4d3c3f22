"""What a served model does with one batch of requests, without Triton: each request checked on its own."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from stargan_sdk.errors import ImageInputError
from stargan_sdk.serve.models import MAX_PIXELS, ClassifierModel, EditModel, GeneratorModel, decode_image


def _request(translator, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    s, c = translator.image_size, translator.manifest.c_dim
    return {
        "image": rng.uniform(-1, 1, (n, 3, s, s)).astype(np.float32),
        "label": rng.integers(0, 2, (n, c)).astype(np.float32),
    }


def test_bad_requests_get_their_own_error_and_the_rest_of_the_batch_runs(translator) -> None:
    good = [_request(translator, n, seed) for n, seed in ((1, 0), (3, 1), (2, 2))]
    nan = _request(translator, 1, 3)
    nan["label"][0, 0] = np.nan
    wide = _request(translator, 1, 4)
    wide["image"] *= 2
    results = GeneratorModel(translator).run([good[0], nan, good[1], wide, good[2], {"image": good[0]["image"]}])
    assert results[1] == "label contains NaN or infinity"
    assert "in [-1, 1]" in results[3] and "needs the inputs" in results[5]
    for request, result in zip(good, (results[0], results[2], results[4])):
        np.testing.assert_allclose(result["output"], translator.infer(request["image"], request["label"]), atol=1e-5)


def test_classifier_model_returns_the_bundles_logits(translator) -> None:
    request = _request(translator, 2, 0)
    [result] = ClassifierModel(translator).run([request])
    np.testing.assert_allclose(result["logits"], translator.classifier.logits(request["image"]), atol=1e-6)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _edit(image: bytes, changes: object) -> dict[str, np.ndarray]:
    return {
        "image": np.array([[image]], dtype=np.object_),
        "changes": np.array([[json.dumps(changes).encode()]], dtype=np.object_),
    }


def test_edit_model_accepts_raw_or_base64_bytes_and_crops_non_square(translator, face) -> None:
    png = _png(face)
    wide = _png(np.concatenate([face, face[:, :8]], axis=1))  # 40x32: centre-cropped to 32x32
    results = EditModel(translator).run(
        [
            _edit(png, {"Blond_Hair": 1}),
            _edit(base64.b64encode(png), {"Blond_Hair": 1}),
            _edit(wide, {"Male": 1}),
            _edit(b"\x89PNG broken", {}),
            _edit(png, ["x"]),
        ]
    )
    first = np.asarray(Image.open(io.BytesIO(base64.b64decode(results[0]["edited"][0, 0]))))
    assert np.array_equal(first, translator.translate(face, Blond_Hair=1))
    assert results[1]["edited"][0, 0] == results[0]["edited"][0, 0]
    assert Image.open(io.BytesIO(base64.b64decode(results[2]["edited"][0, 0]))).size == (32, 32)
    assert "could not be decoded" in results[3] and "JSON object" in results[4]


def test_decode_image_refuses_huge_images_before_decoding(monkeypatch) -> None:
    monkeypatch.setattr("stargan_sdk.serve.models.MAX_PIXELS", 100)
    with pytest.raises(ImageInputError, match="at most 100 pixels"):
        decode_image(_png(np.zeros((11, 10, 3), np.uint8)))
    assert MAX_PIXELS >= 4096 * 4096


def _poison_edits(png: bytes) -> list[dict[str, np.ndarray]]:
    """The audit's poisoned `stargan_edit` requests: JSON 100,000 levels deep, a 5,000-digit integer, as
    `changes` and as `original`, and a nesting shallow enough for json but odd for the attribute logic."""
    deep, digits = "[" * 100_000 + "]" * 100_000, "9" * 5000

    def raw(changes: str, original: str | None = None) -> dict[str, np.ndarray]:
        request = {
            "image": np.array([[png]], dtype=np.object_),
            "changes": np.array([[changes.encode()]], dtype=np.object_),
        }
        if original is not None:
            request["original"] = np.array([[original.encode()]], dtype=np.object_)
        return request

    return [
        raw(deep),
        raw(f'{{"Blond_Hair": {digits}}}'),
        raw('{"Male": 1}', original=deep),
        raw('{"Male": 1}', original=f'{{"Male": {digits}}}'),
        raw('{"Blond_Hair": ' + "[" * 500 + "]" * 500 + "}"),
        raw(f'{{"{digits}": 1}}'),
    ]


def test_poisoned_edit_requests_fail_alone_without_tracebacks(translator, face) -> None:
    from stargan_sdk.serve.models import Refusal

    png = _png(face)
    poison = _poison_edits(png)
    good = [_edit(png, {"Blond_Hair": 1}), _edit(png, {"Male": 1})]
    requests = [good[0], *poison[:3], good[1], *poison[3:], good[0]]
    results = EditModel(translator).run(requests)
    goods = [results[0], results[4], results[-1]]
    assert all(isinstance(r, dict) for r in goods), goods
    blond = np.asarray(Image.open(io.BytesIO(base64.b64decode(goods[0]["edited"][0, 0]))))
    assert np.array_equal(blond, translator.translate(face, Blond_Hair=1))
    assert goods[2]["edited"][0, 0] == goods[0]["edited"][0, 0]
    bad = [r for i, r in enumerate(results) if i not in (0, 4, len(results) - 1)]
    assert len(bad) == len(poison)
    for message in bad:
        assert isinstance(message, Refusal), message  # the client's mistake: 400 / INVALID_ARGUMENT
        assert "Traceback" not in message and ".py" not in message and "/" not in message
        assert len(message) <= 400
    assert "nested too deep or holds a number too long" in bad[0] and "changes" in bad[0]
    assert "original" in bad[2]


def test_any_exception_in_a_batch_stays_with_its_request(translator, monkeypatch) -> None:
    """A generator model whose engine raises a non-SDK error for one request: that request fails with a
    message naming only the exception type (the traceback goes to the log), the others get their outputs."""
    from stargan_sdk.serve.models import Failure

    model = GeneratorModel(translator)
    requests = [_request(translator, 1, seed) for seed in range(4)]
    poisoned = requests[2]["image"]
    real_infer = translator.infer

    def infer(images, labels):
        if any(np.array_equal(x, poisoned[0]) for x in images):
            raise MemoryError("/srv/secret/path.py exploded")
        return real_infer(images, labels)

    monkeypatch.setattr(translator, "infer", infer)
    results = model.run(requests)
    assert isinstance(results[2], Failure) and "MemoryError" in results[2] and "/srv" not in results[2]
    for i in (0, 1, 3):
        np.testing.assert_allclose(
            results[i]["output"], real_infer(requests[i]["image"], requests[i]["label"]), atol=1e-5
        )
