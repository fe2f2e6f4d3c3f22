"""The stand-ins for what the TensorRT module hands out: enum members, classes, instances, functions.

Usage: internal to trtsim.fake (FakeTensorRT creates these; each checks itself against the release's surface).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # fake.py imports this module at run time; the annotation only needs the name
    from trtsim.fake import FakeTensorRT

PREFIXES = ("tensorrt_bindings.tensorrt.", "tensorrt.")


class ApiMismatch(TypeError):
    """The code used the TensorRT Python API in a way this version's bindings do not accept."""


def norm(type_text: str) -> str:
    for prefix in PREFIXES:
        type_text = type_text.replace(prefix, "")
    return type_text.strip()


def short(value: Any) -> str:
    if isinstance(value, (FakeObject, FakeMember)):
        return repr(value)
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


class FakeMember:
    """An enum member: compares by enum and value, converts to int like a pybind11 enum."""

    def __init__(self, enum: str, name: str, value: int) -> None:
        self.enum, self.name, self.value = enum, name, value

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeMember) and (other.enum, other.value) == (self.enum, self.value)

    def __hash__(self) -> int:
        return hash((self.enum, self.value))

    def __repr__(self) -> str:
        return f"<{self.enum}.{self.name}: {self.value}>"


class FakeType:
    """A class or enum of the bindings: attribute access is checked; calling it checks `__init__`."""

    def __init__(self, fake: FakeTensorRT, qual: str) -> None:
        self._fk_trt, self._fk_type = fake, qual

    def __getattr__(self, name: str) -> Any:
        return self._fk_trt.materialize(self._fk_trt.lookup(self._fk_type, name), self._fk_type, name)

    def __call__(self, *args: Any, **kwargs: Any) -> FakeObject:
        fake = self._fk_trt
        entry = fake.types[self._fk_type]["members"].get("__init__")
        if entry is None:
            raise fake.fail(f"{self._fk_type} cannot be constructed from Python")
        obj = FakeObject(fake, self._fk_type, {})
        FakeFunction(fake, f"{self._fk_type}.__init__", entry, obj)(*args, **kwargs)
        return obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeType) and other._fk_type == self._fk_type

    def __hash__(self) -> int:
        return hash(self._fk_type)


class FakeObject:
    """An instance of a bindings class; `_fk_state` holds what handlers and property writes stored."""

    def __init__(self, fake: FakeTensorRT, qual: str, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_fk_trt", fake)
        object.__setattr__(self, "_fk_type", qual)
        object.__setattr__(self, "_fk_state", state)

    def __getattr__(self, name: str) -> Any:
        fake = self._fk_trt
        return fake.materialize(fake.lookup(self._fk_type, name), self._fk_type, name, self)

    def __setattr__(self, name: str, value: Any) -> None:
        fake = self._fk_trt
        entry = fake.lookup(self._fk_type, name)
        if entry["kind"] != "property" or entry["readonly"]:
            raise fake.fail(f"{self._fk_type}.{name} cannot be assigned (it is a {entry['kind']}, read-only)")
        if not fake.accepts(value, entry["type"]):
            raise fake.fail(f"{self._fk_type}.{name} takes {norm(entry['type'])}, got {short(value)}")
        fake.calls.append((f"{self._fk_type}.{name}=", {"value": value}))
        self._fk_state[name] = value

    def _fk_dunder(self, name: str) -> Any:
        if name not in self._fk_trt.types[self._fk_type]["members"]:
            raise self._fk_trt.fail(f"{self._fk_type} has no {name}")
        return self._fk_state["items"]

    def __len__(self) -> int:
        return len(self._fk_dunder("__len__"))

    def __getitem__(self, index: int) -> Any:
        return self._fk_dunder("__getitem__")[index]

    def __iter__(self) -> Any:
        if "__iter__" not in self._fk_trt.types[self._fk_type]["members"]:
            self._fk_dunder("__getitem__")  # Python falls back to __getitem__ with indices 0, 1, ...
        return iter(self._fk_state["items"])

    def __bytes__(self) -> bytes:
        if not self._fk_trt.types[self._fk_type].get("buffer"):
            raise self._fk_trt.fail(f"{self._fk_type} does not expose a buffer: bytes() fails on it")
        return bytes(self._fk_state["bytes"])

    def __repr__(self) -> str:
        return f"<fake {self._fk_type}>"


class FakeFunction:
    """A method or function: checks a call against its overloads, records it, asks a handler for the result."""

    def __init__(self, fake: FakeTensorRT, qual: str, entry: dict[str, Any], obj: FakeObject | None) -> None:
        self.fake, self.qual, self.entry, self.obj = fake, qual, entry, obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fake, entry = self.fake, self.entry
        if entry["kind"] == "pyfunction":
            bound = fake.bind(self.qual, [{"params": entry["params"]}], args, kwargs)
        else:
            bound = fake.bind(self.qual, entry["overloads"], args, kwargs)
        fake.calls.append((self.qual, bound))
        owner, _, name = self.qual.rpartition(".")
        handler = fake.handlers.get(self.qual) or (fake.handler(owner, name) if owner else None)
        if handler is not None:
            return handler(self.obj, **bound)
        if entry["kind"] == "pyfunction":
            raise fake.fail(f"{self.qual} is Python code in the bindings package; the test must simulate it")
        return fake.default(entry["overloads"][0]["returns"]) if entry["overloads"] else None
