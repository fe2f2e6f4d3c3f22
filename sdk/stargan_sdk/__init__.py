"""stargan SDK: run exported StarGAN bundles without torch.

Usage: from stargan_sdk import Translator; t = Translator.load("models/toyfaces-64"); t.translate(img, Blond_Hair=1)

The public names live here, whatever subpackage defines them: `Translator`, `RemoteTranslator` (imported on
first use, so `import stargan_sdk` stays light) and the errors.
"""

from typing import Any

from stargan_sdk.errors import (
    AttributeNameError,
    AttributeValueError,
    BackendUnavailableError,
    BundleError,
    EngineMismatchError,
    ImageInputError,
    ManifestError,
    NoFaceFoundError,
    StarGANError,
)
from stargan_sdk.host import telemetry as _telemetry  # noqa: F401, I001  (importing it turns runtime telemetry off)
from stargan_sdk.translator import Translator

__all__ = [
    "AttributeNameError",
    "AttributeValueError",
    "BackendUnavailableError",
    "BundleError",
    "EngineMismatchError",
    "ImageInputError",
    "ManifestError",
    "NoFaceFoundError",
    "RemoteTranslator",
    "StarGANError",
    "Translator",
]


def __getattr__(name: str) -> Any:
    if name == "RemoteTranslator":
        from stargan_sdk.serve.remote import RemoteTranslator

        return RemoteTranslator
    raise AttributeError(f"module 'stargan_sdk' has no attribute {name!r}")
