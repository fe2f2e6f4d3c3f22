"""What the HTTP front lets through to tritonserver: JSON it can parse safely and tensors its models accept.

Usage: guard = Guard({"stargan": ModelLimits.from_config(config)}); refusal = guard.check("POST", path, headers, body)

The tritonserver binary crashes on some single requests (a body of 200,000 unclosed `[` overflows its JSON
parser's stack; a declared shape of [2^40, 3, 64, 64] aborts it in an allocation). Python's JSON parser bounds
the nesting (RecursionError) and the integers (4,300 digits) itself, so a request is parsed here first, its
nesting held to MAX_DEPTH, and an inference request's declared inputs checked against the model's config: known
names, the config's datatype, a batch of 1..max_batch_size, the config's dims, as many values as the shape
says. A refusal is (HTTP status, message); None lets the request through unchanged.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

MAX_DEPTH = 32  # a KServe request nests ~8 levels (body, inputs, input, data as [N][C][H][W])
MAX_FREE_DIM = 1 << 16  # a dim the config leaves free (-1) may not exceed this
TRITON_TYPES = {
    "TYPE_FP32": "FP32",
    "TYPE_FP16": "FP16",
    "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES",
    "TYPE_INT8": "INT8",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_UINT8": "UINT8",
    "TYPE_BOOL": "BOOL",
}
_MODEL_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/[^/]+)?/(infer|generate|generate_stream)")
Refusal = tuple[int, str]


@dataclass(frozen=True)
class ModelLimits:
    """A model's max batch and its inputs: name -> (KServe datatype, dims without the batch dimension)."""

    max_batch: int
    inputs: dict[str, tuple[str, tuple[int, ...]]]

    @classmethod
    def from_config(cls, config: dict) -> ModelLimits:
        """From Triton's model configuration JSON (GET /v2/models/NAME/config)."""
        inputs = {
            t["name"]: (TRITON_TYPES.get(t["data_type"], t["data_type"]), tuple(int(d) for d in t["dims"]))
            for t in config.get("input", [])
        }
        return cls(int(config.get("max_batch_size") or 0), inputs)


def _load(text: bytes) -> tuple[object, str | None]:
    try:
        value = json.loads(text)
    except RecursionError:
        return None, f"the request JSON is nested too deep (at most {MAX_DEPTH} levels)"
    except (ValueError, UnicodeDecodeError) as e:  # malformed, or an integer of thousands of digits
        return None, f"the request body is not valid JSON: {str(e)[:200]}"
    return value, None


def _depth_and_count(value: object) -> tuple[int, int]:
    """(nesting depth, number of scalars) without recursion."""
    depth, count, todo = 0, 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (list, dict)):
            depth = max(depth, level)
            if depth > MAX_DEPTH:
                return depth, count
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
        else:
            count += 1
    return depth, count


class Guard:
    """Checks each request before it reaches tritonserver (see the module docstring)."""

    def __init__(self, models: dict[str, ModelLimits]) -> None:
        self.models = models

    def check(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Refusal | None:
        match = _MODEL_PATH.fullmatch(path.split("?", 1)[0])
        if match is None:
            return self._plain_json(body)
        model = self.models.get(match[1])
        if model is None:
            return 404, f"no model named {match[1]!r} is served here (models: {', '.join(sorted(self.models))})"
        if match[2] != "infer":
            return self._plain_json(body)
        return self._infer(model, headers, body)

    def _plain_json(self, body: bytes) -> Refusal | None:
        if not body:
            return None
        value, error = _load(body)
        if error is None and _depth_and_count(value)[0] > MAX_DEPTH:
            error = f"the request JSON is nested too deep (at most {MAX_DEPTH} levels)"
        return (400, error) if error else None

    def _infer(self, model: ModelLimits, headers: dict[str, str], body: bytes) -> Refusal | None:
        size = headers.get("inference-header-content-length")
        if size is not None and not (size.isascii() and size.isdigit() and int(size) <= len(body)):
            return 400, f"Inference-Header-Content-Length {size[:20]!r} is not a length within the body"
        header_len = int(size) if size is not None else len(body)
        request, error = _load(body[:header_len])
        if error:
            return 400, error
        if _depth_and_count(request)[0] > MAX_DEPTH:
            return 400, f"the request JSON is nested too deep (at most {MAX_DEPTH} levels)"
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
            return 400, 'an inference request is a JSON object with a non-empty "inputs" list'
        binary = 0
        for tensor in request["inputs"]:
            problem, nbytes = _check_input(model, tensor)
            if problem:
                return 400, problem
            binary += nbytes
        if binary != len(body) - header_len:
            return 400, f"the inputs declare {binary} bytes of binary data, the body carries {len(body) - header_len}"
        return None


def _check_input(model: ModelLimits, tensor: object) -> tuple[str | None, int]:
    """(what is wrong with one declared input or None, its binary_data_size)."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        return "every input needs a name", 0
    name = tensor["name"]
    if name not in model.inputs:
        return f"unknown input {name[:64]!r}; this model takes {', '.join(model.inputs)}", 0
    dtype, dims = model.inputs[name]
    if tensor.get("datatype") != dtype:
        return f"input {name!r} must have datatype {dtype}, got {str(tensor.get('datatype'))[:20]!r}", 0
    shape = tensor.get("shape")
    if not (isinstance(shape, list) and all(type(d) is int for d in shape) and len(shape) == len(dims) + 1):
        return f"input {name!r} needs a shape of {len(dims) + 1} integers [batch, {', '.join(map(str, dims))}]", 0
    if not 1 <= shape[0] <= model.max_batch:
        return f"input {name!r}: batch {shape[0]} is outside 1..{model.max_batch} (the server's max batch)", 0
    for got, want in zip(shape[1:], dims):
        if (want == -1 and not 1 <= got <= MAX_FREE_DIM) or (want != -1 and got != want):
            return f"input {name!r} must have shape [batch, {', '.join(map(str, dims))}], got {shape}", 0
    params = tensor.get("parameters") or {}
    nbytes = params.get("binary_data_size") if isinstance(params, dict) else None
    if nbytes is not None:
        return (None, nbytes) if type(nbytes) is int and nbytes >= 0 else (f"input {name!r}: bad binary_data_size", 0)
    if "data" not in tensor:
        return f"input {name!r} has neither data nor binary_data_size", 0
    count = _depth_and_count(tensor["data"])[1]
    if count != math.prod(shape):
        return f"input {name!r} has {count} values; its shape {shape} needs {math.prod(shape)}", 0
    return None, 0
