"""What an ONNX model declares (external-data files, operators, constant sizes, the main graph's I/O tensors),
read with a protobuf wire-format walk (no onnx import).

Usage: names = external_locations(Path("generator.onnx").read_bytes())  # {"generator.onnx.data"}

A byte pattern misses names of 128+ bytes (two-byte varint length) and entries written value-before-key, so
the walk follows the ONNX message layout (onnx.proto3 field numbers) to every TensorProto and reads its
`external_data` entries as real messages. The SDK must import without torch or onnx, hence no dependency.
"""

from __future__ import annotations

from stargan_sdk.errors import BundleError

# (message, field number) -> the message type that field holds; fields not listed are skipped.
_CHILDREN = {
    ("model", 7): "graph",
    ("model", 25): "function",
    ("function", 7): "node",
    ("graph", 1): "node",
    ("graph", 5): "tensor",
    ("graph", 15): "sparse",
    ("node", 5): "attribute",
    ("attribute", 5): "tensor",
    ("attribute", 6): "graph",
    ("attribute", 10): "tensor",
    ("attribute", 11): "graph",
    ("attribute", 22): "sparse",
    ("attribute", 23): "sparse",
    ("sparse", 1): "tensor",
    ("sparse", 2): "tensor",
}
_TENSOR_EXTERNAL_DATA = 13  # TensorProto.external_data: repeated StringStringEntryProto {1: key, 2: value}
_TENSOR_DIMS = 1  # TensorProto.dims: repeated int64 (packed or not)
_NODE_OP_TYPE, _NODE_DOMAIN = 4, 7
_GRAPH_INPUT, _GRAPH_OUTPUT, _TENSOR_NAME = 11, 12, 8  # GraphProto.input/.output (ValueInfoProto), TensorProto.name
_INT64_SIGN = 1 << 63  # varints are unsigned on the wire; an int64 dim of -1 arrives as 2^64 - 1
_MAX_DEPTH = 64  # subgraphs nest (If/Loop bodies); deeper is not a real export


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise BundleError("ONNX file is truncated or not a protobuf (bad varint)")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, pos: int, end: int):
    """(field number, wire type, value) per field in buf[pos:end]: varints as ints, other values as (start, stop)."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            value, pos = (pos, pos + 8), pos + 8  # fixed 64-bit: its span, read by whoever wants it
        elif wire == 5:
            value, pos = (pos, pos + 4), pos + 4  # fixed 32-bit (a float attribute)
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + size), pos + size
        else:
            raise BundleError(f"ONNX file is not a protobuf this SDK reads (wire type {wire})")
        if pos > end:
            raise BundleError("ONNX file is truncated (a field runs past its message)")
        yield number, wire, value


def _entry(buf: memoryview, start: int, stop: int) -> tuple[bytes, bytes]:
    key = value = b""
    for number, wire, span in _fields(buf, start, stop):
        if wire == 2 and number in (1, 2):
            text = bytes(buf[span[0] : span[1]])
            key, value = (text, value) if number == 1 else (key, text)
    return key, value


class GraphFacts:
    """What the walk saw: external-data names, operator types (domain-qualified when not the default), the
    largest constant tensor's element count (from its dims, before anything is allocated), and the main
    graph's inputs and outputs as {name: (elem_type, dims)} with a dim None where it is symbolic or absent
    (inputs that are initializers, as older exporters list them, are left out)."""

    def __init__(self) -> None:
        self.locations: set[str] = set()
        self.ops: set[str] = set()
        self.max_elements = 0
        self.inputs: dict[str, tuple[int, tuple[int | None, ...]]] = {}
        self.outputs: dict[str, tuple[int, tuple[int | None, ...]]] = {}
        self.initializers: set[str] = set()

    def graph_inputs(self) -> dict[str, tuple[int, tuple[int | None, ...]]]:
        return {k: v for k, v in self.inputs.items() if k not in self.initializers}


def _walk(buf: memoryview, kind: str, start: int, stop: int, depth: int, out: GraphFacts) -> None:
    if depth > _MAX_DEPTH:
        raise BundleError(f"ONNX graph nests more than {_MAX_DEPTH} levels deep; not a StarGAN export")
    dims: list[int] = []
    op = domain = ""
    for number, wire, span in _fields(buf, start, stop):
        if kind == "tensor" and number == _TENSOR_DIMS:
            dims += [span] if wire == 0 else _packed(buf, *span) if wire == 2 else []
        elif kind == "node" and wire == 2 and number in (_NODE_OP_TYPE, _NODE_DOMAIN):
            text = bytes(buf[span[0] : span[1]]).decode("utf-8", "replace")
            op, domain = (text, domain) if number == _NODE_OP_TYPE else (op, text)
        elif wire != 2:
            continue
        elif kind == "tensor" and number == _TENSOR_EXTERNAL_DATA:
            key, value = _entry(buf, *span)
            if key == b"location":
                out.locations.add(value.decode("utf-8", "replace"))
        elif kind == "graph" and depth == 1 and number in (_GRAPH_INPUT, _GRAPH_OUTPUT):
            name, io = _value_info(buf, *span)
            (out.inputs if number == _GRAPH_INPUT else out.outputs)[name] = io
        elif (kind, number) in _CHILDREN:
            if kind == "graph" and depth == 1 and number == 5:
                out.initializers.add(_string_field(buf, *span, _TENSOR_NAME))
            _walk(buf, _CHILDREN[(kind, number)], span[0], span[1], depth + 1, out)
    if kind == "node":
        out.ops.add(op if domain in ("", "ai.onnx") else f"{domain}.{op}")
    if kind == "tensor":
        count = 1
        for d in dims:
            count *= max(d, 0)
        out.max_elements = max(out.max_elements, count)


def _string_field(buf: memoryview, start: int, stop: int, field: int) -> str:
    text = ""
    for number, wire, span in _fields(buf, start, stop):
        if number == field and wire == 2:
            text = bytes(buf[span[0] : span[1]]).decode("utf-8", "replace")
    return text


def _sub(buf: memoryview, start: int, stop: int, field: int) -> tuple[int, int] | None:
    """The span of the last length-delimited `field` in a message (protobuf: the last one wins)."""
    found = None
    for number, wire, span in _fields(buf, start, stop):
        if number == field and wire == 2:
            found = span
    return found


def _value_info(buf: memoryview, start: int, stop: int) -> tuple[str, tuple[int, tuple[int | None, ...]]]:
    """ValueInfoProto {1: name, 2: TypeProto {1: Tensor {1: elem_type, 2: TensorShapeProto {1: Dimension
    {1: dim_value, 2: dim_param}}}}} -> (name, (elem_type, dims)); elem_type 0 when not a tensor."""
    name, elem, dims = _string_field(buf, start, stop, 1), 0, []
    tensor = (typ := _sub(buf, start, stop, 2)) and _sub(buf, *typ, 1)
    if tensor:
        for number, wire, value in _fields(buf, *tensor):
            if number == 1 and wire == 0:
                elem = value
            elif number == 2 and wire == 2:
                dims = [_dim(buf, *d) for n, w, d in _fields(buf, *value) if n == 1 and w == 2]
    return name, (elem, tuple(dims))


def _dim(buf: memoryview, start: int, stop: int) -> int | None:
    value = None
    for number, wire, v in _fields(buf, start, stop):
        if number == 1 and wire == 0:
            value = v - (1 << 64) if v >= _INT64_SIGN else v
        elif number == 2:
            value = None  # a symbolic dimension (dim_param), e.g. the batch
    return value


def _packed(buf: memoryview, start: int, stop: int) -> list[int]:
    values, pos = [], start
    while pos < stop:
        value, pos = _varint(buf, pos, stop)
        values.append(value)
    return values


def graph_facts(data: bytes) -> GraphFacts:
    """Walk a serialized ONNX ModelProto; raises BundleError on malformed bytes."""
    out = GraphFacts()
    buf = memoryview(data)
    _walk(buf, "model", 0, len(buf), 0, out)
    return out


def external_locations(data: bytes) -> set[str]:
    """Every external-data `location` in a serialized ONNX ModelProto; raises BundleError on malformed bytes."""
    return graph_facts(data).locations
