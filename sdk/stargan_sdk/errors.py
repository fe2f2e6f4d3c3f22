"""Exceptions raised by the SDK; every one carries a message that says what to do.

Usage: except stargan_sdk.errors.StarGANError as e: print(e)
"""


class StarGANError(Exception):
    """Base class of every SDK error."""


class BundleError(StarGANError):
    """A bundle folder that is missing, incomplete, corrupted (checksum) or inconsistent."""


class ManifestError(BundleError):
    """manifest.json is missing, unreadable or does not follow the schema."""


class BackendUnavailableError(StarGANError):
    """The requested backend cannot run here (package missing, no GPU, engine built for another GPU/TRT)."""


class EngineMismatchError(BackendUnavailableError):
    """A TensorRT engine built for a different TensorRT version or GPU; the message says how to rebuild."""


class AttributeNameError(StarGANError, KeyError):
    """An attribute name the model does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AttributeValueError(StarGANError, ValueError):
    """An attribute value of the wrong type or outside {0, 1}."""


class ImageInputError(StarGANError, ValueError):
    """An image of an unsupported type, mode, size or dtype, an empty batch, or non-finite values."""


class NoFaceFoundError(StarGANError):
    """The photo pipeline found no face to edit."""


class FaceDetectorError(StarGANError):
    """A face detector that cannot load (missing model file, OpenCV without cascades) or fails on a photo."""


class BackendOptionError(StarGANError, ValueError):
    """A backend option with an unknown name or a bad value (e.g. an unknown precision, threads < 1)."""


class ServerError(StarGANError):
    """A Triton server that cannot be reached, does not serve the model, or refused a request."""


class OptionError(StarGANError, ValueError):
    """An SDK call option with a value outside the ones it allows (e.g. on_no_face, margin, feather)."""
