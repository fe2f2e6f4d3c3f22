"""The SDK imports without torch, onnx, stargan_train or stargan_export (checked in fresh interpreters)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

HEAVY = ("torch", "onnx", "onnxruntime", "stargan_train", "stargan_export", "cv2", "tensorrt")


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_import_pulls_in_no_heavy_package() -> None:
    proc = run(f"""
        import sys
        import stargan_sdk
        from stargan_sdk import Translator
        import stargan_sdk.cli.stargan, stargan_sdk.backends.registry, stargan_sdk.backends.torch_backend
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_sdk_works_with_torch_unimportable(bundle) -> None:
    proc = run(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "onnx", "stargan_train", "stargan_export"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from stargan_sdk import Translator
        import numpy as np
        with Translator.load({str(bundle)!r}) as t:
            out = t.translate(np.zeros((32, 32, 3), np.uint8), Blond_Hair=1)
            print(t.backend_name, out.shape, "torch" in sys.modules)
    """)
    assert proc.returncode == 0, proc.stderr
    expected = "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"  # auto prefers OpenVINO on CPU
    assert proc.stdout.strip() == f"{expected} (32, 32, 3) False"


def test_remote_translator_is_a_public_name_imported_on_first_use() -> None:
    """`from stargan_sdk import RemoteTranslator` works wherever the serving code lives, and `import stargan_sdk`
    alone does not load it."""
    proc = run("""
        import sys
        import stargan_sdk
        before = "stargan_sdk.serve.remote" in sys.modules
        from stargan_sdk import RemoteTranslator
        from stargan_sdk.serve.remote import RemoteTranslator as defined
        print(before, RemoteTranslator is defined, "RemoteTranslator" in stargan_sdk.__all__)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False True True"
