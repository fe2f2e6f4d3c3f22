"""Build a bundle: checkpoint → ONNX (FP32, FP16), classifier, safetensors weights, engine, manifest.json.

Usage: manifest = build_bundle("200000-G.ckpt", "bundle", attributes=["Black_Hair", ...], image_size=128)

Every artifact is first written and checked inside a staging folder beside the bundle; only when all of
them pass is `manifest.json` written there and the folder swapped with the bundle atomically
(`stargan_export.staging`). A build that fails or is killed at any step leaves an existing bundle whole.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import onnx
import torch

from stargan_export import __version__, checks, int8
from stargan_export.errors import EngineUnavailableError, ExportError
from stargan_export.fp16 import onnx_fp32_to_fp16
from stargan_export.onnx_export import check_opset, classifier_to_onnx, save_onnx, torch_to_onnx
from stargan_export.progress import Steps
from stargan_export.sources import Sources, load_sources
from stargan_export.staging import Staging, remove_stale
from stargan_export.tensorrt_build import (
    classifier_engine,
    engine_unavailable_reason,
    onnx_to_engine,
    uint8_engines,
)
from stargan_export.torch_weights import torch_to_safetensors, weights_parity
from stargan_export.validate import validate_bundle  # noqa: F401  (re-exported: bundle API in one place)
from stargan_sdk.bundle import constants as C
from stargan_sdk.bundle.manifest import (
    Artifact,
    Manifest,
    Profile,
    derive_groups,
    read_manifest,
    sha256_file,
    write_manifest,
)
from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB
from stargan_sdk.errors import BundleError

_log = logging.getLogger("stargan_export")
TIMING_CACHE = "timing.cache"  # TensorRT timing cache kept in the bundle folder (not an artifact)


@dataclass
class _Build:
    """State shared by the steps of one build."""

    src: Sources
    staging: Path
    opset: int
    artifacts: list[Artifact] = field(default_factory=list)
    fp32_model: onnx.ModelProto | None = None

    def add(self, kind: str, role: str, file: str, precision: str, **extra: object) -> Artifact:
        artifact = Artifact(
            kind=kind, role=role, file=file, sha256=sha256_file(self.staging / file), precision=precision, **extra
        )
        self.artifacts.append(artifact)
        return artifact


def build_bundle(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    attributes: Sequence[str] | None = None,
    image_size: int | None = None,
    fp16: bool = True,
    classifier: bool = False,
    engine: bool | None = None,
    torch_weights: bool = True,
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 64,
    opset: int = 17,
    workspace_gib: float = 4.0,
    int8_calibration: str | Path | None = None,
    int8_target_psnr: float = AUTO_INT8_MIN_PSNR_DB,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Manifest:
    """Export every requested artifact, check each against torch, then write manifest.json last.

    `engine=None` builds a TensorRT engine when TensorRT and a GPU are present and otherwise logs one
    line saying why not; `engine=True` makes their absence an EngineUnavailableError. `log` receives
    one-line notes (default: the `stargan_export` logger). `int8_calibration`, a folder of face images, adds
    `generator.int8.onnx` (see `stargan_export.int8`); its images are read before anything is written, and
    convolutions stay float until its held-out PSNR vs FP32 reaches `int8_target_psnr`.
    """
    note = log or _log.info
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"output path {out} is a file; give a folder for the bundle")
    check_opset(opset)
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ExportError(f"batch sizes need 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    src = load_sources(checkpoint, attributes=attributes, image_size=image_size, classifier=classifier)
    calibration = None
    if int8_calibration is not None:  # a bad calibration image fails here, before the bundle is touched
        calibration = int8.prepare_calibration(int8_calibration, src.image_size, src.attributes)
    build_engine = _want_engine(engine, note)
    _make_dir(out.parent)
    for stale in remove_stale(out):
        note(f"removed {stale.name}, left by an export that was killed")
    stage = Staging(out)  # the bundle folder itself is created (or swapped) only by a successful commit
    staging = stage.path
    plan = ["generator.onnx"] + ["fp16"] * fp16 + ["classifier"] * classifier + ["weights"] * torch_weights
    plan += ["engine"] * build_engine + ["int8"] * (calibration is not None)
    try:
        state = _Build(src, staging, opset)
        with Steps(len(plan) + 1, enabled=progress) as steps:
            steps.run("ONNX FP32 generator", lambda: _export_fp32(state, (min_batch, opt_batch, max_batch)))
            if fp16:
                steps.run("ONNX FP16 generator", lambda: _export_fp16(state))
            if classifier:
                steps.run("ONNX classifier", lambda: _export_classifier(state))
            if torch_weights:
                steps.run("safetensors weights", lambda: _export_weights(state))
            if build_engine:
                steps.run(
                    "TensorRT engine",
                    lambda: _export_engine(
                        state,
                        _timing_cache(out, staging),
                        Profile(min_batch, opt_batch, max_batch),
                        workspace_gib,
                        fp16,
                    ),
                )
            if calibration is not None:
                steps.run(
                    "ONNX INT8 generator",
                    lambda: state.artifacts.append(
                        int8.quantize_onnx(
                            staging / C.GENERATOR_ONNX,
                            staging / C.GENERATOR_INT8_ONNX,
                            calibration,
                            target_psnr_db=int8_target_psnr,
                            opset=opset,
                            log=note,
                        )
                    ),
                )
            manifest = steps.run("manifest", lambda: _commit(out, stage, state))
    finally:
        stage.close()
    return manifest


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create the bundle folder {out}: {e.strerror}") from None


def _timing_cache(out: Path, staging: Path) -> Path:
    """The bundle's TensorRT timing cache, copied into staging: the build updates the copy, the commit keeps it."""
    if (out / TIMING_CACHE).is_file():
        shutil.copyfile(out / TIMING_CACHE, staging / TIMING_CACHE)
    return staging / TIMING_CACHE


