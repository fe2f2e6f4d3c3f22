"""Triton Inference Server model repository from a bundle: `<name>/config.pbtxt` + `<name>/1/model.{plan,onnx,py}`.

Usage: write_triton_repository("bundle", "model_repository", backend="onnxruntime", max_batch=64, instances=2)

`tensorrt` and `onnxruntime` write a platform model for NVIDIA's Triton containers; `python` writes the
python-backend repository that runs the SDK (`stargan_sdk.serve.triton_repo`), which any Triton loads, the one in
the nvidia-pytriton wheel included. Torch-free: configs come from `stargan_sdk.serve.triton_config`, which checks
tensor names and dtypes before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from stargan_export.errors import ExportError
from stargan_sdk.bundle.manifest import Artifact, Manifest, read_manifest, verify_artifact
from stargan_sdk.errors import StarGANError
from stargan_sdk.host.files import atomic_write_bytes, atomic_write_text
from stargan_sdk.serve.triton_config import KINDS, VERSION, ModelSpec, Tensor, check_model_name, model_config
from stargan_sdk.serve.triton_repo import write_python_repository

BACKENDS = {
    "tensorrt": ("tensorrt_plan", "model.plan"),
    "onnxruntime": ("onnxruntime_onnx", "model.onnx"),
    "python": ("python", "model.py"),
}
PLATFORM_FILES = ("model.plan", "model.onnx")


def _pick_artifact(manifest: Manifest, backend: str, precision: str) -> Artifact:
    if backend == "tensorrt":
        engine = manifest.artifact("generator", "tensorrt")
        if engine is None:
            raise ExportError(
                "the bundle has no TensorRT engine; rebuild it with `stargan-export build --engine` "
                "on a GPU machine, or use --backend onnxruntime"
            )
        if engine.precision != precision:
            raise ExportError(
                f"the bundle's engine is {engine.precision}, not {precision}; pass --precision {engine.precision}"
            )
        return engine
    graph = manifest.artifact("generator", "onnx", precision)
    if graph is None:
        raise ExportError(f"the bundle has no {precision} ONNX generator (build with --fp16 for fp16)")
    return graph


def _check_options(backend: str, max_batch: int, instances: int, name: str, precision: str, kind: str) -> None:
    if backend not in BACKENDS:
        raise ExportError(f"unknown backend {backend!r}: choose {', '.join(BACKENDS)}")
    if kind not in KINDS:
        raise ExportError(f"unknown instance kind {kind!r}: choose gpu or cpu")
    if backend == "tensorrt" and kind != "gpu":
        raise ExportError("a TensorRT plan runs only on a GPU instance (--kind gpu)")
    if precision not in ("fp32", "fp16"):
        raise ExportError(f"unknown precision {precision!r}: choose fp32 or fp16")
    if max_batch < 1 or instances < 1:
        raise ExportError(f"--max-batch and --instances must be >= 1, got {max_batch} and {instances}")
    try:
        check_model_name(name)
    except StarGANError as e:
        raise ExportError(str(e)) from None


def _platform_config(manifest: Manifest, name: str, backend: str, max_batch: int, instances: int, kind: str) -> str:
    tensors = [
        tuple(Tensor(s.name, s.dtype, tuple(s.shape[1:])) for s in group)
        for group in (manifest.inputs, manifest.outputs)
    ]
    return model_config(
        ModelSpec(name, tensors[0], tensors[1]),
        backend=BACKENDS[backend][0],
        max_batch=max_batch,
        instances=instances,
        kind=kind,
        platform=True,
    )


def _external_name(name: str) -> str:
    """An external-data file name as the repository may use it: a plain file name, nothing outside the folder."""
    if Path(name).name != name or name in (".", ".."):
        raise ExportError(f"external data {name!r} is not a plain file name; re-export the bundle")
    return name


def written_models(out: str | Path, backend: str, model_name: str = "stargan") -> list[Path]:
    """The model folders `write_triton_repository` writes for `backend` (python: generator, classifier, edit)."""
    if backend != "python":
        return [Path(out) / model_name]
    names = (model_name, f"{model_name}_classifier", f"{model_name}_edit")
    return [Path(out) / n for n in names if (Path(out) / n / "config.pbtxt").is_file()]


def write_triton_repository(
    bundle_dir: str | Path,
    out_dir: str | Path,
    *,
    backend: str = "tensorrt",
    max_batch: int = 64,
    instances: int = 1,
    model_name: str = "stargan",
    precision: str = "fp32",
    kind: str = "gpu",
) -> Path:
    """Write (atomically, file by file) the model(s) into a repository folder; returns the model folder.
    Everything is checked (options, tensor names, dtypes, checksums) before the first file is written."""
    _check_options(backend, max_batch, instances, model_name, precision, kind)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"output path {out} is a file; give a folder for the model repository")
    try:
        if backend == "python":
            return write_python_repository(
                bundle_dir, out, model_name=model_name, max_batch=max_batch, instances=instances, kind=kind
            )
        return _write_platform_model(Path(bundle_dir), out, backend, max_batch, instances, model_name, precision, kind)
    except ExportError:
        raise
    except StarGANError as e:
        raise ExportError(str(e)) from None


def _write_platform_model(
    bundle: Path, out: Path, backend: str, max_batch: int, instances: int, model_name: str, precision: str, kind: str
) -> Path:
    manifest = read_manifest(bundle)
    artifact = _pick_artifact(manifest, backend, precision)
    if artifact.profile is not None and not (artifact.profile.min == 1 and max_batch <= artifact.profile.max):
        raise ExportError(
            f"the engine's profile covers batches {artifact.profile.min}..{artifact.profile.max}; "
            f"Triton needs 1..{max_batch} (rebuild with --min-batch 1 --max-batch {max_batch})"
        )
    text = _platform_config(manifest, model_name, backend, max_batch, instances, kind)
    source = verify_artifact(bundle, artifact, manifest)  # checks the external-data files' sha256 too
    external = [_external_name(name) for name in (artifact.external_data or {})]
    filename = BACKENDS[backend][1]
    model_dir = out / model_name
    (model_dir / VERSION).mkdir(parents=True, exist_ok=True)
    for name in external:  # beside model.onnx, where ONNX Runtime looks for them (paths are relative to the graph)
        atomic_write_bytes(model_dir / VERSION / name, (bundle / name).read_bytes())
    atomic_write_bytes(model_dir / VERSION / filename, source.read_bytes())
    atomic_write_text(model_dir / "config.pbtxt", text)
    for other in set(PLATFORM_FILES + ("model.py",)) - {filename}:
        (model_dir / VERSION / other).unlink(missing_ok=True)  # a repository switched between backends
    return model_dir
