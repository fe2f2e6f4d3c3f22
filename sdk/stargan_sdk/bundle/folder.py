"""An opened bundle: its folder, its checked manifest, and each artifact verified at most once.

Usage: b = Bundle.open("models/toyfaces-64"); path = b.verified(b.require("generator", "onnx", "fp32"))

`Translator.load` opens one `Bundle` and hands it to every backend it tries and to the classifier, so an
artifact's checksum, graph walk and shape checks run once however many candidates look at it, and nothing
passes a (folder, manifest) pair around. A verdict is kept for the life of the object (a bundle is data that
does not change under a running process; open it again to re-read the files).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stargan_sdk.bundle.manifest import Artifact, Manifest, read_manifest, verify_artifact
from stargan_sdk.errors import BundleError, StarGANError

T = TypeVar("T")


class Bundle:
    """A bundle folder and its manifest, with verified artifact paths.

    Args:
        folder: the bundle folder.
        manifest: its manifest (read with `read_manifest`; tests may pass an edited one).
    """

    def __init__(self, folder: str | os.PathLike[str], manifest: Manifest) -> None:
        self.folder = Path(folder)
        self.manifest = manifest
        self._verdicts: dict[str, Path | StarGANError] = {}
        self._memo: dict[Any, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> Bundle:
        """Read and check `folder/manifest.json`; raises BundleError / ManifestError."""
        return cls(folder, read_manifest(folder))

    @classmethod
    def of(cls, bundle: Bundle | str | os.PathLike[str], manifest: Manifest | None = None) -> Bundle:
        """`bundle` itself, or a Bundle over a folder (with its manifest when given, else read from disk)."""
        if isinstance(bundle, Bundle):
            if manifest is not None and manifest is not bundle.manifest:
                return cls(bundle.folder, manifest)
            return bundle
        return cls(bundle, manifest) if manifest is not None else cls.open(bundle)

    @property
    def image_size(self) -> int:
        return self.manifest.image_size

    @property
    def c_dim(self) -> int:
        return self.manifest.c_dim

    def artifact(
        self, role: str = "generator", kind: str | None = None, precision: str | None = None
    ) -> Artifact | None:
        """The manifest's entry for (role, kind, precision), or None; nothing is read from disk."""
        return self.manifest.artifact(role=role, kind=kind, precision=precision)

    def require(self, role: str = "generator", kind: str | None = None, precision: str | None = None) -> Artifact:
        art = self.artifact(role, kind, precision)
        if art is None:
            what = " ".join(x for x in (precision, role, kind) if x)
            raise BundleError(f"the bundle at {self.folder} has no {what} artifact; re-export the bundle")
        return art

    def verified(self, artifact: Artifact) -> Path:
        """The artifact's path once its checksum, confinement and content checks passed (`verify_artifact`
        with this manifest); the first verdict is kept, a failure is raised again on every ask."""
        with self._lock:
            verdict = self._verdicts.get(artifact.file)
        if verdict is None:
            try:
                verdict = verify_artifact(self.folder, artifact, self.manifest)
            except StarGANError as e:
                verdict = e
            with self._lock:
                self._verdicts.setdefault(artifact.file, verdict)
        if isinstance(verdict, StarGANError):
            raise verdict
        return verdict

    def status(self, artifact: Artifact) -> str:
        """ "ok", or why the artifact is refused (for `stargan info`)."""
        try:
            self.verified(artifact)
        except StarGANError as e:
            return str(e)
        return "ok"

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """`compute()` once per key for this bundle (e.g. a backend's availability check, shared by
        `availability` and `load`); an exception is not kept."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._lock:
            return self._memo.setdefault(key, value)

    def __repr__(self) -> str:
        return f"Bundle({str(self.folder)!r})"