def _want_engine(engine: bool | None, note: Callable[[str], None]) -> bool:
    if engine is False:
        return False
    reason = engine_unavailable_reason()
    if reason is None:
        return True
    if engine:
        raise EngineUnavailableError(f"--engine was requested but {reason}")
    note(f"no TensorRT engine built: {reason}")
    return False


def _export_fp32(state: _Build, batches: tuple[int, int, int]) -> None:
    src = state.src
    path = state.staging / C.GENERATOR_ONNX
    state.fp32_model = torch_to_onnx(src.generator.model, path, src.image_size, len(src.attributes), state.opset)
    parity = checks.generator_onnx_parity(
        src.generator.model, path, src.image_size, len(src.attributes), checks.parity_batches(*batches), "fp32"
    )
    state.add("onnx", "generator", C.GENERATOR_ONNX, "fp32", opset=state.opset, parity=parity)


def _export_fp16(state: _Build) -> None:
    src = state.src
    path = state.staging / C.GENERATOR_FP16_ONNX
    assert state.fp32_model is not None  # the FP32 step always runs first
    save_onnx(onnx_fp32_to_fp16(state.fp32_model), path)
    parity = checks.generator_onnx_parity(src.generator.model, path, src.image_size, len(src.attributes), (8,), "fp16")
    state.add("onnx", "generator", C.GENERATOR_FP16_ONNX, "fp16", opset=state.opset, parity=parity)


def _export_classifier(state: _Build) -> None:
    from stargan_train.model import DomainClassifier

    src = state.src
    assert src.discriminator is not None
    head = DomainClassifier(src.discriminator.model)
    path = state.staging / C.CLASSIFIER_ONNX
    classifier_to_onnx(head, path, src.image_size, state.opset)
    parity = checks.classifier_parity(head, path, src.image_size)
    state.add("onnx", "classifier", C.CLASSIFIER_ONNX, "fp32", opset=state.opset, parity=parity)


def _export_weights(state: _Build) -> None:
    src = state.src
    path = state.staging / C.GENERATOR_WEIGHTS
    torch_to_safetensors(src.generator.model, path)
    g = src.generator.config
    parity = weights_parity(src.generator.model, path, src.image_size, len(src.attributes), g.conv_dim, g.repeat_num)
    state.add(C.WEIGHTS_KIND, "generator", C.GENERATOR_WEIGHTS, "fp32", parity=parity)


