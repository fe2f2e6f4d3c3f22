"""NVIDIA's real TensorRT Python bindings, made importable without a GPU, and the surface read from them.

Usage: data = surface("11.4.0.106")  # {"version", "module", "types"}; raises Unreachable (skip) without pip/gcc

For each pinned version: `pip download --no-deps` the binding wheel (~1.2 MB, no native TensorRT inside),
list the native symbols its `tensorrt.so` leaves undefined (`nm -D --undefined-only`) and the libraries it
needs (`readelf -d`), compile one stub library per SONAME with gcc that defines those symbols (never called:
importing the module only binds them), then import the real module in a subprocess with LD_LIBRARY_PATH on
the stubs and dump its surface to JSON. Everything is cached per version under ~/.cache/stargan/trt-api (or
$STARGAN_TRT_API_CACHE), so later runs cost one JSON read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

# version -> PyPI package of its bindings. 10.0.1 is the oldest release the SDK accepts (TensorRT 10+);
# 10.13.3.9 a recent 10.x (BuilderFlag.FP16 deprecated since 10.12, still there); 11.4 has no FP16 flag at all.
# pyproject's `tensorrt` extra allows exactly this range of majors (>=10,<12).
VERSIONS = {
    "10.0.1": "tensorrt-cu12-bindings",
    "10.13.3.9": "tensorrt-cu12-bindings",
    "11.4.0.106": "tensorrt-cu13-bindings",
}
DUMPER = Path(__file__).with_name("dump_surface.py")
FORMAT = 1  # bump when dump_surface.py changes what it writes


class Unreachable(Exception):
    """The wheels or the tools to load them are not reachable here (the tests skip with this reason)."""


def cache_root() -> Path:
    env = os.environ.get("STARGAN_TRT_API_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stargan" / "trt-api"
    return base


def surface(version: str) -> dict[str, Any]:
    folder = cache_root() / f"{version}-py{sys.version_info[0]}{sys.version_info[1]}"
    out = folder / f"surface-v{FORMAT}.json"
    if not out.is_file():
        wheel_dir = _unpack(_download(version, folder), folder / "wheel")
        stubs = _build_stubs(wheel_dir / "tensorrt_bindings" / "tensorrt.so", folder / "stubs")
        _dump(wheel_dir, stubs, out)
    data = json.loads(out.read_text(encoding="utf-8"))
    if data["version"] != version:
        raise RuntimeError(f"{out} describes TensorRT {data['version']}, expected {version}")
    return data


def _run(cmd: list[str], what: str, **kwargs: Any) -> str:
    if shutil.which(cmd[0]) is None and not Path(cmd[0]).is_file():
        raise Unreachable(f"{cmd[0]} is not installed, so the TensorRT bindings cannot be loaded ({what})")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout


def _download(version: str, folder: Path) -> Path:
    package = VERSIONS[version]
    wheels = sorted((folder / "download").glob("*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "-d", str(folder / "download"), f"{package}=={version}"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        wheels = sorted((folder / "download").glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise Unreachable(f"pip could not fetch {package}=={version}: {tail[0]}")
    return wheels[0]


def _unpack(wheel: Path, dest: Path) -> Path:
    if not (dest / "tensorrt_bindings" / "tensorrt.so").is_file():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(dest)
    return dest


def _build_stubs(extension: Path, dest: Path) -> Path:
    """One shared library per libnv* SONAME the extension needs, each defining its undefined native symbols."""
    undefined = _run(["nm", "-D", "--undefined-only", str(extension)], "listing undefined symbols")
    rows = [line.split() for line in undefined.splitlines() if "@" not in line]  # name@GLIBC...: the C library
    python_or_libc = re.compile(r"_?Py|dl(open|sym|close)$")
    symbols = sorted({r[-1] for r in rows if len(r) == 2 and r[0] == "U" and not python_or_libc.match(r[-1])})
    dynamic = _run(["readelf", "-d", str(extension)], "reading the libraries it needs")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(libnv[^\]]+)\]", dynamic)
    if not symbols or not needed:
        raise RuntimeError(f"{extension}: found no TensorRT symbols ({symbols}) or libraries ({needed}) to stub")
    dest.mkdir(parents=True, exist_ok=True)
    source = dest / "stub.c"
    # Never called: the import only binds the names. A call would return NULL, as a failed factory does.
    source.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols), encoding="utf-8")
    for soname in needed:
        cmd = ["gcc", "-shared", "-fPIC", "-o", str(dest / soname), f"-Wl,-soname,{soname}", str(source)]
        _run(cmd, f"building the stub {soname}")
    return dest


def _dump(wheel_dir: Path, stubs: Path, out: Path) -> None:
    paths = [str(stubs), os.environ.get("LD_LIBRARY_PATH", "")]
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(filter(None, paths)))
    tmp = out.with_suffix(".tmp")
    cmd = [sys.executable, str(DUMPER), str(wheel_dir), "tensorrt_bindings", str(tmp)]
    _run(cmd, "importing the bindings on the stubs", env=env)
    os.replace(tmp, out)
