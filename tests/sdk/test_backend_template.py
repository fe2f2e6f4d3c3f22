"""The backend template and the Bundle object (issue 26): bookkeeping in the base class, each artifact verified
once per Bundle, each backend's availability checked once by `stargan info` and reused by `load`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stargan_sdk import Translator
from stargan_sdk.backends import registry
from stargan_sdk.backends.base import Backend, Plan
from stargan_sdk.backends.onnxruntime import OrtBackend
from stargan_sdk.bundle import folder as folder_module
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.cli.stargan import bundle_report
from stargan_sdk.errors import BackendUnavailableError, BundleError, ImageInputError, StarGANError


class Doubler(Backend):
    """A backend that doubles its input: the template with nothing engine-specific but a counter."""

    name = "doubler"
    accepted_options = ("fail_load",)
    checks = 0

    @classmethod
    def check_impl(cls, bundle: Bundle, device: int, options: dict[str, Any]) -> Plan:
        cls.checks += 1
        return Plan("always", bundle.artifact("generator", "onnx", "fp32"))

    def load_impl(self, plan: Plan) -> None:
        self.made = True
        if self.options.get("fail_load"):
            raise RuntimeError("engine refused")

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"output": feeds["image"] * 2}

    def close_impl(self) -> None:
        self.made = False


def _feeds(n: int, size: int, c: int) -> dict[str, np.ndarray]:
    return {"image": np.full((n, 3, size, size), 0.25, np.float32), "label": np.zeros((n, c), np.float32)}


def test_the_base_class_does_the_bookkeeping(bundle: Path) -> None:
    opened = Bundle.open(bundle)
    s, c = opened.image_size, opened.c_dim
    Doubler.checks = 0
    assert Doubler.availability(opened).ok
    b = Doubler(opened, max_batch=2)
    with pytest.raises(StarGANError, match="not loaded"):
        b.infer(_feeds(1, s, c))
    with b:
        b.load()  # idempotent
        assert Doubler.checks == 1  # availability's verdict reused by load
        np.testing.assert_array_equal(b.infer(_feeds(2, s, c))["output"], np.full((2, 3, s, s), 0.5, np.float32))
        assert [o["output"].shape[0] for o in b.infer_batches([_feeds(1, s, c), _feeds(2, s, c)])] == [1, 2]
        for feeds, message in (
            ({"image": _feeds(1, s, c)["image"]}, "'label' missing"),
            (_feeds(3, s, c), "batch of 3 exceeds max_batch 2"),
            (_feeds(1, s + 4, c), rf"expected image \[N, 3, {s}, {s}\]"),
            ({**_feeds(2, s, c), "label": np.zeros((1, c), np.float32)}, "'label' has shape"),
        ):
            with pytest.raises(ImageInputError, match=message):
                b.infer(feeds)
        with pytest.raises(ImageInputError, match="batch of 3"):  # every batch checked before any runs
            b.infer_batches([_feeds(1, s, c), _feeds(3, s, c)])
        assert b.graph_batches() == [] and b.input_shapes() is None and b.compile_count == 0
        with pytest.raises(BackendUnavailableError, match="does not split"):
            b.timed_infer(_feeds(1, s, c))
    assert not b.loaded and not b.made
    b.close()  # idempotent


def test_a_failed_load_is_cleaned_up(bundle: Path) -> None:
    b = Doubler(Bundle.open(bundle), fail_load=True)
    b.made = None
    with pytest.raises(RuntimeError, match="engine refused"):
        b.load()
    assert not b.loaded and b.made is False  # close_impl ran


def test_a_refusal_is_kept_on_the_bundle(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Counter()
    real = OrtBackend.check_impl.__func__

    def counted(cls, *args):
        calls["ort"] += 1
        return real(cls, *args)

    monkeypatch.setattr(OrtBackend, "check_impl", classmethod(counted))
    opened = Bundle.open(bundle)
    for _ in range(3):
        assert not OrtBackend.availability(opened, precision="int8").ok
    with pytest.raises(BackendUnavailableError, match="no int8 generator"):
        OrtBackend(opened, precision="int8").load()
    assert calls["ort"] == 1


def test_translator_verifies_each_artifact_once(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: Counter[str] = Counter()
    real = folder_module.verify_artifact

    def counted(folder, artifact, manifest=None):
        seen[artifact.file] += 1
        return real(folder, artifact, manifest)

    monkeypatch.setattr(folder_module, "verify_artifact", counted)
    with Translator.load(bundle, backend="auto") as t:
        assert t.bundle is not None and t.bundle.folder == bundle
        assert t.describe()["bundle"] == str(bundle)
    assert seen and max(seen.values()) == 1, seen


def test_info_checks_each_backend_once(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[str] = Counter()
    for name in registry.backend_names():
        cls = registry.backend_class(name)
        real = cls.check_impl.__func__

        def counted(klass, *args, _real=real, _name=name):
            calls[_name] += 1
            return _real(klass, *args)

        monkeypatch.setattr(cls, "check_impl", classmethod(counted))
    report = bundle_report(bundle)
    assert set(calls) == set(registry.backend_names()) and set(calls.values()) == {1}, calls
    assert report["auto"] == registry.select_backend("auto", bundle)[0].name


def test_bundle_verdicts_are_kept_and_failures_raised_again(bundle_copy: Path) -> None:
    opened = Bundle.open(bundle_copy)
    art = opened.require("classifier", "onnx")
    with open(bundle_copy / art.file, "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 4)
    with pytest.raises(BundleError, match="corrupted"):
        opened.verified(art)
    with pytest.raises(BundleError, match="corrupted"):
        opened.verified(art)
    assert opened.status(art).startswith(f"{art.file} is corrupted")
    with pytest.raises(BundleError, match="has no int8 generator"):
        opened.require("generator", "onnx", "int8")
    assert Bundle.of(opened) is opened and Bundle.of(bundle_copy, read_manifest(bundle_copy)).folder == bundle_copy
