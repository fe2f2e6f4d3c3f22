"""stargan SDK: run exported StarGAN bundles without torch.

Usage: from stargan_sdk import Translator; t = Translator.load("models/toyfaces-64"); t.translate(img, Blond_Hair=1)
"""

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
    "StarGANError",
    "Translator",
]
