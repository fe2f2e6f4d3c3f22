"""The shipped toyfaces bundle: intact, loads on the CPU, and its hair edits really recolour the hair."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stargan_sdk import Translator
from stargan_sdk.bundle.manifest import read_manifest, verify_artifact
from stargan_sdk.images.imaging import center_crop
from stargan_train.data.toyfaces import render_face, sample_params

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "toyfaces-64"
HAIR = ("Black_Hair", "Blond_Hair", "Brown_Hair")


def face_and_hair_mask(rng: np.random.Generator, hair: str, size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """A fresh toy face (CelebA crop) with the given hair colour, its hair mask at the model size, its labels."""
    params = sample_params(rng, {h: int(h == hair) for h in HAIR})
    image, masks = render_face(params)
    crop = center_crop(image)
    mask = center_crop((masks["hair"] * 255).astype(np.uint8))
    small = np.asarray(Image.fromarray(mask).resize((size, size), Image.Resampling.BILINEAR)) > 200
    return crop, small, params.labels


def hair_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return image[mask].astype(np.float64).mean(axis=0)


def test_manifest_and_checksums() -> None:
    manifest = read_manifest(BUNDLE)
    assert manifest.attributes == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    assert manifest.image_size == 64
    files = {a.file for a in manifest.artifacts}
    assert {"generator.onnx", "generator.fp16.onnx", "classifier.onnx"} <= files
    for artifact in manifest.artifacts:
        verify_artifact(BUNDLE, artifact)  # raises on a missing or altered file


def test_model_card_reports_the_shipped_checkpoints_eval() -> None:
    """eval.json was measured on the checkpoint the bundle was exported from, and the card's quality table
    quotes it: a re-export without a re-evaluation (or a stale card) fails here."""
    manifest = read_manifest(BUNDLE)
    report = json.loads((BUNDLE / "eval.json").read_text(encoding="utf-8"))
    source = Path(manifest.source["checkpoint"]).name
    assert source == f"{report['checkpoint_iteration']:06d}.ckpt"
    card = (BUNDLE / "MODEL_CARD.md").read_text(encoding="utf-8")
    accuracy = report["target_accuracy"]
    for attr, value in accuracy.items():
        row = next(line for line in card.splitlines() if line.startswith(f"| {attr}"))
        assert f"| {100 * value:.1f}% |" in row, (attr, row)
    mean = sum(accuracy.values()) / len(accuracy)
    assert f"| **{100 * mean:.1f}%** |" in card
    assert f"{report['checkpoint_iteration']:,} iterations" in card


@pytest.mark.parametrize(
    ("source", "target"), [("Black_Hair", "Blond_Hair"), ("Blond_Hair", "Black_Hair"), ("Blond_Hair", "Brown_Hair")]
)
def test_hair_edit_moves_the_hair_colour_toward_the_target(source: str, target: str) -> None:
    """Measured on fresh faces: the edited hair's mean colour ends nearer real `target` hair than it started."""
    rng = np.random.default_rng(99)
    with Translator.load(BUNDLE, backend="onnxruntime") as t:
        size = t.image_size
        reference = np.mean(
            [
                hair_colour(np.asarray(Image.fromarray(f).resize((size, size))), m)
                for f, m, _ in (face_and_hair_mask(rng, target, size) for _ in range(6))
            ],
            axis=0,
        )
        moved = []
        for _ in range(6):
            face, mask, labels = face_and_hair_mask(rng, source, size)
            small = np.asarray(Image.fromarray(face).resize((size, size), Image.Resampling.BICUBIC))
            edited = t.translate(small, {target: 1}, original=labels)
            before = np.linalg.norm(hair_colour(small, mask) - reference)
            after = np.linalg.norm(hair_colour(edited, mask) - reference)
            moved.append(after < 0.6 * before)
    assert sum(moved) >= 5, f"{source} -> {target}: only {sum(moved)}/6 edits moved the hair toward the target"


