"""The manifest.json schema: the type, range and name rules of every field, shared by the SDK and `validate`.

Usage: check_manifest_dict(json.loads(text))  # raises ManifestError naming the field, e.g. "artifacts[1].sha256"

Only this module says what a field may hold; `stargan_sdk.bundle.manifest` builds the dataclasses after it, then
checks the fields against each other. A manifest is data from whoever wrote the bundle: every value is
checked for its JSON type before it is used, so a hostile manifest ends in one ManifestError, never in a
KeyError, a truncated float or a string where a number belongs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from stargan_sdk.errors import ManifestError

FORMAT = "stargan-bundle"
FORMAT_VERSION = 1
ARTIFACT_KINDS = ("onnx", "tensorrt", "safetensors")
REFUSED_KINDS = ("torch_export",)  # known, and refused with their own reason by manifest.validate
ROLES = ("generator", "classifier", "preprocess", "postprocess")  # the last two: uint8 boundary engines
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
GROUP_KINDS = ("exclusive", "binary", "mask")
TENSOR_DTYPES = ("float32",)  # the engine boundary is float32 in every artifact (FP16 graphs cast inside)
MAX_IMAGE_SIZE = 2048  # 4x the largest StarGAN published (256): beyond is an error, not a model
MAX_NAME = 128
MAX_LIST = 4096  # attributes, groups, artifacts: far above any real bundle
MANIFEST_MAX_BYTES = 4 << 20  # a real manifest is a few kB
SHA256 = re.compile(r"[0-9a-f]{64}")
# Printable names only: no control characters (ANSI escapes), no path separators in file names.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

TOP_REQUIRED = (
    "format",
    "format_version",
    "attributes",
    "groups",
    "image_size",
    "dataset",
    "generator",
    "artifacts",
    "source",
    "inputs",
    "outputs",
    "normalization",
)
TOP_OPTIONAL = ("producer", "created")
GENERATOR_KEYS = ("conv_dim", "c_dim", "repeat_num")


NORM_STD_RANGE = (1e-6, 1e6)  # in [0, 1] pixel units; float32 keeps these exact enough
NORM_MEAN_LIMIT = 1e6


def fail(where: str, message: str) -> None:
    raise ManifestError(f"manifest field {where}: {message}")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def obj(value: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(where, f"must be an object, got {_type_name(value)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise ManifestError(f"manifest is missing the field {where + '.' if where else ''}{missing[0]}")
    unknown = [k for k in value if k not in required + optional]
    if unknown:
        fail(
            f"{where + '.' if where else ''}{unknown[0]}",
            "is not a manifest field (misspelt, or from a newer stargan-export: re-export the bundle)",
        )
    return value


def text(value: Any, where: str, *, name: bool = False, limit: int = 4096) -> str:
    if not isinstance(value, str):
        fail(where, f"must be a string, got {_type_name(value)}")
    if name and not value.strip():
        fail(where, "must be a non-empty name")
    if name and (_CONTROL.search(value) or len(value) > MAX_NAME):
        fail(where, f"{value[:40]!r} must be printable and at most {MAX_NAME} characters")
    if len(value) > limit:
        fail(where, f"is longer than {limit} characters")
    return value


def integer(value: Any, where: str, lo: int, hi: int) -> int:
    # bool is an int in Python and 64.0 a float in JSON: both refused, never silently converted
    if isinstance(value, bool) or not isinstance(value, int):
        fail(where, f"must be an integer, got {_type_name(value)} {value!r}"[:160])
    if not lo <= value <= hi:
        fail(where, f"{value} is outside {lo}..{hi}")
    return value


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(where, f"must be a finite number, got {value!r}"[:160])
    return float(value)


def choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed or not isinstance(value, str):
        fail(where, f"{value!r} is not one of {', '.join(allowed)}"[:200])
    return value


def items(
    value: Any, where: str, check: Callable[[Any, str], Any], *, min_len: int = 0, max_len: int = MAX_LIST
) -> list[Any]:
    if not isinstance(value, (list, tuple)):  # JSON gives lists; Manifest.to_dict() gives tuples
        fail(where, f"must be a list, got {_type_name(value)}")
    if not min_len <= len(value) <= max_len:
        fail(where, f"must hold {min_len}..{max_len} entries, got {len(value)}")
    return [check(v, f"{where}[{i}]") for i, v in enumerate(value)]


def optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, where: None if value is None else check(value, where)


def _name(value: Any, where: str) -> str:
    return text(value, where, name=True)


def _group(value: Any, where: str) -> None:
    g = obj(value, where, ("name", "kind", "attributes"))
    _name(g["name"], f"{where}.name")
    choice(g["kind"], f"{where}.kind", GROUP_KINDS)
    items(g["attributes"], f"{where}.attributes", _name, min_len=1)


def _tensor(value: Any, where: str) -> None:
    t = obj(value, where, ("name", "dtype", "shape"))
    _name(t["name"], f"{where}.name")
    choice(t["dtype"], f"{where}.dtype", TENSOR_DTYPES)
    items(t["shape"], f"{where}.shape", _dim, min_len=1, max_len=8)


def _dim(value: Any, where: str) -> None:
    if value != "N":
        integer(value, where, 1, 1 << 20)


def _file(value: Any, where: str) -> None:
    name = _name(value, where)
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        fail(where, f"{name!r} must be a plain file name inside the bundle")


def _sha256(value: Any, where: str) -> None:
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        fail(where, "must be 64 lowercase hex digits (a SHA-256)")


def _profile(value: Any, where: str) -> None:
    p = obj(value, where, ("min", "opt", "max"))
    for key in ("min", "opt", "max"):
        integer(p[key], f"{where}.{key}", 1, 1 << 16)


def _parity(value: Any, where: str) -> None:
    if not isinstance(value, dict) or len(value) > 64:
        fail(where, "must be an object of at most 64 numbers")
    for key, v in value.items():
        number(v, f"{where}.{text(key, where, name=True)}")


def _external_data(value: Any, where: str) -> None:
    if not isinstance(value, dict) or len(value) > 64:
        fail(where, "must be an object of at most 64 file names -> sha256")
    for key, sha in value.items():
        _file(key, f"{where} key")
        _sha256(sha, f"{where}.{key}")


ARTIFACT_FIELDS: Mapping[str, Callable[[Any, str], Any]] = {
    "kind": lambda v, w: choice(v, w, ARTIFACT_KINDS + REFUSED_KINDS),
    "role": lambda v, w: choice(v, w, ROLES),
    "file": _file,
    "sha256": _sha256,
    "precision": lambda v, w: choice(v, w, PRECISIONS),
    "opset": optional(lambda v, w: integer(v, w, 1, 100)),
    "tensorrt_version": optional(lambda v, w: text(v, w, name=True)),
    "gpu_name": optional(lambda v, w: text(v, w, name=True)),
    "compute_capability": optional(lambda v, w: text(v, w, name=True)),
    "profile": optional(_profile),
    "parity": optional(_parity),
    "external_data": optional(_external_data),
}
ARTIFACT_REQUIRED = ("kind", "role", "file", "sha256", "precision")


def _artifact(value: Any, where: str) -> None:
    a = obj(value, where, ARTIFACT_REQUIRED, tuple(k for k in ARTIFACT_FIELDS if k not in ARTIFACT_REQUIRED))
    for key, v in a.items():
        ARTIFACT_FIELDS[key](v, f"{where}.{key}")


def _normalization(value: Any, where: str) -> None:
    n = obj(value, where, ("mean", "std"))
    for key in ("mean", "std"):
        values = items(n[key], f"{where}.{key}", number, min_len=3, max_len=3)
        # The SDK normalises in float32: a std that rounds to 0 there (1e-300) or a mean past its range (1e300)
        # would pass here and fail at load, so validate and load would disagree. Real values are in [0, 1].
        if key == "std" and not all(NORM_STD_RANGE[0] <= v <= NORM_STD_RANGE[1] for v in values):
            fail(f"{where}.std", f"must be positive, in [{NORM_STD_RANGE[0]:g}, {NORM_STD_RANGE[1]:g}], got {values}")
        if key == "mean" and not all(abs(v) <= NORM_MEAN_LIMIT for v in values):
            fail(f"{where}.mean", f"must be within ±{NORM_MEAN_LIMIT:g}, got {values}")


def _source(value: Any, where: str) -> None:
    if not isinstance(value, dict) or len(value) > 64:
        fail(where, "must be an object of at most 64 strings")
    for key, v in value.items():
        text(v, f"{where}.{text(key, where, name=True)}")


def check_manifest_dict(d: Any) -> None:
    """Raise ManifestError naming the first field whose JSON type, range or name is wrong."""
    if not isinstance(d, dict):
        raise ManifestError("manifest.json must hold a JSON object")
    if d.get("format") != FORMAT:
        raise ManifestError(
            f"not a stargan bundle manifest (format is {str(d.get('format'))[:40]!r}, expected {FORMAT!r})"
        )
    if type(d.get("format_version")) is not int or d["format_version"] != FORMAT_VERSION:  # 1.0 and true are not 1
        raise ManifestError(
            f"manifest format_version {str(d.get('format_version'))[:20]} is not supported by this SDK "
            f"(expects {FORMAT_VERSION}); re-export the bundle with a matching stargan-export"
        )
    obj(d, "", TOP_REQUIRED, TOP_OPTIONAL)
    items(d["attributes"], "attributes", _name, min_len=1)
    items(d["groups"], "groups", _group, min_len=1)
    integer(d["image_size"], "image_size", 4, MAX_IMAGE_SIZE)
    text(d["dataset"], "dataset", name=True)
    g = obj(d["generator"], "generator", GENERATOR_KEYS)
    for key in GENERATOR_KEYS:
        integer(g[key], f"generator.{key}", 0 if key == "repeat_num" else 1, 4096)
    items(d["artifacts"], "artifacts", _artifact)
    _source(d["source"], "source")
    items(d["inputs"], "inputs", _tensor, min_len=1, max_len=8)
    items(d["outputs"], "outputs", _tensor, min_len=1, max_len=8)
    _normalization(d["normalization"], "normalization")
    for key in TOP_OPTIONAL:
        if key in d:
            text(d[key], key)
