"""The bundle manifest: dataclasses, cross-field validation, atomic write, checksum verification. Owned by the SDK.

Usage: m = read_manifest("models/toyfaces-64"); m.artifact(role="generator", precision="fp32").file

A bundle is a folder of plain standard files (ONNX graphs, raw TensorRT plans) plus `manifest.json`,
written last so a crashed export never leaves a folder that looks valid. The field-by-field rules live in
`stargan_sdk.bundle.manifest_schema`; the loader, `stargan-export validate` and the exporter's own writes all go
through `read_manifest`/`write_manifest`, so they accept exactly the same manifests.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stargan_sdk.bundle.checks import check_graph_io
from stargan_sdk.bundle.constants import (
    HAIR_COLOURS,
    INPUT_IMAGE,
    INPUT_LABEL,
    MANIFEST_NAME,
    NORM_MEAN,
    NORM_STD,
    OUTPUT_IMAGE,
    UINT8_ROLES,
    WEIGHTS_KIND,
)
from stargan_sdk.bundle.graph_rules import check_graph
from stargan_sdk.bundle.manifest_schema import (  # noqa: F401  (ARTIFACT_KINDS & co. re-exported: one import for users)
    ARTIFACT_KINDS,
    FORMAT,
    FORMAT_VERSION,
    GROUP_KINDS,
    MANIFEST_MAX_BYTES,
    PRECISIONS,
    ROLES,
    check_manifest_dict,
)
from stargan_sdk.bundle.onnx_refs import GraphFacts, graph_facts
from stargan_sdk.bundle.weights_layout import check_weights_header
from stargan_sdk.errors import BundleError, ManifestError
from stargan_sdk.host.files import atomic_write_text

RAFD_EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")


@dataclass(frozen=True)
class AttributeGroup:
    """`exclusive`: at most one attribute on (hair colours, expressions); `binary`: independent 0/1;
    `mask`: the joint-training dataset mask, set by the SDK, never by users."""

    name: str
    kind: str
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int | str, ...]  # "N" marks the dynamic batch dimension


@dataclass(frozen=True)
class Profile:
    min: int
    opt: int
    max: int


@dataclass(frozen=True)
class Artifact:
    kind: str  # onnx | tensorrt | safetensors
    role: str  # generator | classifier | preprocess | postprocess (uint8 boundary engines)
    file: str
    sha256: str
    precision: str
    opset: int | None = None
    tensorrt_version: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None
    profile: Profile | None = None
    parity: dict[str, float] | None = None  # measured at export: max_abs, mean_abs, psnr_db vs torch fp32
    external_data: dict[str, str] | None = None  # ONNX external-data files in the bundle -> their sha256


@dataclass(frozen=True)
class Manifest:
    attributes: tuple[str, ...]
    groups: tuple[AttributeGroup, ...]
    image_size: int
    dataset: str
    generator: dict[str, int]  # conv_dim, c_dim, repeat_num
    artifacts: tuple[Artifact, ...]
    source: dict[str, str]  # checkpoint, sha256, kind
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    normalization: dict[str, Any] = field(default_factory=lambda: {"mean": list(NORM_MEAN), "std": list(NORM_STD)})
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    producer: str = ""
    created: str = ""

    def __post_init__(self) -> None:
        if not self.inputs:
            object.__setattr__(self, "inputs", default_inputs(self.image_size, len(self.attributes)))
        if not self.outputs:
            object.__setattr__(self, "outputs", default_outputs(self.image_size))
        validate(self)

    @property
    def c_dim(self) -> int:
        return len(self.attributes)

    def artifact(
        self, role: str = "generator", kind: str | None = None, precision: str | None = None
    ) -> Artifact | None:
        for a in self.artifacts:
            if a.role == role and (kind is None or a.kind == kind) and (precision is None or a.precision == precision):
                return a
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for a in d["artifacts"]:  # written only when used: manifests stay readable by earlier SDKs
            if a.get("external_data") is None:
                a.pop("external_data", None)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        """Build from parsed JSON after the schema's field checks; raises ManifestError."""
        check_manifest_dict(d)
        return cls(
            attributes=tuple(d["attributes"]),
            groups=tuple(AttributeGroup(g["name"], g["kind"], tuple(g["attributes"])) for g in d["groups"]),
            image_size=d["image_size"],
            dataset=d["dataset"],
            generator=dict(d["generator"]),
            artifacts=tuple(_artifact_from_dict(a) for a in d["artifacts"]),
            source=dict(d["source"]),
            inputs=tuple(TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in d["inputs"]),
            outputs=tuple(TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in d["outputs"]),
            normalization={"mean": list(d["normalization"]["mean"]), "std": list(d["normalization"]["std"])},
            format=d["format"],
            format_version=d["format_version"],
            producer=d.get("producer", ""),
            created=d.get("created", ""),
        )


