"""Triton Inference Server model repository from a bundle: `<name>/config.pbtxt` + `<name>/1/model.{plan,onnx}`.

Usage: write_triton_repository("bundle", "model_repository", backend="onnxruntime", max_batch=64, instances=2)

The config is plain protobuf text in Triton's `ModelConfig` schema (tests parse it with tritonclient's
`model_config_pb2`); dims exclude the batch dim because `max_batch_size > 0` makes Triton add it.
"""

from __future__ import annotations

import re
from pathlib import Path

from stargan_export.atomic import copy_file, write_bytes
from stargan_export.errors import ExportError
from stargan_sdk.manifest import Artifact, Manifest, TensorSpec, read_manifest, verify_artifact

BACKENDS = {"tensorrt": ("tensorrt_plan", "model.plan"), "onnxruntime": ("onnxruntime_onnx", "model.onnx")}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
VERSION = "1"
DEFAULT_QUEUE_DELAY_US = 100  # wait at most 0.1 ms to fill a batch: one 128 px image takes milliseconds


def _pick_artifact(manifest: Manifest, backend: str, precision: str) -> Artifact:
    if backend == "tensorrt":
        engine = manifest.artifact("generator", "tensorrt")
        if engine is None:
            raise ExportError("the bundle has no TensorRT engine; rebuild it with `stargan-export build --engine` "
                              "on a GPU machine, or use --backend onnxruntime")
        if engine.precision != precision:
            raise ExportError(f"the bundle's engine is {engine.precision}, not {precision}; pass --precision {engine.precision}")
        return engine
    graph = manifest.artifact("generator", "onnx", precision)
    if graph is None:
        raise ExportError(f"the bundle has no {precision} ONNX generator (build with --fp16 for fp16)")
    return graph


def _tensor(spec: TensorSpec) -> str:
    dims = ", ".join(str(d) for d in spec.shape[1:])  # drop "N": Triton prepends the batch dim
    return f'  {{\n    name: "{spec.name}"\n    data_type: {DTYPES[spec.dtype]}\n    dims: [ {dims} ]\n  }}'


def preferred_batch_sizes(max_batch: int) -> list[int]:
    """Powers of two from 4 up to max_batch (and max_batch itself): sizes the engine profile runs well."""
    sizes = [b for b in (4, 8, 16, 32, 64, 128, 256) if b < max_batch]
    return sizes + [max_batch]


def config_text(manifest: Manifest, *, name: str, platform: str, max_batch: int, instances: int, kind: str) -> str:
    inputs = ",\n".join(_tensor(s) for s in manifest.inputs)
    outputs = ",\n".join(_tensor(s) for s in manifest.outputs)
    preferred = ", ".join(str(b) for b in preferred_batch_sizes(max_batch))
    return (
        f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch}\n'
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
        f"dynamic_batching {{\n  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {DEFAULT_QUEUE_DELAY_US}\n}}\n"
        f"instance_group [\n  {{\n    count: {instances}\n    kind: {KINDS[kind]}\n  }}\n]\n"
    )


def _check_options(backend: str, max_batch: int, instances: int, name: str, precision: str, kind: str) -> None:
    if backend not in BACKENDS:
        raise ExportError(f"unknown backend {backend!r}: choose {' or '.join(BACKENDS)}")
    if kind not in KINDS:
        raise ExportError(f"unknown instance kind {kind!r}: choose gpu or cpu")
    if backend == "tensorrt" and kind != "gpu":
        raise ExportError("a TensorRT plan runs only on a GPU instance (--kind gpu)")
    if precision not in ("fp32", "fp16"):
        raise ExportError(f"unknown precision {precision!r}: choose fp32 or fp16")
    if max_batch < 1 or instances < 1:
        raise ExportError(f"--max-batch and --instances must be >= 1, got {max_batch} and {instances}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise ExportError(f"model name {name!r} must be letters, digits, '_', '-' or '.'")


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
    """Write (atomically, file by file) one model into a repository folder; returns the model folder."""
    _check_options(backend, max_batch, instances, model_name, precision, kind)
    bundle = Path(bundle_dir)
    manifest = read_manifest(bundle)
    artifact = _pick_artifact(manifest, backend, precision)
    if artifact.profile is not None and not (artifact.profile.min == 1 and max_batch <= artifact.profile.max):
        raise ExportError(f"the engine's profile covers batches {artifact.profile.min}..{artifact.profile.max}; "
                          f"Triton needs 1..{max_batch} (rebuild with --min-batch 1 --max-batch {max_batch})")
    source = verify_artifact(bundle, artifact)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"output path {out} is a file; give a folder for the model repository")
    platform, filename = BACKENDS[backend]
    model_dir = out / model_name
    copy_file(source, model_dir / VERSION / filename)
    text = config_text(manifest, name=model_name, platform=platform, max_batch=max_batch, instances=instances, kind=kind)
    write_bytes(model_dir / "config.pbtxt", text.encode())
    for other in {f for _, f in BACKENDS.values()} - {filename}:
        (model_dir / VERSION / other).unlink(missing_ok=True)  # a repository switched between backends
    return model_dir
