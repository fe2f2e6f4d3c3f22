"""Triton `config.pbtxt` text for a bundle's models, with every name and string checked or escaped.

Usage: text = model_config(ModelSpec("stargan", inputs, outputs), backend="python", max_batch=16, instances=1)

The text follows Triton's `ModelConfig` protobuf schema (tests parse it with tritonclient's `model_config_pb2`).
Dims exclude the batch dimension because `max_batch_size > 0` makes Triton add it. Nothing from a manifest
reaches the file unchecked: tensor and model names must be plain identifiers, dtypes come from a fixed table,
and free text (parameters) is escaped as a protobuf string, so a crafted bundle cannot add config lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stargan_sdk.errors import BundleError, StarGANError

DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "bytes": "TYPE_STRING"}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
VERSION = "1"
DEFAULT_QUEUE_DELAY_US = 100  # wait at most 0.1 ms to fill a batch: one 128 px image takes milliseconds
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Tensor:
    """One input or output: its name, dtype (a key of DTYPES) and dims without the batch dimension."""

    name: str
    dtype: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """A model's name, tensors and string parameters (passed to a python-backend model as-is)."""

    name: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    parameters: dict[str, str] = field(default_factory=dict)


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name) or name in (".", ".."):
        raise StarGANError(f"model name {name!r} must be letters, digits, '_', '-' or '.' (at most 128)")
    return name


def check_tensor(t: Tensor) -> Tensor:
    """Refuse a tensor that would write anything but a plain name, a known type and integer dims."""
    if not isinstance(t.name, str) or not _NAME.fullmatch(t.name):
        raise BundleError(
            f"tensor name {t.name!r} is not a plain identifier (letters, digits, '_', '.', '-'); "
            f"the manifest was edited — re-export the bundle"
        )
    if t.dtype not in DTYPES:
        raise BundleError(
            f"tensor {t.name!r} has dtype {t.dtype!r}, which Triton configs here do not support "
            f"(supported: {', '.join(DTYPES)})"
        )
    if not all(isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in t.dims):
        raise BundleError(f"tensor {t.name!r} has dims {list(t.dims)}; expected positive integers")
    return t


def pbtxt_string(value: str) -> str:
    """A protobuf text-format string literal: ASCII only, with backslashes, quotes and controls escaped."""
    if not isinstance(value, str):
        raise StarGANError(f"config strings must be str, got {type(value).__name__}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise StarGANError(f"config string {value!r} is not valid Unicode text") from None
    # protobuf text strings are bytes: printable ASCII as is, everything else (controls, UTF-8) as octal
    out = ["\\" + chr(b) if chr(b) in '"\\' else chr(b) if 32 <= b < 127 else f"\\{b:03o}" for b in data]
    return '"' + "".join(out) + '"'


def _tensor_text(t: Tensor) -> str:
    dims = ", ".join(str(d) for d in check_tensor(t).dims)
    return f'  {{\n    name: "{t.name}"\n    data_type: {DTYPES[t.dtype]}\n    dims: [ {dims} ]\n  }}'


def preferred_batch_sizes(max_batch: int) -> list[int]:
    """Powers of two from 4 up to max_batch (and max_batch itself): sizes the engine profile runs well."""
    sizes = [b for b in (4, 8, 16, 32, 64, 128, 256) if b < max_batch]
    return sizes + [max_batch]


def model_config(
    spec: ModelSpec,
    *,
    backend: str,
    max_batch: int,
    instances: int,
    kind: str = "cpu",
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    platform: bool = False,
) -> str:
    """config.pbtxt for one model. `backend` is a Triton backend ("python") or, with platform=True, a
    platform ("onnxruntime_onnx", "tensorrt_plan")."""
    check_model_name(spec.name)
    if kind not in KINDS:
        raise StarGANError(f"unknown instance kind {kind!r}: choose gpu or cpu")
    if max_batch < 1 or instances < 1 or queue_delay_us < 0:
        raise StarGANError(
            f"max batch and instances must be >= 1 and the queue delay >= 0, "
            f"got {max_batch}, {instances} and {queue_delay_us}"
        )
    inputs = ",\n".join(_tensor_text(t) for t in spec.inputs)
    outputs = ",\n".join(_tensor_text(t) for t in spec.outputs)
    preferred = ", ".join(str(b) for b in preferred_batch_sizes(max_batch))
    engine = f"platform: {pbtxt_string(backend)}" if platform else f"backend: {pbtxt_string(backend)}"
    text = (
        f"name: {pbtxt_string(spec.name)}\n{engine}\nmax_batch_size: {max_batch}\n"
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
        f"dynamic_batching {{\n  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
        f"instance_group [\n  {{\n    count: {instances}\n    kind: {KINDS[kind]}\n  }}\n]\n"
    )
    for key, value in spec.parameters.items():
        if not _NAME.fullmatch(key):
            raise StarGANError(f"config parameter name {key!r} is not a plain identifier")
        text += f"parameters {{\n  key: {pbtxt_string(key)}\n  value: {{ string_value: {pbtxt_string(value)} }}\n}}\n"
    return text