def _export_engine(state: _Build, cache: Path, profile: Profile, workspace_gib: float, fp16: bool) -> None:
    src = state.src
    source = C.GENERATOR_FP16_ONNX if fp16 else C.GENERATOR_ONNX
    precision = "fp16" if fp16 else "fp32"
    path = state.staging / C.GENERATOR_PLAN
    info = onnx_to_engine(
        state.staging / source,
        path,
        min_batch=profile.min,
        opt_batch=profile.opt,
        max_batch=profile.max,
        image_size=src.image_size,
        c_dim=len(src.attributes),
        workspace_gib=workspace_gib,
        timing_cache_path=cache,
    )
    parity = checks.engine_parity(src.generator.model, path, src.image_size, len(src.attributes), profile, precision)
    state.add(
        "tensorrt",
        "generator",
        C.GENERATOR_PLAN,
        precision,
        tensorrt_version=info.tensorrt_version,
        gpu_name=info.gpu_name,
        compute_capability=info.compute_capability,
        profile=profile,
        parity=parity,
    )
    # uint8 at the boundary (normalised on the GPU): two tiny plans with the same profile, checked together
    plans = (state.staging / C.PREPROCESS_PLAN, state.staging / C.POSTPROCESS_PLAN)
    uint8_engines(state.staging, batches=(profile.min, profile.opt, profile.max), image_size=src.image_size,
                  mean=C.NORM_MEAN, std=C.NORM_STD, timing_cache_path=cache)  # fmt: skip
    parity = checks.uint8_engine_parity(path, plans, src.image_size, len(src.attributes), profile)
    built = {"tensorrt_version": info.tensorrt_version, "gpu_name": info.gpu_name, "profile": profile}
    built["compute_capability"] = info.compute_capability
    for role, plan in zip(C.UINT8_ROLES, plans):
        state.add("tensorrt", role, plan.name, "fp32", parity=parity, **built)
    if any(a.role == "classifier" for a in state.artifacts):  # the estimate on the GPU too, fed by preprocess.plan
        onnx_path, plan = state.staging / C.CLASSIFIER_ONNX, state.staging / C.CLASSIFIER_PLAN
        batches = (profile.min, profile.opt, profile.max)
        classifier_engine(onnx_path, plan, batches=batches, image_size=src.image_size, timing_cache_path=cache)
        parity = checks.classifier_engine_parity(plans[0], plan, onnx_path, src.image_size, profile)
        state.add("tensorrt", "classifier", plan.name, "fp32", parity=parity, **built)


def _commit(out: Path, stage: Staging, state: _Build) -> Manifest:
    """Write manifest.json into the staging folder and swap it with the bundle in one atomic exchange: a kill
    at any instant leaves either the whole old bundle or the whole new one. Artifacts of the old manifest
    that the new one lacks (e.g. an engine built for another GPU) are left behind with the old folder."""
    manifest = _manifest(state)
    stage.commit(
        [a.file for a in state.artifacts],
        _old_artifact_files(out),
        lambda d: write_manifest(d, manifest),
        C.MANIFEST_NAME,
    )
    return manifest


def _old_artifact_files(out: Path) -> set[str]:
    try:
        return {a.file for a in read_manifest(out).artifacts}
    except BundleError:
        return set()


def _manifest(state: _Build) -> Manifest:
    src = state.src
    g = src.generator
    # The file name and its sha256 identify the checkpoint; the builder's absolute path would only leak its
    # folder layout (and is meaningless on the machine that loads the bundle).
    source = {"checkpoint": g.source.name, "sha256": g.sha256, "kind": g.kind}
    if src.discriminator is not None:
        source["classifier_checkpoint"] = src.discriminator.source.name
        source["classifier_sha256"] = src.discriminator.sha256
    return Manifest(
        attributes=src.attributes,
        groups=derive_groups(src.attributes),
        image_size=src.image_size,
        dataset=src.dataset,
        generator={"conv_dim": g.config.conv_dim, "c_dim": g.config.c_dim, "repeat_num": g.config.repeat_num},
        artifacts=tuple(state.artifacts),
        source=source,
        producer=f"stargan-export {__version__} (torch {torch.__version__}, onnx {onnx.__version__})",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