def _artifact_from_dict(a: dict[str, Any]) -> Artifact:
    values = dict(a)
    if values.get("profile") is not None:
        values["profile"] = Profile(**values["profile"])
    return Artifact(**values)


def derive_groups(attributes: tuple[str, ...] | list[str]) -> tuple[AttributeGroup, ...]:
    """Groups implied by attribute names: hair colours and RaFD expressions are exclusive (one-hot among
    those present, as in the paper), `mask_*` entries are the joint-training mask, the rest are binary."""
    hair = tuple(a for a in attributes if a in HAIR_COLOURS)
    expr = tuple(a for a in attributes if a in RAFD_EXPRESSIONS)
    mask = tuple(a for a in attributes if a.startswith("mask_"))
    binary = tuple(a for a in attributes if a not in hair + expr + mask)
    groups = []
    if hair:
        groups.append(AttributeGroup("hair_color", "exclusive", hair))
    if expr:
        groups.append(AttributeGroup("expression", "exclusive", expr))
    if binary:
        groups.append(AttributeGroup("binary", "binary", binary))
    if mask:
        groups.append(AttributeGroup("dataset_mask", "mask", mask))
    return tuple(groups)


def default_inputs(image_size: int, c_dim: int) -> tuple[TensorSpec, ...]:
    return (
        TensorSpec(INPUT_IMAGE, "float32", ("N", 3, image_size, image_size)),
        TensorSpec(INPUT_LABEL, "float32", ("N", c_dim)),
    )


def default_outputs(image_size: int) -> tuple[TensorSpec, ...]:
    return (TensorSpec(OUTPUT_IMAGE, "float32", ("N", 3, image_size, image_size)),)


def validate(m: Manifest) -> None:
    """Cross-field checks; raises ManifestError naming the first inconsistency."""
    if not m.attributes or len(set(m.attributes)) != len(m.attributes):
        raise ManifestError("manifest attributes must be a non-empty list of unique names")
    if m.image_size <= 0 or m.image_size % 4:
        raise ManifestError(f"manifest image_size {m.image_size} must be a positive multiple of 4")
    if m.generator.get("c_dim") != len(m.attributes):
        raise ManifestError(
            f"manifest lists {len(m.attributes)} attributes but the generator's c_dim is {m.generator.get('c_dim')}"
        )
    _validate_groups(m)
    files = [a.file for a in m.artifacts]
    if len(set(files)) != len(files):  # one file listed 4,000 times would be hashed 4,000 times
        dup = next(f for f in files if files.count(f) > 1)
        raise ManifestError(f"artifact {dup!r} is listed more than once in the manifest; re-export the bundle")
    for a in m.artifacts:
        if a.kind == "torch_export":  # torch.export archives unpickle on load: never opened, the bundle is refused
            raise ManifestError(
                f"artifact {a.file} is a torch.export archive, which runs code when loaded; this SDK "
                "reads generator.safetensors instead: re-export the bundle with stargan-export build"
            )
        if a.kind not in ARTIFACT_KINDS or a.role not in ROLES or a.precision not in PRECISIONS:
            raise ManifestError(f"artifact {a.file}: unknown kind/role/precision {a.kind}/{a.role}/{a.precision}")
        if Path(a.file).name != a.file or a.file.startswith("."):
            raise ManifestError(f"artifact file {a.file!r} must be a plain file name inside the bundle")
        if a.kind == "tensorrt" and (a.profile is None or not 1 <= a.profile.min <= a.profile.opt <= a.profile.max):
            raise ManifestError(f"engine {a.file} needs an optimisation profile with 1 <= min <= opt <= max")
    _validate_uint8_engines(m)
    _validate_tensors(m)


