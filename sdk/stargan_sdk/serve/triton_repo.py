"""A Triton python-backend model repository for a bundle: the generator, its classifier and an edit model.

Usage: write_python_repository("models/toyfaces-64", "model_repository", max_batch=16, instances=2)

Layout: `<name>/` (generator: image + label -> output; its config carries the bundle's manifest so remote
clients know the attributes), `<name>_classifier/` (image -> logits, when the bundle has a classifier) and
`<name>_edit/` (encoded image + JSON changes -> base64 PNG). Each has `config.pbtxt` and `1/model.py`, which
runs the SDK (`stargan_sdk.serve.triton_python_model`). The bundle lives in `<name>/bundle` (copied, or linked for
`stargan serve`). Every config is built and checked before the first file is written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from stargan_sdk.backends.registry import backend_names
from stargan_sdk.bundle.constants import INPUT_IMAGE, MANIFEST_NAME
from stargan_sdk.bundle.manifest import Manifest, TensorSpec, read_manifest, verify_artifact
from stargan_sdk.errors import StarGANError
from stargan_sdk.host.files import atomic_write_bytes, atomic_write_text
from stargan_sdk.serve.models import EDIT_CHANGES, EDIT_IMAGE, EDIT_ORIGINAL, EDIT_OUTPUT, LOGITS
from stargan_sdk.serve.triton_config import VERSION, ModelSpec, Tensor, check_model_name, model_config

MODEL_PY = (
    '"""Triton python-backend model: a StarGAN bundle run by the stargan SDK '
    '(pip install "stargan[onnxruntime]")."""\n\n'
    "from stargan_sdk.serve.triton_python_model import TritonPythonModel  # noqa: F401\n"
)
BUNDLE_DIR = "bundle"


def _tensor(spec: TensorSpec) -> Tensor:
    return Tensor(spec.name, spec.dtype, tuple(spec.shape[1:]))  # drop "N": Triton prepends the batch dim


def model_specs(
    manifest: Manifest, name: str, backend: str, threads: int | None = None, precision: str | None = None
) -> list[tuple[ModelSpec, str]]:
    """(spec, role) per model; the generator's spec publishes the manifest for remote clients. `precision`: the
    backend option (e.g. "fp32", "int8"; None: the backend's own default), checked by the backend when it loads."""
    check_model_name(name)
    known = ("auto", *backend_names())
    if backend not in known:
        raise StarGANError(f"unknown SDK backend {backend!r}; choose {', '.join(known)}")
    image = next(_tensor(s) for s in manifest.inputs if s.name == INPUT_IMAGE)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise StarGANError(f"threads must be a positive integer or None, got {threads!r}")
    common = {
        "backend": backend,
        **({"threads": str(threads)} if threads else {}),
        **({"precision": precision} if precision else {}),
    }
    generator = ModelSpec(
        name,
        tuple(_tensor(s) for s in manifest.inputs),
        tuple(_tensor(s) for s in manifest.outputs),
        {
            **common,
            "role": "generator",
            "bundle": BUNDLE_DIR,
            "manifest": json.dumps(manifest.to_dict(), separators=(",", ":")),
        },
    )
    shared = {**common, "bundle": f"../{name}/{BUNDLE_DIR}"}
    specs = [(generator, "generator")]
    if manifest.artifact(role="classifier", kind="onnx") is not None:
        logits = Tensor(LOGITS, "float32", (manifest.c_dim,))
        classifier = ModelSpec(f"{name}_classifier", (image,), (logits,), {**shared, "role": "classifier"})
        specs.append((classifier, "classifier"))
    edit_inputs = tuple(Tensor(n, "bytes", (1,)) for n in (EDIT_IMAGE, EDIT_CHANGES, EDIT_ORIGINAL))
    specs.append(
        (
            ModelSpec(f"{name}_edit", edit_inputs, (Tensor(EDIT_OUTPUT, "bytes", (1,)),), {**shared, "role": "edit"}),
            "edit",
        )
    )
    return specs


def model_py(sdk_path: Path | None = None) -> str:
    """model.py; with `sdk_path`, it imports the SDK from that folder first. Triton's python stub runs an isolated
    interpreter (PYTHONPATH ignored), which would otherwise import whichever stargan_sdk the environment
    installed, not the one of the `stargan serve` that wrote the repository."""
    if sdk_path is None:
        return MODEL_PY
    pin = f"import sys\n\nsys.path.insert(0, {str(sdk_path)!r})  # the SDK of the stargan serve that wrote this\n"
    return MODEL_PY.replace("\n\nfrom stargan_sdk", "\n\n" + pin + "\nfrom stargan_sdk", 1)


def _optional_original(text: str) -> str:
    """The edit model's `original` input may be left out (the classifier estimates it)."""
    marker = f'    name: "{EDIT_ORIGINAL}"\n'
    return text.replace(marker, marker + "    optional: true\n")


def write_python_repository(
    bundle_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    model_name: str = "stargan",
    backend: str = "auto",
    max_batch: int = 16,
    instances: int = 1,
    kind: str = "cpu",
    queue_delay_us: int = 100,
    threads: int | None = None,
    link_bundle: bool = False,
    sdk_path: Path | None = None,
    precision: str | None = None,
) -> Path:
    """Write the repository (atomically, file by file; the bundle copied or, with link_bundle, symlinked);
    returns the generator's model folder. `threads`: CPU threads per instance (None: the backend's default);
    `sdk_path`: the folder holding the stargan_sdk package the models must import (see `model_py`); `precision`:
    the CPU backend's precision in every model instance (None: its default, "auto" on OpenVINO)."""
    bundle = Path(bundle_dir).resolve()
    manifest = read_manifest(bundle)
    configs = []
    for spec, role in model_specs(manifest, model_name, backend, threads, precision):
        text = model_config(
            spec, backend="python", max_batch=max_batch, instances=instances, kind=kind, queue_delay_us=queue_delay_us
        )
        configs.append((spec.name, _optional_original(text) if role == "edit" else text))
    files = [verify_artifact(bundle, a, manifest) for a in manifest.artifacts]  # damaged bundles fail before writing
    files += [bundle / name for a in manifest.artifacts for name in (a.external_data or {})]  # ONNX external data
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StarGANError(f"output path {out} is a file; give a folder for the model repository")
    for name, text in configs:
        (out / name / VERSION).mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / name / VERSION / "model.py", model_py(sdk_path))
        for stale in ("model.onnx", "model.plan"):  # a repository switched from a platform backend
            (out / name / VERSION / stale).unlink(missing_ok=True)
        atomic_write_text(out / name / "config.pbtxt", text)
    _place_bundle(bundle, files, out / model_name / BUNDLE_DIR, link_bundle)
    return out / model_name


def _place_bundle(bundle: Path, files: list[Path], dest: Path, link: bool) -> None:
    if dest.is_symlink() or (dest.exists() and link):
        dest.unlink() if dest.is_symlink() else shutil.rmtree(dest)
    if link:
        dest.symlink_to(bundle, target_is_directory=True)
        return
    dest.mkdir(exist_ok=True)
    for src in files:
        atomic_write_bytes(dest / src.name, src.read_bytes())
    manifest = (bundle / MANIFEST_NAME).read_bytes()  # last: a folder with a manifest is complete
    atomic_write_bytes(dest / MANIFEST_NAME, manifest)
