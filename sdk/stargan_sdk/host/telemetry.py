"""Third-party runtime telemetry off by default: loading a bundle and editing images makes no network connection.

Usage: from stargan_sdk.host.telemetry import quiet_runtimes; quiet_runtimes()  # before onnxruntime/openvino load

- ONNX Runtime's Linux wheels (1.29+) upload usage events to Microsoft unless ORT_DISABLE_TELEMETRY is set
  before the runtime starts (its documented switch).
- `import openvino` imports its converter (openvino.tools.ovc), which sends an "import" event to Google
  Analytics through the optional `openvino_telemetry` package unless a consent file says no. OpenVINO falls back
  to its own no-op stub when that package cannot be imported, so the SDK hides it from this process: nothing
  is written to the user's home.
Set STARGAN_TELEMETRY=1 to leave both runtimes as they come.
"""

from __future__ import annotations

import os
import sys

OPT_IN = "STARGAN_TELEMETRY"


def quiet_runtimes() -> None:
    if os.environ.get(OPT_IN) == "1":
        return
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # a user's own value (e.g. 0) is kept
    if "openvino" not in sys.modules:  # too late once OpenVINO has imported it: it sent its event already
        sys.modules.setdefault("openvino_telemetry", None)  # None in sys.modules: `import` raises ImportError


quiet_runtimes()  # on import: stargan_sdk/__init__ imports this module before any backend