def _validate_uint8_engines(m: Manifest) -> None:
    """The uint8 boundary engines come as a pair of TensorRT plans around the generator's own engine, built with
    it: the same TensorRT release, GPU and batch profile (else they could not share its stream and buffers). A
    classifier engine reads what preprocess.plan writes, so it needs the pair (and the ONNX classifier it was
    built from) and the same build too."""
    extra = [a for a in m.artifacts if a.role in UINT8_ROLES]
    classifier = [a for a in m.artifacts if a.role == "classifier" and a.kind == "tensorrt"]
    if classifier and (not extra or len(classifier) > 1 or m.artifact(role="classifier", kind="onnx") is None):
        raise ManifestError(
            f"classifier engine {classifier[0].file} needs the uint8 boundary engines and classifier.onnx beside "
            "it, and no second classifier engine; re-export the bundle"
        )
    if not extra:
        return
    engine = m.artifact(role="generator", kind="tensorrt")
    roles = sorted(a.role for a in extra)
    if roles != sorted(UINT8_ROLES) or any(a.kind != "tensorrt" for a in extra) or engine is None:
        raise ManifestError(
            f"uint8 boundary artifacts {[a.file for a in extra]} must be one TensorRT plan each for "
            f"{' and '.join(UINT8_ROLES)}, beside the generator's engine; re-export the bundle"
        )
    for a in extra + classifier:
        built = (a.tensorrt_version, a.compute_capability, a.profile)
        if built != (engine.tensorrt_version, engine.compute_capability, engine.profile):
            raise ManifestError(
                f"{a.file} was built with another TensorRT release, GPU or batch profile than {engine.file}; "
                "re-export the bundle"
            )


def _validate_groups(m: Manifest) -> None:
    names = [g.name for g in m.groups]
    if len(set(names)) != len(names):
        raise ManifestError(f"attribute group names must be unique, got {names}")
    grouped: list[str] = []
    for g in m.groups:
        if g.kind not in GROUP_KINDS:
            raise ManifestError(f"attribute group {g.name!r} has unknown kind {g.kind!r}")
        if not g.attributes:
            raise ManifestError(f"attribute group {g.name!r} is empty")
        unknown = [a for a in g.attributes if a not in m.attributes]
        if unknown:
            raise ManifestError(f"attribute group {g.name!r} names unknown attributes {unknown}")
        grouped += g.attributes
    if sorted(grouped) != sorted(m.attributes):
        raise ManifestError("every attribute must belong to exactly one group")


def _validate_tensors(m: Manifest) -> None:
    """The engine boundary: exactly the SDK's tensor names, float32, shapes implied by image_size and c_dim."""
    for role, specs, expected in (
        ("input", m.inputs, default_inputs(m.image_size, m.c_dim)),
        ("output", m.outputs, default_outputs(m.image_size)),
    ):
        if sorted(t.name for t in specs) != sorted(t.name for t in expected):
            raise ManifestError(
                f"manifest declares tensors {[t.name for t in specs]}, the SDK's engine boundary is "
                f"{[t.name for t in expected]}; re-export the bundle"
            )
        by_name = {t.name: t for t in specs}
        for want in expected:
            got = by_name[want.name]
            if got.dtype != want.dtype or tuple(got.shape) != tuple(want.shape):
                raise ManifestError(
                    f"manifest is inconsistent: {role} {want.name!r} has shape {list(got.shape)} ({got.dtype}) but "
                    f"image_size {m.image_size} and {m.c_dim} attributes need {list(want.shape)} ({want.dtype}); "
                    f"the manifest was edited or comes from another export — re-export the bundle"
                )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _walk_onnx(path: Path, data: bytes) -> GraphFacts:
    """What a protobuf walk of an ONNX file saw (external data, operators, constant sizes)."""
    try:
        return graph_facts(data)
    except BundleError as e:  # the walk's reason, with the file it is about
        raise BundleError(f"cannot load {path.name}: {e}") from None


