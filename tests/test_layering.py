"""The layout holds: imports read from the source with `ast` (nothing is executed) follow the layers.

Usage: pytest -q tests/test_layering.py

- top level: stargan_train <- stargan_export -> stargan_sdk; the SDK and training import neither other package;
  the demo (benchmarks/stargan_demo) imports training and the SDK, and no package imports it.
- inside the SDK, subpackages are layers (README, Development): a module imports only its own subpackage and
  the layers below it; the package face (`stargan_sdk/__init__.py`) is above everything and imported by no one
  inside; the root holds only the face, `errors` and `translator`.
- no import cycle between modules, in any package or in benchmarks/ (lazy imports inside functions count;
  imports under `if TYPE_CHECKING:` do not: they serve annotations and run nothing).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "stargan_train": ROOT / "training",
    "stargan_export": ROOT / "export",
    "stargan_sdk": ROOT / "sdk",
    "stargan_demo": ROOT / "benchmarks",
}

# SDK layers, lowest first. Equal ranks are siblings that must not import each other.
SDK_LAYERS = {
    "errors": 0,
    "host": 1,
    "bundle": 2,
    "images": 3,
    "cuda": 4,
    "backends": 5,
    "photo": 6,
    "pipeline": 7,
    "translator": 8,
    "serve": 9,
    "ui": 9,
    "cli": 10,
}
SDK_FACE = "stargan_sdk"  # __init__.py: the public names; above every layer
SDK_ROOT_MODULES = {"__init__.py", "errors.py", "translator.py"}
ALLOWED_TOP_LEVEL = {
    "stargan_sdk": set(),
    "stargan_train": set(),
    "stargan_export": {"stargan_sdk", "stargan_train"},
    "stargan_demo": {"stargan_sdk", "stargan_train"},
}


def module_files(base: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under `base/package` (a package is its __init__)."""
    out = {}
    for path in sorted((base / package).rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


@cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def walk_runtime(node: ast.AST):
    """ast.walk, minus `if TYPE_CHECKING:` blocks: imports for annotations only run no code and make no cycle."""
    yield node
    for child in ast.iter_child_nodes(node):
        test = child.test if isinstance(child, ast.If) else None
        if test is not None and "TYPE_CHECKING" in ast.unparse(test):
            yield from (n for stmt in child.orelse for n in walk_runtime(stmt))
            continue
        yield from walk_runtime(child)


def imported_names(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """Every import in `path` (top level or inside functions) as (absolute module, names taken from it),
    relative imports resolved; `import a.b` gives ("a.b", [])."""
    is_package = path.name == "__init__.py"
    found = []
    for node in walk_runtime(parse(path)):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*parent, base] if base else parent)
            found.append((base, [alias.name for alias in node.names]))
    return found


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of the same set it imports: `from a import b` is an edge to the module a.b
    when there is one, else to a."""
    edges = {}
    for name, path in modules.items():
        targets = set()
        for base, names in imported_names(name, path):
            subs = {f"{base}.{n}" for n in names} & set(modules)
            targets |= subs if subs and len(subs) == len(names) else {*subs, base}
        edges[name] = {m for m in targets if m in modules and m != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def sdk_layer(module: str) -> str:
    """'stargan_sdk.bundle.manifest' -> 'bundle'; the face -> SDK_FACE."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else SDK_FACE


def layering_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(edges.items()):
        for dst in sorted(targets):
            a, b = sdk_layer(src), sdk_layer(dst)
            if a == b:
                continue
            if b == SDK_FACE:
                bad.append(f"{src} imports the package face {dst}: import the module that defines the name")
            elif a != SDK_FACE and SDK_LAYERS[a] <= SDK_LAYERS[b]:
                bad.append(f"{src} ({a}, layer {SDK_LAYERS[a]}) imports {dst} ({b}, layer {SDK_LAYERS[b]})")
    return bad


SDK_MODULES = module_files(PACKAGES["stargan_sdk"], "stargan_sdk")


def defined_names(path: Path) -> set[str]:
    """Names a module defines itself at top level (functions, classes, assignments), not those it imports."""
    names: set[str] = set()
    body = list(parse(path).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            targets = [e for t in node.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.If, ast.Try)):
            body += [*node.body, *node.orelse, *getattr(node, "finalbody", []), *getattr(node, "handlers", [])]
        elif isinstance(node, ast.ExceptHandler):
            body += node.body
    return names


def borrowed_names(importers: dict[str, Path]) -> list[str]:
    """`from stargan_sdk.x.y import name` where y only imports `name` itself, from another subpackage (or from
    outside the SDK): such a leak ties the importer to y's imports. A package's __init__ may re-export."""
    bad = []
    for name, path in sorted(importers.items()):
        for base, names in imported_names(name, path):
            target = SDK_MODULES.get(base)
            if target is None or target.name == "__init__.py" or sdk_layer(base) == sdk_layer(name):
                continue
            defined = defined_names(target)
            bad += [
                f"{name} imports {n} from {base}, which does not define it"
                for n in names
                if n != "*" and f"{base}.{n}" not in SDK_MODULES and n not in defined
            ]
    return bad


