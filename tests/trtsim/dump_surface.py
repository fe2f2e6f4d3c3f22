"""Write the Python surface of an importable TensorRT binding module as JSON (run in a subprocess).

Usage: LD_LIBRARY_PATH=stubs python dump_surface.py WHEEL_DIR tensorrt_bindings out.json

Classes, enums (members and values), methods with every pybind11 overload signature (parsed from the first
lines of their docstrings), properties (type, read-only or not), module functions and values. Nothing is
called: the native libraries behind the module are stubs that only satisfy the dynamic linker.
"""

from __future__ import annotations

import ctypes
import importlib
import inspect
import json
import re
import sys
from typing import Any

DUNDERS = (
    "__init__",
    "__len__",
    "__getitem__",
    "__iter__",
    "__int__",
    "__index__",
    "__enter__",
    "__exit__",
    "__bool__",
)
_TP_AS_BUFFER = 160  # offset of PyTypeObject.tp_as_buffer on 64-bit CPython 3.8-3.13; checked in _has_buffer


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>" and not (ch == ">" and text[i - 1] == "-"):
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    return parts + [tail] if tail else parts


def parse_signature(line: str) -> dict[str, Any] | None:
    """`name(a: T, b: U = d, *, c: V) -> R` as {"params": [...], "returns": R}; None if not a signature."""
    match = re.match(r"^\s*(?:\d+\.\s+)?([A-Za-z_]\w*)\((.*)\)\s*->\s*(.+?)\s*$", line)
    if match is None:
        return None
    params, kind = [], "positional_or_keyword"
    for raw in split_top(match.group(2)):
        if raw == "*":
            kind = "keyword_only"
            continue
        if raw == "/":
            for p in params:
                p["kind"] = "positional_only"
            continue
        if raw.startswith("*"):
            params.append({"name": raw.split(":")[0], "type": "", "default": False, "kind": "var"})
            continue
        head, *rest = split_top(raw, "=")
        has_default, default = bool(rest), "=".join(rest)
        name, _, typ = head.partition(":")
        name = name.strip()
        params.append({
            "name": name, "type": typ.strip(), "default": has_default, "default_repr": default.strip(),
            # pybind11 names unnamed arguments arg0, arg1...: those are positional only
            "kind": "positional_only" if re.fullmatch(r"arg\d+", name) else kind,
        })  # fmt: skip
    return {"name": match.group(1), "params": params, "returns": match.group(3).strip()}


def overloads(func: Any) -> list[dict[str, Any]]:
    """Every signature in a pybind11 docstring (one, or the numbered list of an overloaded function)."""
    doc = inspect.getdoc(func) or getattr(func, "__doc__", None) or ""
    lines = doc.splitlines()
    if lines and "Overloaded function." in doc:
        return [s for s in (parse_signature(ln) for ln in lines if re.match(r"^\d+\.\s", ln)) if s]
    first = parse_signature(lines[0]) if lines else None
    return [first] if first else []


def _has_buffer(cls: type) -> bool | None:
    if not (_slot(bytes) and not _slot(int)):  # layout differs on this interpreter: unknown
        return None
    return _slot(cls)


def _slot(cls: type) -> bool:
    return ctypes.c_void_p.from_address(id(cls) + _TP_AS_BUFFER).value is not None


def _is_enum(cls: type) -> bool:
    return isinstance(getattr(cls, "__members__", None), dict) and hasattr(cls, "value")


class Dumper:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.types: dict[str, dict[str, Any]] = {}

    def describe(self, value: Any, name: str) -> dict[str, Any] | None:
        if isinstance(value, type):
            return {"kind": "type", "ref": self.add_type(value)}
        if isinstance(value, property):
            sig = overloads(value.fget) if value.fget else []
            return {"kind": "property", "type": sig[0]["returns"] if sig else "", "readonly": value.fset is None}
        if _is_enum(type(value)) and name != "value":
            member = next(k for k, v in type(value).__members__.items() if v == value)
            return {"kind": "member", "enum": self.add_type(type(value)), "name": member, "value": int(value)}
        if inspect.isfunction(value) or inspect.ismethod(value):  # Python code (the package __init__)
            try:
                params = [{"name": p.name, "kind": p.kind.name.lower(), "default": p.default is not p.empty,
                           "type": ""} for p in inspect.signature(value).parameters.values()]  # fmt: skip
            except (TypeError, ValueError):
                params = [{"name": "args", "kind": "var", "default": False, "type": ""}]
            return {"kind": "pyfunction", "params": params}
        if callable(value):
            return {"kind": "function", "overloads": overloads(value), "static": isinstance(value, type(len))}
        if isinstance(value, (int, float, str, bool)):
            return {"kind": "value", "type": type(value).__name__, "value": value}
        return {"kind": "opaque", "type": type(value).__name__}

    def add_type(self, cls: type) -> str:
        qual = cls.__qualname__ if cls.__module__.startswith(self.module.__name__) else f"builtins.{cls.__qualname__}"
        if qual in self.types or qual.startswith("builtins."):
            return qual
        entry: dict[str, Any] = {"kind": "enum" if _is_enum(cls) else "class",
                                 "bases": [self.add_type(b) for b in cls.__mro__[1:] if b is not object],
                                 "buffer": _has_buffer(cls), "members": {}}  # fmt: skip
        self.types[qual] = entry
        if entry["kind"] == "enum":
            entry["values"] = {k: int(v) for k, v in cls.__members__.items()}
        for name in dir(cls):
            if name.startswith("_") and name not in DUNDERS:
                continue
            if name in DUNDERS and name not in vars(cls) and not any(name in vars(b) for b in cls.__mro__[1:-1]):
                continue  # only dunders the bindings define, not object's defaults
            described = self.describe(getattr(cls, name), name)
            if described is not None:
                entry["members"][name] = described
        return qual

    def dump(self) -> dict[str, Any]:
        names = {}
        for name in dir(self.module):
            if name.startswith("_") and name != "__version__":
                continue
            value = getattr(self.module, name)
            if inspect.ismodule(value):
                continue
            names[name] = self.describe(value, name)
        return {"version": self.module.__version__, "module": names, "types": self.types}


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    module = importlib.import_module(sys.argv[2])
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        json.dump(Dumper(module).dump(), f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
