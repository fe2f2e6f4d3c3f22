"""The HTTP front's request checks without a server: the audit's crashing bodies, valid KServe requests (JSON and
binary), and fuzzed bodies, which always end in a refusal or a request that matches the model's config."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stargan_sdk.serve.guard import MAX_DEPTH, Guard, ModelLimits

CONFIG = {
    "max_batch_size": 8,
    "input": [
        {"name": "image", "data_type": "TYPE_FP32", "dims": [3, 4, 4]},
        {"name": "label", "data_type": "TYPE_FP32", "dims": [5]},
    ],
}
EDIT = {
    "max_batch_size": 8,
    "input": [
        {"name": "image", "data_type": "TYPE_STRING", "dims": [1]},
        {"name": "changes", "data_type": "TYPE_STRING", "dims": [1]},
    ],
}
GUARD = Guard({"stargan": ModelLimits.from_config(CONFIG), "stargan_edit": ModelLimits.from_config(EDIT)})
INFER = "/v2/models/stargan/infer"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _json_request(n: int, shape: list[int] | None = None) -> dict:
    return {
        "inputs": [
            {"name": "image", "shape": shape or [n, 3, 4, 4], "datatype": "FP32", "data": [0.5] * (n * 48)},
            {"name": "label", "shape": [n, 5], "datatype": "FP32", "data": [[1, 0, 0, 1, 0]] * n},
        ]
    }


def test_valid_json_and_binary_requests_pass() -> None:
    assert GUARD.check("POST", INFER, {}, json.dumps(_json_request(3)).encode()) is None
    assert (
        GUARD.check("POST", "/v2/models/stargan/versions/1/infer?x=1", {}, json.dumps(_json_request(1)).encode())
        is None
    )
    image, label = np.zeros((2, 3, 4, 4), np.float32).tobytes(), np.zeros((2, 5), np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [2, 3, 4, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(image)},
                },
                {"name": "label", "shape": [2, 5], "datatype": "FP32", "parameters": {"binary_data_size": len(label)}},
            ],
            "outputs": [{"name": "output", "parameters": {"binary_data": True}}],
        }
    ).encode()
    headers = {"inference-header-content-length": str(len(header))}
    assert GUARD.check("POST", INFER, headers, header + image + label) is None
    assert GUARD.check("POST", INFER, headers, header + image + label + b"x")[0] == 400  # more bytes than declared
    assert GUARD.check("GET", "/v2/health/ready", {}, b"") is None


def test_the_audits_crashing_bodies_are_refused() -> None:
    assert GUARD.check("POST", INFER, {}, b"[" * 200_000) == (
        400,
        f"the request JSON is nested too deep (at most {MAX_DEPTH} levels)",
    )
    for batch in (2**40, 2**63 - 1, 2**64, 0, -1, 9):
        status, message = GUARD.check("POST", INFER, {}, json.dumps(_json_request(1, [batch, 3, 4, 4])).encode())
        assert status == 400 and f"batch {batch} is outside 1..8" in message
    status, message = GUARD.check("POST", INFER, {}, json.dumps(_json_request(1, [1, 3, 4, 2**40])).encode())
    assert status == 400 and "must have shape [batch, 3, 4, 4]" in message
    digits = (
        b'{"inputs": [{"name": "image", "shape": [1, 3, 4, 4], "datatype": "FP32", "data": [' + b"9" * 5000 + b"]}]}"
    )
    assert "not valid JSON" in GUARD.check("POST", INFER, {}, digits)[1]
    assert GUARD.check("POST", "/v2/models/other/infer", {}, b"{}")[0] == 404
    assert GUARD.check("POST", "/v2/repository/index", {}, b"[" * 50_000)[0] == 400  # every JSON body is checked
    deep_ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert GUARD.check("POST", "/v2/repository/index", {}, deep_ok) is None
    assert GUARD.check("POST", "/v2/repository/index", {}, b"[" + deep_ok + b"]")[0] == 400


def test_value_counts_and_datatypes_must_match() -> None:
    request = _json_request(2)
    request["inputs"][0]["data"] = request["inputs"][0]["data"][:-1]
    assert (
        "has 95 values; its shape [2, 3, 4, 4] needs 96"
        in GUARD.check("POST", INFER, {}, json.dumps(request).encode())[1]
    )
    request = _json_request(1)
    request["inputs"][1]["datatype"] = "INT64"
    assert "must have datatype FP32" in GUARD.check("POST", INFER, {}, json.dumps(request).encode())[1]
    request["inputs"][1] = {"name": "secret", "shape": [1], "datatype": "FP32", "data": [1]}
    assert "unknown input 'secret'" in GUARD.check("POST", INFER, {}, json.dumps(request).encode())[1]


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=40,
)
_shapes = st.lists(st.one_of(st.integers(-3, 10), st.sampled_from([2**31, 2**40, 2**63 - 1, 2**64])), max_size=6)


@FUZZ
@given(
    name=st.sampled_from(["image", "label", "x"]),
    dtype=st.sampled_from(["FP32", "BYTES", "FP64", 3]),
    shape=_shapes,
    data=_values,
    extra=_values,
)
def test_fuzzed_inference_requests_are_refused_or_match_the_config(name, dtype, shape, data, extra) -> None:
    body = json.dumps(
        {"inputs": [{"name": name, "datatype": dtype, "shape": shape, "data": data}], "x": extra}
    ).encode()
    refusal = GUARD.check("POST", INFER, {}, body)
    if refusal is None:  # then it is exactly what the model takes
        dims = {"image": [3, 4, 4], "label": [5]}[name]
        assert dtype == "FP32" and shape[1:] == dims and 1 <= shape[0] <= 8
        assert math.prod(shape) <= 8 * 48
    else:
        assert refusal[0] in (400, 404) and len(refusal[1]) < 600


@FUZZ
@given(raw=st.binary(max_size=300), header=st.text(max_size=12))
def test_fuzzed_bytes_never_raise(raw, header) -> None:
    for path in (INFER, "/v2/models/stargan_edit/infer", "/v2/logging"):
        refusal = GUARD.check("POST", path, {"inference-header-content-length": header}, raw)
        assert refusal is None or refusal[0] in (400, 404)
