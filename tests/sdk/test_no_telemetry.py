"""Loading a bundle and editing a face makes no network connection: telemetry is off by default (issue 25, item 11).

A subprocess loads the shipped bundle on ONNX Runtime and OpenVINO (where installed) and translates one image,
with a Python audit hook on socket.connect/getaddrinfo and, where strace exists, the kernel's view of connect().
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = r"""
import sys, numpy as np
attempts = []
def audit(event, args):
    if event == "socket.getaddrinfo" or (event == "socket.connect" and isinstance(args[1], tuple)):
        host = str(args[0] if event == "socket.getaddrinfo" else args[1][0])
        if host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append((event, host))
sys.addaudithook(audit)
import stargan_sdk, os
from stargan_sdk import Translator
assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
names = ["onnxruntime"]
try:
    import openvino  # noqa: F401
    names.append("openvino")
except ImportError:
    pass
face = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
for name in names:
    with Translator.load(sys.argv[1], backend=name) as t:
        t.translate(face, original={a: 0 for a in t.attributes if not a.startswith("mask_")}, Male=1)
import time; time.sleep(3)  # runtimes send from background threads
print("ATTEMPTS", attempts)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "CI")}
    env["PYTHONPATH"] = str(ROOT / "sdk")
    return env


def test_importing_the_sdk_turns_onnxruntime_telemetry_off() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import os, stargan_sdk; print(os.environ['ORT_DISABLE_TELEMETRY'])"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1"


def test_openvino_telemetry_is_hidden() -> None:
    pytest.importorskip("openvino")
    code = "import sys, stargan_sdk, openvino; print(sys.modules.get('openvino_telemetry'))"
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_a_user_choice_is_kept() -> None:
    env = _env() | {"ORT_DISABLE_TELEMETRY": "0"}
    out = subprocess.run(
        [sys.executable, "-c", "import os, stargan_sdk; print(os.environ['ORT_DISABLE_TELEMETRY'])"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "0"


def test_load_and_edit_make_no_network_connection(tmp_path: Path) -> None:
    bundle = ROOT / "models" / "toyfaces-64"
    cmd = [sys.executable, "-c", SCRIPT, str(bundle)]
    trace = tmp_path / "strace.log"
    if shutil.which("strace"):
        cmd = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace)] + cmd
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ATTEMPTS []" in out.stdout, out.stdout
    if trace.exists():
        inet = [line for line in trace.read_text().splitlines() if re.search(r"AF_INET6?", line)]
        outside = [line for line in inet if not re.search(r'"127\.|"::1"|inet_addr\("127\.', line)]
        assert outside == [], outside
