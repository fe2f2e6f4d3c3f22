"""Loading a bundle never executes code from it: no torch.export archive is opened, weights come from
safetensors; and the torch backend's close() while other threads infer gives clean errors, not a crash."""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from stargan_sdk import Translator
from stargan_sdk.bundle.manifest import sha256_file
from stargan_sdk.errors import BundleError, StarGANError


class _Payload:
    """Unpickling this creates a marker file: proof that something unpickled the bundle's file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant_pickle(bundle: Path, marker: Path) -> Path:
    evil = bundle / "generator.pt2"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    return evil


def test_a_manifest_listing_a_torch_export_archive_is_refused_unopened(bundle_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = _plant_pickle(bundle_copy, marker)
    data = json.loads((bundle_copy / "manifest.json").read_text())
    data["artifacts"].append(
        {
            **data["artifacts"][0],
            "kind": "torch_export",
            "file": evil.name,
            "sha256": sha256_file(evil),
            "opset": None,
            "parity": None,
        }
    )
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    for backend, options in (("torch", {"device_type": "cpu"}), ("onnxruntime", {})):
        with pytest.raises(BundleError, match="torch.export archive, which runs code when loaded") as info:
            Translator.load(bundle_copy, backend=backend, **options)
        assert "\n" not in str(info.value)
    assert not marker.exists()


def test_the_torch_backend_reads_only_safetensors(bundle_copy: Path, tmp_path: Path, translator: Translator) -> None:
    pytest.importorskip("torch")
    marker = tmp_path / "ran"
    _plant_pickle(bundle_copy, marker)  # a stray archive beside the listed files is never opened
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    c = np.eye(2, 5, dtype=np.float32)
    with Translator.load(bundle_copy, backend="torch", device_type="cpu") as t:
        np.testing.assert_allclose(t.infer(x, c), translator.infer(x, c), atol=1e-4)
    assert not marker.exists()


def test_closing_while_other_threads_infer_gives_clean_errors(bundle: Path) -> None:
    pytest.importorskip("torch")
    t = Translator.load(bundle, backend="torch", device_type="cpu")
    x = np.zeros((1, 3, 32, 32), np.float32)
    c = np.zeros((1, 5), np.float32)
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(30):
            try:
                t.infer(x, c)
            except StarGANError:
                pass  # "closed" / "not loaded": the clean outcomes
            except BaseException as e:  # anything else (TypeError on a vanished module) is the defect
                errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    t.close()
    for th in threads:
        th.join()
    assert not errors, errors
