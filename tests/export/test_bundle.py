"""build_bundle: manifest contents and round trip, atomic/interrupted builds, input errors, sources."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stargan_export import bundle as bundle_mod
from stargan_export.bundle import build_bundle
from stargan_export.errors import EngineUnavailableError, ExportError
from stargan_export.sources import load_sources, parse_attributes
from stargan_export.tensorrt_build import engine_unavailable_reason
from stargan_sdk.bundle.manifest import Manifest, read_manifest

ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_describes_the_bundle(tiny_bundle, official_checkpoint):
    m = read_manifest(tiny_bundle)
    assert m.attributes == ATTRS and m.image_size == 32 and m.dataset == "celeba"
    assert m.generator == {"conv_dim": 8, "c_dim": 5, "repeat_num": 2}
    assert [(g.name, g.kind) for g in m.groups] == [("hair_color", "exclusive"), ("binary", "binary")]
    assert [(a.file, a.kind, a.precision) for a in m.artifacts] == [
        ("generator.onnx", "onnx", "fp32"),
        ("generator.fp16.onnx", "onnx", "fp16"),
        ("classifier.onnx", "onnx", "fp32"),
        ("generator.safetensors", "safetensors", "fp32"),
    ]
    for a in m.artifacts:
        assert a.sha256 == _sha(tiny_bundle / a.file)
        assert a.opset == (None if a.kind == "safetensors" else 17)
        assert a.parity is not None and a.parity["max_abs"] <= (0.05 if a.precision == "fp16" else 1e-4)
    assert m.artifact("generator", "onnx", "fp32").parity["max_batch_checked"] == 16
    # the file name only: never the builder's absolute path
    assert m.source["checkpoint"] == official_checkpoint.name == "1000-G.ckpt"
    assert m.source["classifier_checkpoint"] == "1000-D.ckpt"
    assert m.source["sha256"] == _sha(official_checkpoint) and m.source["kind"] == "official"
    assert m.source["classifier_sha256"] == _sha(official_checkpoint.with_name("1000-D.ckpt"))
    assert m.producer.startswith("stargan-export ") and m.created.endswith("+00:00")
    assert [(t.name, t.shape) for t in m.inputs] == [("image", ("N", 3, 32, 32)), ("label", ("N", 5))]
    files = sorted(p.name for p in tiny_bundle.iterdir())
    assert files == sorted(["manifest.json"] + [a.file for a in m.artifacts])  # no staging/temp leftovers


def test_manifest_round_trip(tiny_bundle):
    m = read_manifest(tiny_bundle)
    assert Manifest.from_dict(m.to_dict()) == m
    assert Manifest.from_dict(json.loads((tiny_bundle / "manifest.json").read_text())) == m


def test_interrupted_build_leaves_no_manifest(official_checkpoint, tmp_path, monkeypatch):
    seen: list[str] = []

    def crash(model):
        staging = next(tmp_path.glob(".out.staging-*"))
        seen.extend(p.name for p in staging.iterdir())
        raise RuntimeError("injected crash after the FP32 ONNX file was written")

    monkeypatch.setattr(bundle_mod, "onnx_fp32_to_fp16", crash)
    with pytest.raises(RuntimeError, match="injected"):
        build_bundle(
            official_checkpoint,
            tmp_path / "out",
            attributes=ATTRS,
            image_size=32,
            opt_batch=2,
            max_batch=2,
            torch_weights=False,
            engine=False,
        )
    assert "generator.onnx" in seen
    assert list(tmp_path.iterdir()) == []  # no bundle folder, no half-moved artifacts, no staging


def test_out_path_that_is_a_file_is_refused(official_checkpoint, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        build_bundle(official_checkpoint, target, attributes=ATTRS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "official checkpoint without attribute names: pass 5 names"),
        ({"attributes": ATTRS[:3]}, "3 attribute names given but the generator takes c_dim 5"),
        ({"attributes": ATTRS, "opset": 12}, "unsupported opset 12"),
        ({"attributes": ATTRS, "image_size": 30}, "multiple of 4"),
        ({"attributes": ATTRS, "min_batch": 4, "opt_batch": 2}, "1 <= min <= opt <= max"),
        ({"attributes": ("A", "A", "B", "C", "D")}, "attribute names repeat"),
    ],
)
def test_bad_inputs_raise_one_line_errors(official_checkpoint, tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=message) as info:
        build_bundle(official_checkpoint, tmp_path / "out", **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()  # bad input never creates the folder


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(ExportError, match="checkpoint not found"):
        build_bundle(tmp_path / "nope-G.ckpt", tmp_path / "out", attributes=ATTRS)
    corrupt = tmp_path / "200000-G.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(ExportError, match="corrupt or truncated"):
        build_bundle(corrupt, tmp_path / "out", attributes=ATTRS)


@pytest.mark.skipif(engine_unavailable_reason() is None, reason="TensorRT and a GPU are present here")
def test_engine_auto_skips_with_one_line_and_forced_engine_fails(official_checkpoint, tmp_path):
    with pytest.raises(EngineUnavailableError, match=r"pip install stargan\[tensorrt\]"):
        build_bundle(official_checkpoint, tmp_path / "out", attributes=ATTRS, engine=True)
    notes: list[str] = []
    assert bundle_mod._want_engine(None, notes.append) is False
    assert len(notes) == 1 and "no TensorRT engine built" in notes[0] and "stargan[tensorrt]" in notes[0]


def test_attribute_lists_accept_commas_and_repeats():
    assert parse_attributes(["Black_Hair,Blond_Hair", "Male"]) == ("Black_Hair", "Blond_Hair", "Male")
    assert parse_attributes(None) is None and parse_attributes([]) is None


def test_our_checkpoint_supplies_attributes_and_size(tmp_path):
    from stargan_train.checkpoint import TrainState, capture_rng, save_checkpoint
    from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig
    from stargan_train.model import Discriminator, Generator

    config = RunConfig(
        generator=GeneratorConfig(conv_dim=8, c_dim=3, repeat_num=1),
        discriminator=DiscriminatorConfig(image_size=32, conv_dim=8, c_dim=3, repeat_num=2),
        data=DataConfig(dataset="toyfaces", image_size=32, selected_attrs=("Black_Hair", "Blond_Hair", "Male")),
    )
    G, D = Generator.from_config(config.generator), Discriminator.from_config(config.discriminator)
    save_checkpoint(tmp_path / "run", TrainState(10, config, G.state_dict(), D.state_dict(), {}, {}, capture_rng()))
    src = load_sources(tmp_path / "run", attributes=None, image_size=None, classifier=True)
    assert src.attributes == ("Black_Hair", "Blond_Hair", "Male") and src.image_size == 32
    assert src.dataset == "toyfaces" and src.discriminator is not None
    assert torch.equal(src.generator.model.state_dict()["main.0.weight"], G.state_dict()["main.0.weight"])
    with pytest.raises(ExportError, match="trained at 32 px"):
        load_sources(tmp_path / "run", attributes=None, image_size=64, classifier=False)
    with pytest.raises(ExportError, match="trained with attributes"):
        load_sources(tmp_path / "run", attributes=["Male", "Young", "Black_Hair"], image_size=None, classifier=False)


JOINT = ATTRS + (
    "angry",
    "contemptuous",
    "disgusted",
    "fearful",
    "happy",
    "neutral",
    "sad",
    "surprised",
    "mask_celeba",
    "mask_rafd",
)


def test_joint_classifier_has_exactly_one_logit_per_attribute(official_joint_checkpoint, tmp_path):
    """An official joint pair: G takes 15 labels, D's 13 logits become classifier.onnx's 13 outputs."""
    import onnxruntime as ort

    from stargan_export.parity import sample_images
    from stargan_export.validate import validate_bundle
    from stargan_sdk import Translator
    from stargan_train.weights import load_discriminator

    out = tmp_path / "joint"
    m = build_bundle(
        official_joint_checkpoint,
        out,
        attributes=JOINT,
        image_size=32,
        classifier=True,
        fp16=False,
        torch_weights=False,
        engine=False,
    )
    assert m.dataset == "both" and m.c_dim == 15
    session = ort.InferenceSession(str(out / "classifier.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[1] == 13
    image = sample_images(3, 32, seed=5)
    D = load_discriminator(official_joint_checkpoint).model.eval()
    with torch.inference_mode():
        expected = D(torch.from_numpy(image))[1].numpy()
    actual = session.run(["logits"], {"image": image})[0]
    assert actual.shape == (3, 13) and abs(actual - expected).max() < 1e-4
    assert [r.status for r in validate_bundle(out)] == ["ok", "ok"]
    with Translator.load(out, backend="onnxruntime") as t:
        estimate = t.estimate(np.uint8(127.5 * (image[0].transpose(1, 2, 0) + 1)))
    assert list(estimate) == list(JOINT[:13]) and sum(estimate[e] for e in JOINT[5:13]) == 1  # one expression


def test_a_joint_discriminator_with_mask_logits_is_refused(official_joint_checkpoint, tmp_path):
    """A plain 15-logit D (no run config to say where it came from) cannot be a joint classifier."""
    shutil.copy(official_joint_checkpoint, tmp_path / "1000-G.ckpt")
    raw = torch.load(official_joint_checkpoint.with_name("1000-D.ckpt"), weights_only=True)
    raw["conv2.weight"] = torch.cat([raw["conv2.weight"], torch.zeros(2, *raw["conv2.weight"].shape[1:])])
    torch.save(raw, tmp_path / "1000-D.ckpt")
    with pytest.raises(
        ExportError,
        match=r"has 15 logits; the classifier needs one per attribute, 13 "
        r"\(the mask entries have no logits\)",
    ):
        load_sources(tmp_path / "1000-G.ckpt", attributes=JOINT, image_size=32, classifier=True)
    assert load_sources(tmp_path / "1000-G.ckpt", attributes=JOINT, image_size=32, classifier=False).dataset == "both"