def test_card_and_readme_quote_the_counterfactual_numbers_of_eval_json() -> None:
    """The fidelity table and the README's caption come from eval.json: re-training without re-quoting fails here."""
    report = json.loads((BUNDLE / "eval.json").read_text(encoding="utf-8"))
    cf = report["counterfactual"]
    card = (BUNDLE / "MODEL_CARD.md").read_text(encoding="utf-8")
    identity = next(line for line in card.splitlines() if line.startswith("| identity (own labels)"))
    assert f"| {cf['identity']['psnr']:.2f} dB | {cf['identity']['ssim']:.3f} |" in identity, identity
    for edit, label in (*((h, h) for h in HAIR), ("Male", "Male (flip)"), ("Young", "Young (flip)")):
        row = next(line for line in card.splitlines() if line.startswith(f"| {label} |") and " dB " in line)
        assert f"| {cf[edit]['psnr']:.2f} dB | {cf[edit]['ssim']:.3f} | {cf[edit]['psnr_outside']:.2f} dB |" in row, row
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    hair = sorted(cf[h]["psnr"] for h in HAIR)
    outside = sorted(cf[h]["psnr_outside"] for h in HAIR)
    assert (
        f"identity translation is {cf['identity']['psnr']:.1f} dB PSNR (SSIM {cf['identity']['ssim']:.2f})"
        in " ".join(readme.split())
    )
    assert f"{hair[0]:.1f}–{hair[-1]:.1f} dB from their true counterfactual" in " ".join(readme.split())
    assert f"{outside[0]:.1f}–{outside[-1]:.1f} dB outside the hair" in " ".join(readme.split())
    assert f"({100 * report['mean_target_accuracy']:.1f}% by an independent classifier)" in readme


def test_shipped_int8_model_is_what_cpus_without_bf16_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """generator.int8.onnx: recorded PSNR >= the auto bar and quoted by the card; on a CPU without BF16 `auto`
    runs it, and on fresh faces (not the calibration set) it stays above the bar against FP32."""
    from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB, psnr_db
    from stargan_sdk.images.imaging import Normalizer

    art = read_manifest(BUNDLE).artifact(role="generator", kind="onnx", precision="int8")
    assert art is not None and art.parity["usable"] == 1.0 and art.parity["psnr_db"] >= AUTO_INT8_MIN_PSNR_DB
    assert f"{art.parity['psnr_db']:.1f} dB" in (BUNDLE / "MODEL_CARD.md").read_text(encoding="utf-8")
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'stargan[openvino]')")
    rng = np.random.default_rng(2027)
    faces = [
        np.asarray(
            Image.fromarray(center_crop(render_face(sample_params(rng))[0])).resize((64, 64), Image.Resampling.BICUBIC)
        )
        for _ in range(16)
    ]
    x, c = Normalizer().preprocess(np.stack(faces)), np.eye(5, dtype=np.float32)[rng.integers(0, 5, 16)]
    with Translator.load(BUNDLE, backend="onnxruntime") as t:
        reference = t.infer(x, c)
    monkeypatch.setenv("STARGAN_CPU_CAPABILITIES", "FP32,INT8")  # what an AVX2-only CPU reports
    with Translator.load(BUNDLE, backend="auto") as t:
        info = t.describe()
        assert (info["backend"], info["precision"], info["file"]) == ("openvino", "int8", "generator.int8.onnx")
        assert psnr_db(reference, t.infer(x, c)) >= AUTO_INT8_MIN_PSNR_DB


# Absolute paths as a build machine writes them: a POSIX path under a usual top-level folder, or a drive letter.
MACHINE_PATH = re.compile(
    rb"(?<![\w.~-])/(?:work|home|tmp|root|Users|mnt|var|opt|srv|data|scratch|private)/"
    rb"|(?<![\w])[A-Za-z]:[\\/](?:Users|work|home)[\\/]"
)


def test_no_shipped_file_names_a_path_of_the_machine_that_built_it() -> None:
    """eval.json, the card, the manifest and the weights themselves: file names and relative paths only."""
    shipped = sorted(p for p in (ROOT / "models").rglob("*") if p.is_file())
    assert {p.name for p in shipped} >= {"eval.json", "MODEL_CARD.md", "manifest.json", "generator.onnx"}
    here = [str(ROOT).encode(), str(Path.home()).encode()]  # and this machine's own, whatever its layout
    for path in shipped:
        data = path.read_bytes()
        found = MACHINE_PATH.search(data)
        assert found is None, f"{path.relative_to(ROOT)}: {data[found.start() : found.start() + 60]!r}"
        assert not any(h in data for h in here if len(h) > 1), path.relative_to(ROOT)


def test_the_machine_path_pattern_catches_what_it_is_for() -> None:
    for text in (b'"/work/artifacts/run/008500.ckpt"', b"see /home/me/x", b"C:\\Users\\me\\x", b"(/tmp/run)"):
        assert MACHINE_PATH.search(text), text
    for text in (
        b"i17/ft2/run/checkpoints/008500.ckpt",
        b"models/toyfaces-64/eval.json",
        b"docs/example-face.png",
        b"https://github.com/yunjey/stargan",
    ):
        assert MACHINE_PATH.search(text) is None, text
