"""The main graph of a small self-contained ONNX model as plain values: nodes in order and initializers as numpy.

Usage: graph = read_graph(Path("classifier.onnx").read_bytes())  # graph.nodes[0].op, graph.initializers["w"]

Read with the same protobuf walk as `onnx_refs` (the SDK imports neither onnx nor torch), so a GPU backend can
run the bundle's classifier with the framework it already has. Only what a Conv chain needs is decoded:
float32 and int64 tensors held in the file, and int, float, ints and string attributes; anything else is a
`BundleError`, which callers treat as "not a graph I run".
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from stargan_sdk.bundle.onnx_refs import _fields, _packed, _sub
from stargan_sdk.errors import BundleError

_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_SPARSE_INITIALIZER = 1, 5, 11, 12, 15
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 1, 2, 4, 5, 7
_ATTR_NAME, _ATTR_F, _ATTR_I, _ATTR_S, _ATTR_INTS, _ATTR_TYPE = 1, 2, 3, 4, 8, 20
_FLOAT, _INT, _STRING, _INTS = 1, 2, 3, 7  # AttributeProto.AttributeType
_T_DIMS, _T_TYPE, _T_FLOATS, _T_INT64S, _T_NAME, _T_RAW, _T_EXTERNAL, _T_LOCATION = 1, 2, 4, 7, 8, 9, 13, 14
_DTYPES = {1: np.dtype("<f4"), 7: np.dtype("<i8")}  # TensorProto.FLOAT, INT64


class Node(NamedTuple):
    op: str  # domain-qualified when not the default domain
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, int | float | bytes | tuple[int, ...]]


class Graph(NamedTuple):
    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    inputs: list[str]  # graph inputs that are not initializers
    outputs: list[str]


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(buf: memoryview, span: tuple[int, int]) -> str:
    return bytes(buf[span[0] : span[1]]).decode("utf-8", "replace")


def _attribute(buf: memoryview, start: int, stop: int) -> tuple[str, int | float | bytes | tuple[int, ...]]:
    name, kind, f, i, text, ints = "", 0, 0.0, 0, b"", []
    for number, wire, v in _fields(buf, start, stop):
        if number == _ATTR_NAME and wire == 2:
            name = _text(buf, v)
        elif number == _ATTR_TYPE and wire == 0:
            kind = v
        elif number == _ATTR_F and wire == 5:
            f = struct.unpack("<f", buf[v[0] : v[1]])[0]
        elif number == _ATTR_I and wire == 0:
            i = _signed(v)
        elif number == _ATTR_S and wire == 2:
            text = bytes(buf[v[0] : v[1]])
        elif number == _ATTR_INTS:
            ints += [_signed(x) for x in (_packed(buf, *v) if wire == 2 else [v])]
    values = {_FLOAT: f, _INT: i, _STRING: text, _INTS: tuple(ints)}
    if kind not in values:
        raise BundleError(f"ONNX attribute {name!r} is of a kind ({kind}) this reader does not decode")
    return name, values[kind]


def _node(buf: memoryview, start: int, stop: int) -> Node:
    inputs, outputs, attributes, op, domain = [], [], {}, "", ""
    for number, wire, span in _fields(buf, start, stop):
        if wire != 2:
            continue
        if number == _NODE_INPUT:
            inputs.append(_text(buf, span))
        elif number == _NODE_OUTPUT:
            outputs.append(_text(buf, span))
        elif number == _NODE_OP_TYPE:
            op = _text(buf, span)
        elif number == _NODE_DOMAIN:
            domain = _text(buf, span)
        elif number == _NODE_ATTRIBUTE:
            key, value = _attribute(buf, *span)
            attributes[key] = value
    return Node(op if domain in ("", "ai.onnx") else f"{domain}.{op}", tuple(inputs), tuple(outputs), attributes)


def _tensor(buf: memoryview, start: int, stop: int) -> tuple[str, np.ndarray]:
    dims, dtype, name, raw, floats, int64s = [], 0, "", None, [], []
    for number, wire, v in _fields(buf, start, stop):
        if number == _T_DIMS:
            dims += [_signed(d) for d in (_packed(buf, *v) if wire == 2 else [v])]
        elif number == _T_TYPE and wire == 0:
            dtype = v
        elif number == _T_NAME and wire == 2:
            name = _text(buf, v)
        elif number == _T_RAW and wire == 2:
            raw = bytes(buf[v[0] : v[1]])
        elif number == _T_FLOATS:
            floats.append(np.frombuffer(buf[v[0] : v[1]], "<f4"))
        elif number == _T_INT64S:
            int64s += [_signed(i) for i in (_packed(buf, *v) if wire == 2 else [v])]
        elif number in (_T_EXTERNAL, _T_LOCATION) and (wire == 2 or v):
            raise BundleError(f"ONNX tensor {name or '?'} keeps its data outside the file")
    if dtype not in _DTYPES or any(d < 0 for d in dims):
        raise BundleError(f"ONNX tensor {name!r} has data type {dtype} or dims {dims} this reader does not decode")
    count = int(np.prod(dims)) if dims else 1
    if raw is not None:
        if len(raw) != count * _DTYPES[dtype].itemsize:
            raise BundleError(f"ONNX tensor {name!r}: {len(raw)} bytes for dims {dims}")
        array = np.frombuffer(raw, _DTYPES[dtype])
    else:
        array = np.concatenate(floats) if dtype == 1 and floats else np.array(int64s, _DTYPES[dtype])
        if array.size != count:
            raise BundleError(f"ONNX tensor {name!r}: {array.size} values for dims {dims}")
    return name, array.astype(_DTYPES[dtype].newbyteorder("="), copy=True).reshape(dims)


def read_graph(data: bytes) -> Graph:
    """The main graph of a serialized ONNX ModelProto; BundleError where it holds what this reader does not decode."""
    try:
        return _read_graph(memoryview(data))
    except (ValueError, TypeError, KeyError, IndexError, struct.error) as e:  # a field of an unexpected wire type
        raise BundleError(f"ONNX graph holds a field this reader does not decode ({type(e).__name__}: {e})") from None


def _read_graph(buf: memoryview) -> Graph:
    span = _sub(buf, 0, len(buf), _MODEL_GRAPH)
    if span is None:
        raise BundleError("ONNX model has no graph")
    nodes, initializers, inputs, outputs = [], {}, [], []
    for number, wire, v in _fields(buf, *span):
        if wire != 2:
            continue
        if number == _GRAPH_NODE:
            nodes.append(_node(buf, *v))
        elif number == _GRAPH_INITIALIZER:
            key, array = _tensor(buf, *v)
            initializers[key] = array
        elif number == _GRAPH_SPARSE_INITIALIZER:
            raise BundleError("ONNX graph has sparse initializers, which this reader does not decode")
        elif number in (_GRAPH_INPUT, _GRAPH_OUTPUT):
            name = _text(buf, _sub(buf, *v, 1) or (0, 0))
            (inputs if number == _GRAPH_INPUT else outputs).append(name)
    return Graph(nodes, initializers, [i for i in inputs if i not in initializers], outputs)
