"""A recording stand-in for `import tensorrt` whose every name and call is checked against a real binding surface.

Usage: fake = FakeTensorRT(surface, handlers); trt = fake.module; ...; assert not fake.problems, fake.report()

`surface` is what `dump_surface.py` read from NVIDIA's real module of one version. Reading a name the module
lacks raises AttributeError (so `hasattr` probes behave as on that version) and is logged in `missing`; a call
whose arguments fit none of the method's pybind11 overloads (count, keyword names, types) raises `ApiMismatch`
and is logged in `problems`, so a caller that swallows the exception is still caught. `handlers` give results
for the calls a test needs to behave ("Class.method" -> fn(obj, **arguments)); other calls return a default
of their declared return type.
"""

from __future__ import annotations

import importlib.machinery
import re
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from trtsim.objects import ApiMismatch, FakeFunction, FakeMember, FakeObject, FakeType, norm, short

BUILTIN_DEFAULTS = {"bool": True, "int": 0, "float": 0.0, "str": "", "None": None}


class FakeTensorRT:
    def __init__(self, surface: dict[str, Any], handlers: dict[str, Callable[..., Any]] | None = None) -> None:
        self.surface, self.types = surface, surface["types"]
        self.version: str = surface["version"]
        self.handlers = dict(handlers or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.problems: list[str] = []
        self.missing: list[str] = []
        self.unchecked: set[str] = set()  # declared types this checker cannot judge (accepted)
        self.module = _module(self)

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def fail(self, message: str) -> ApiMismatch:
        self.problems.append(message)
        return ApiMismatch(f"TensorRT {self.version}: {message}")

    def lookup(self, owner: str, name: str) -> dict[str, Any]:
        entry = (self.surface["module"] if owner == "" else self.types[owner]["members"]).get(name)
        if entry is None:
            where = f"{owner}.{name}" if owner else f"tensorrt.{name}"
            self.missing.append(where)
            raise AttributeError(f"TensorRT {self.version} has no {where}")
        return entry

    def called(self, name: str) -> list[dict[str, Any]]:
        """Arguments of every call to `name` ("Class.method"), in order."""
        return [args for qual, args in self.calls if qual == name]

    def report(self) -> str:
        lines = self.problems + [f"missing: {m}" for m in self.missing]
        return "\n".join(lines + [f"type not checked: {t}" for t in sorted(self.unchecked)])

    # -- values ----------------------------------------------------------------------------------------------
    def materialize(self, entry: dict[str, Any], owner: str, name: str, obj: FakeObject | None = None) -> Any:
        kind = entry["kind"]
        if kind == "type":
            return FakeType(self, entry["ref"])
        if kind == "member":
            return FakeMember(entry["enum"], entry["name"], entry["value"])
        if kind == "value":
            return entry["value"]
        if kind in ("function", "pyfunction"):
            return FakeFunction(self, f"{owner}.{name}" if owner else name, entry, obj)
        if kind == "property":
            if obj is None:
                raise self.fail(f"{owner}.{name} is a property: read it from an instance")
            return self.read_property(obj, owner, name, entry)
        raise self.fail(f"{owner}.{name} is an opaque {entry.get('type')} value this checker cannot stand in for")

    def read_property(self, obj: FakeObject, owner: str, name: str, entry: dict[str, Any]) -> Any:
        if name in obj._fk_state:
            return obj._fk_state[name]
        handler = self.handler(owner, name)
        return handler(obj) if handler else self.default(entry["type"])

    def handler(self, qual: str, name: str) -> Callable[..., Any] | None:
        for owner in [qual, *self.types.get(qual, {}).get("bases", [])]:
            if f"{owner}.{name}" in self.handlers:
                return self.handlers[f"{owner}.{name}"]
        return None

    def make(self, qual: str, **state: Any) -> FakeObject:
        if qual not in self.types:
            raise self.fail(f"no class {qual}")
        return FakeObject(self, qual, state)

    def member(self, enum: str, name: str) -> FakeMember:
        values = self.types[enum]["values"]
        if name not in values:
            raise self.fail(f"{enum} has no member {name}")
        return FakeMember(enum, name, values[name])

    def default(self, type_text: str) -> Any:
        t = norm(type_text)
        if t in BUILTIN_DEFAULTS:
            return BUILTIN_DEFAULTS[t]
        if t in self.types:
            return FakeObject(self, t, {})
        if re.match(r"^(List|list|Sequence)\[", t):
            return []
        self.unchecked.add(f"return {t}")
        return None

    # -- argument checks -----------------------------------------------------------------------------------
    def accepts(self, value: Any, type_text: str) -> bool:
        t = norm(type_text)
        if t in ("", "object", "typing.Any", "capsule", "None"):
            return True
        optional = re.fullmatch(r"Optional\[(.+)\]|(.+?) \| None", t)
        if optional:
            return value is None or self.accepts(value, optional.group(1) or optional.group(2))
        if t in ("int", "typing.SupportsInt"):
            return isinstance(value, (int, np.integer, FakeMember))
        if t in ("float", "typing.SupportsFloat"):
            return isinstance(value, (int, float, np.integer, np.floating))
        if t == "bool":
            return isinstance(value, (bool, np.bool_, int))
        if t == "str":
            return isinstance(value, (str, bytes))
        if t in ("buffer", "typing_extensions.Buffer", "collections.abc.Buffer"):
            return _is_buffer(value)
        if t in ("tuple", "list"):
            return isinstance(value, tuple if t == "tuple" else list)
        sequence = re.fullmatch(r"(?:List|list|Sequence|collections\.abc\.Sequence)\[(.+)\]", t)
        if sequence:
            return isinstance(value, (list, tuple)) and all(self.accepts(v, sequence.group(1)) for v in value)
        if t in self.types:
            return self._accepts_type(value, t)
        self.unchecked.add(t)
        return True

    def _accepts_type(self, value: Any, t: str) -> bool:
        if isinstance(value, FakeMember):
            return value.enum == t
        if isinstance(value, FakeObject):
            return value._fk_type == t or t in self.types[value._fk_type]["bases"]
        # No implicit conversions (a tuple for a Dims parameter): pybind11 does not show which are registered,
        # so the code must pass what the signature declares.
        return False

    def bind(self, qual: str, overloads: list[dict[str, Any]], args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments bound to the first overload that accepts them, as pybind11 tries them in order."""
        reasons = []
        for sig in overloads:
            bound, reason = self._bind_one(sig["params"], args, kwargs)
            if reason is None:
                return bound
            reasons.append(f"  {_render(sig)}: {reason}")
        if not overloads:
            raise self.fail(f"{qual} has no signature in its docstring to check a call against")
        given = ", ".join([*map(short, args), *(f"{k}={short(v)}" for k, v in kwargs.items())])
        raise self.fail(f"{qual}({given}) matches no signature:\n" + "\n".join(reasons))

    def _bind_one(self, params: list[dict[str, Any]], args: tuple, kwargs: dict[str, Any]) -> tuple[dict, str | None]:
        params = [p for p in params if p["name"] != "self"]
        if any(p["kind"] == "var" for p in params):
            return dict(kwargs, args=args), None
        positional = [p for p in params if p["kind"] != "keyword_only"]
        if len(args) > len(positional):
            return {}, f"takes {len(positional)} positional arguments, got {len(args)}"
        bound = {p["name"]: v for p, v in zip(positional, args)}
        for key, value in kwargs.items():
            param = next((p for p in params if p["name"] == key), None)
            if param is None or param["kind"] == "positional_only":
                return {}, f"no keyword argument {key!r}"
            if key in bound:
                return {}, f"{key!r} given twice"
            bound[key] = value
        for p in params:
            if p["name"] not in bound and not p.get("default"):
                return {}, f"missing argument {p['name']!r}"
            if p["name"] in bound and p.get("type") and not self.accepts(bound[p["name"]], p["type"]):
                return {}, f"{p['name']!r} must be {norm(p['type'])}, got {short(bound[p['name']])}"
        return bound, None


def _is_buffer(value: Any) -> bool:
    if isinstance(value, FakeObject):
        return bool(value._fk_trt.types[value._fk_type].get("buffer"))
    try:
        memoryview(value)
    except TypeError:
        return False
    return True


def _render(sig: dict[str, Any]) -> str:
    params = ", ".join(f"{p['name']}: {norm(p.get('type', ''))}" for p in sig["params"] if p["name"] != "self")
    return f"{sig.get('name', '')}({params}) -> {norm(sig.get('returns', ''))}"


def _module(fake: FakeTensorRT) -> types.ModuleType:
    class Module(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            if name.startswith("__") and name != "__version__":
                raise AttributeError(name)
            return fake.materialize(fake.lookup("", name), "", name)

    module = Module("tensorrt", f"stand-in for TensorRT {fake.version} (checked against its real bindings)")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # importlib.util.find_spec needs one
    return module


__all__ = ["ApiMismatch", "FakeFunction", "FakeMember", "FakeObject", "FakeTensorRT", "FakeType"]