def test_sdk_root_holds_only_the_face_errors_and_translator() -> None:
    root = PACKAGES["stargan_sdk"] / "stargan_sdk"
    assert {p.name for p in root.glob("*.py")} == SDK_ROOT_MODULES
    unknown = {p.name for p in root.iterdir() if p.is_dir() and p.name != "__pycache__"} - set(SDK_LAYERS)
    assert not unknown, f"subpackages with no layer in SDK_LAYERS (add them, and to the README): {sorted(unknown)}"


def test_sdk_imports_only_downward() -> None:
    edges = graph(SDK_MODULES)
    assert sum(map(len, edges.values())) > 100  # the graph was read, not empty
    assert layering_violations(edges) == []


def test_names_come_from_where_they_are_defined() -> None:
    importers = {**SDK_MODULES, **module_files(PACKAGES["stargan_export"], "stargan_export")}
    importers |= {f"benchmarks.{p.stem}": p for p in (ROOT / "benchmarks").glob("*.py")}
    assert borrowed_names(importers) == []


def test_every_sdk_import_names_a_module_and_a_name_that_exist() -> None:
    """Lazy imports too (GPU-only paths run nowhere here): an import of a moved or deleted SDK module or name
    fails this test instead of a user's first call on that path."""
    files = [p for base in (*PACKAGES.values(), ROOT / "tests") for p in base.rglob("*.py")]
    files += list((ROOT / "benchmarks").glob("*.py"))
    assert len(files) > 150
    bad = []
    for path in files:
        for base, names in imported_names("outside", path):
            if base.split(".")[0] != "stargan_sdk":
                continue
            if base not in SDK_MODULES:
                bad.append(f"{path.relative_to(ROOT)}: no module {base}")
                continue
            target = SDK_MODULES[base]
            known = defined_names(target) | {n for _, ns in imported_names(base, target) for n in ns}
            known |= {
                a.asname
                for node in ast.walk(parse(target))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for a in node.names
                if a.asname
            }
            bad += [
                f"{path.relative_to(ROOT)}: {base} has no {n}"
                for n in names
                if f"{base}.{n}" not in SDK_MODULES and n not in known and n != "*"
            ]
    assert bad == []


def test_no_import_cycles() -> None:
    for package, base in PACKAGES.items():
        assert cycles(graph(module_files(base, package))) == [], package
    bench = {p.stem: p for p in (ROOT / "benchmarks").glob("*.py")}  # scripts import each other by stem
    assert len(bench) > 5
    assert cycles(graph(bench)) == []


def test_top_level_direction() -> None:
    for package, base in PACKAGES.items():
        for name, path in module_files(base, package).items():
            others = {base.split(".")[0] for base, _ in imported_names(name, path)} & set(PACKAGES) - {package}
            assert others <= ALLOWED_TOP_LEVEL[package], f"{name} imports {sorted(others)}"


def test_every_sdk_package_is_installed() -> None:
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {name for name, path in SDK_MODULES.items() if path.name == "__init__.py"}
    assert on_disk - listed == set(), "add the new subpackage to pyproject.toml's packages"


def test_borrowed_name_is_reported(tmp_path: Path) -> None:
    """physical_cores is defined in host/hardware; reaching it through a backend module is a leak."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from stargan_sdk.backends.openvino import physical_cores, OpenVinoBackend\n"
        "from stargan_sdk.host.hardware import physical_cores\nfrom stargan_sdk import cuda\n"
    )
    assert borrowed_names({"stargan_sdk.cli.probe": probe}) == [
        "stargan_sdk.cli.probe imports physical_cores from stargan_sdk.backends.openvino, which does not define it"
    ]
    assert borrowed_names({"stargan_sdk.backends.probe": probe}) == []  # inside its own subpackage


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_cycle_finder(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(edges) == expected


def test_layering_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checks see what they claim to: an import upward, into the face, or a sibling layer is reported."""
    pkg = tmp_path / "stargan_sdk"
    for rel, text in {
        "__init__.py": "from stargan_sdk.translator import Translator\n",
        "translator.py": "",
        "cuda/__init__.py": "def f():\n    from stargan_sdk.backends.base import Availability\n",
        "backends/__init__.py": "",
        "backends/base.py": "from ..cuda import runtime\n",
        "serve/__init__.py": "from stargan_sdk.ui import page\n",
        "ui/__init__.py": "",
        "ui/page.py": "import stargan_sdk\n",
        "cuda/runtime.py": "",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    assert layering_violations(graph(module_files(tmp_path, "stargan_sdk"))) == [
        "stargan_sdk.cuda (cuda, layer 4) imports stargan_sdk.backends.base (backends, layer 5)",
        "stargan_sdk.serve (serve, layer 9) imports stargan_sdk.ui.page (ui, layer 9)",
        "stargan_sdk.ui.page imports the package face stargan_sdk: import the module that defines the name",
    ]
