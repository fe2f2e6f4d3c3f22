"""Test helpers that tamper with bundles as the audit did: copies of the shipped bundle, manifest edits with
re-hashed files, and raw protobuf fields (for ONNX bytes the onnx package will not write).

Usage: from bundle_edits import copy_shipped, edit_manifest, rehash, protobuf_field, engine_artifacts
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "toyfaces-64"


def copy_shipped(out: Path) -> Path:
    """The shipped bundle's manifest and listed files (not its card, eval or samples) in a fresh `out`."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    listed = [a["file"] for a in json.loads((SHIPPED / "manifest.json").read_text())["artifacts"]]
    for name in ("manifest.json", *listed):
        shutil.copy(SHIPPED / name, out / name)
    return out


def edit_manifest(bundle: Path, change: Callable[[dict], object]) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    change(m)
    (bundle / "manifest.json").write_text(json.dumps(m))


def rehash(bundle: Path, file: str) -> None:
    """Record `file`'s current sha256 in the manifest, as an attacker who edits a file would."""
    sha = hashlib.sha256((bundle / file).read_bytes()).hexdigest()
    edit_manifest(bundle, lambda m: [a.update(sha256=sha) for a in m["artifacts"] if a["file"] == file])


def protobuf_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2): tag varint, length varint, payload."""

    def varint(n: int) -> bytes:
        out = b""
        while n >= 0x80:
            out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
        return out + bytes([n])

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def engine_artifacts():
    """Manifest entries of generator.plan and its preprocess/postprocess plans as one build records them (made-up
    hashes: for the manifest's rules, not to load)."""
    import dataclasses

    from stargan_sdk.bundle.manifest import Artifact, Profile

    engine = Artifact(kind="tensorrt", role="generator", file="generator.plan", sha256="0" * 64, precision="fp16",
                      tensorrt_version="10.9.0.34", gpu_name="GPU", compute_capability="9.0",
                      profile=Profile(1, 2, 4))  # fmt: skip
    pre = dataclasses.replace(engine, role="preprocess", file="preprocess.plan", precision="fp32")
    return engine, pre, dataclasses.replace(pre, role="postprocess", file="postprocess.plan")