def inside(bundle_dir: str | os.PathLike[str], name: str) -> Path:
    """bundle/name after refusing a path that resolves outside the bundle (a symlink to /etc/passwd, ...):
    nothing outside the folder is opened, hashed or printed."""
    bundle = Path(bundle_dir)
    path = bundle / name
    try:
        real, root = path.resolve(strict=False), bundle.resolve(strict=True)
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on older Pythons
        raise BundleError(f"{name} in {bundle} cannot be resolved: {e}") from None
    if real != root and root not in real.parents:
        raise BundleError(f"{name} in {bundle} points outside the bundle folder; refused (copy the file in)")
    return path


def read_manifest(bundle_dir: str | os.PathLike[str]) -> Manifest:
    bundle = Path(bundle_dir)
    if not bundle.is_dir():
        raise BundleError(f"bundle folder not found: {bundle}")
    path = inside(bundle, MANIFEST_NAME)
    if not path.is_file():
        raise BundleError(
            f"{bundle} has no {MANIFEST_NAME}: not a bundle, or an export that did not finish "
            f"(run `stargan-export build CHECKPOINT --out {bundle}` again)"
        )
    if path.stat().st_size > MANIFEST_MAX_BYTES:
        raise ManifestError(
            f"{path} is {path.stat().st_size} bytes; a manifest is a few kB (limit {MANIFEST_MAX_BYTES})"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, and int() past sys.get_int_max_str_digits
        raise ManifestError(f"{path} is not valid JSON: {str(e)[:200]}") from None
    except OSError as e:
        raise ManifestError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:  # e.g. 100,000 nested brackets
        raise ManifestError(f"{path} is nested too deeply to be a manifest") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path} must hold a JSON object")
    return Manifest.from_dict(data)


def write_manifest(bundle_dir: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write manifest.json atomically (temp file + rename), after the same schema check the loader runs."""
    text = json.dumps(manifest.to_dict(), indent=2) + "\n"
    check_manifest_dict(json.loads(text))
    return atomic_write_text(Path(bundle_dir) / MANIFEST_NAME, text)


def verify_artifact(bundle_dir: str | os.PathLike[str], artifact: Artifact, manifest: Manifest | None = None) -> Path:
    """Path of an artifact after checking that it exists and its sha256 matches the manifest; for an ONNX
    graph, every external-data file it loads must be listed in the manifest with a matching sha256 too.

    With the `manifest`, the file must also fit it, read from the file without running anything: an ONNX
    graph's I/O tensors (names, float32, image_size, c_dim) and the generator weights' safetensors shapes.
    """
    path = inside(bundle_dir, artifact.file)
    if not path.is_file():
        raise BundleError(f"bundle is missing {artifact.file} listed in its manifest; re-export the bundle")
    data = path.read_bytes() if artifact.kind == "onnx" else None  # ONNX graphs are small: one read, two uses
    _check_sha(
        artifact.file, hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path), artifact.sha256
    )
    if data is not None:  # after the checksum: damage reads as damage; then operators before any runtime session
        facts = _walk_onnx(path, data)
        check_graph(facts, artifact.file)
        if manifest is not None:
            check_graph_io(manifest, artifact.role, facts.graph_inputs(), facts.outputs, artifact.file)
        external = facts.locations
        listed = artifact.external_data or {}
        unlisted = sorted(external - set(listed))
        if unlisted:
            raise BundleError(
                f"{artifact.file} loads external data {unlisted[0]!r} that the manifest does not checksum; "
                f"re-export the bundle (or list it under the artifact's external_data)"
            )
        for name, sha in listed.items():
            data_path = inside(bundle_dir, name)
            if not data_path.is_file():
                raise BundleError(f"bundle is missing {name}, external data of {artifact.file}; re-export the bundle")
            _check_sha(name, sha256_file(data_path), sha)
    elif manifest is not None and artifact.kind == WEIGHTS_KIND and artifact.role == "generator":
        check_weights_header(path, manifest.generator)
    return path


def _check_sha(file: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise BundleError(
            f"{file} is corrupted or was replaced: sha256 {actual[:12]}… does not match the manifest's "
            f"{expected[:12]}…; re-export the bundle"
        )
