"""Whether a bundle's TensorRT plan can run here: a usable `tensorrt`, the exact TensorRT release, the GPU.

Usage: art = check_engine(Bundle.open(folder), device=0)  # EngineMismatchError says what to rebuild, and how

A plan is only guaranteed to deserialize in the TensorRT release that built it (NVIDIA's rule unless the engine
is built version-compatible, which the exporter does not do: it costs speed and needs the lean runtime), so the
full version recorded in the manifest must equal this machine's, build number included.
"""

from __future__ import annotations

import logging
import re
from types import ModuleType

from stargan_sdk import cuda
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Artifact
from stargan_sdk.errors import BackendUnavailableError, EngineMismatchError

log = logging.getLogger("stargan_sdk.backends.tensorrt")
MIN_TENSORRT_MAJOR = 10


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or BackendUnavailableError saying how to get a usable one."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailableError(
            "TensorRT is not installed: pip install 'stargan[tensorrt]' on a machine with an NVIDIA GPU"
        ) from None
    except OSError as e:  # the wheel is there but libnvinfer or the CUDA libraries it needs are not
        raise BackendUnavailableError(f"TensorRT is installed but cannot load its libraries: {e}") from None
    if version_tuple(trt.__version__)[:1] < (MIN_TENSORRT_MAJOR,):
        raise BackendUnavailableError(f"TensorRT {trt.__version__} is too old: this backend needs TensorRT 10+")
    return trt


def version_tuple(version: str) -> tuple[int, ...]:
    """(10, 13, 3, 9) for "10.13.3.9" (a ".post1" or "+local" tail is not part of the release); () if unparsable."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", version or "")
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def rebuild_command(bundle: Bundle) -> str:
    checkpoint = bundle.manifest.source.get("checkpoint") or "CHECKPOINT"
    return f"stargan-export build {checkpoint} --out {bundle.folder} --fp16 --engine"


def match_engine(art: Artifact, trt_version: str, gpu: cuda.DeviceInfo, rebuild: str) -> None:
    """Raise EngineMismatchError unless the engine was built with exactly this TensorRT release for this GPU
    architecture. Another GPU model of the same compute capability only warns: TensorRT loads such an engine
    (its tactics may be slower), while another architecture or TensorRT release may not run it."""
    todo = f"rebuild it on this GPU ({gpu.name}) with TensorRT {trt_version}: {rebuild}"
    if not art.tensorrt_version:
        raise EngineMismatchError(f"{art.file}: the manifest does not record its TensorRT version; {todo}")
    if version_tuple(art.tensorrt_version) != version_tuple(trt_version):
        raise EngineMismatchError(
            f"{art.file} was built with TensorRT {art.tensorrt_version}, this machine has {trt_version} (a plan "
            f"only loads in the exact release that built it); {todo}"
        )
    if art.compute_capability and art.compute_capability != gpu.compute_capability:
        raise EngineMismatchError(
            f"{art.file} was built for compute capability {art.compute_capability} ({art.gpu_name}), "
            f"this GPU is {gpu.compute_capability} ({gpu.name}); {todo}"
        )
    if art.gpu_name and art.gpu_name.strip() != gpu.name.strip():
        log.warning("%s was built on %s, runs on %s and may be slower; %s", art.file, art.gpu_name, gpu.name, todo)


def check_engine(bundle: Bundle, device: int = 0) -> Artifact:
    """The bundle's engine artifact if TensorRT, the GPU and the engine fit; else BackendUnavailableError
    (EngineMismatchError for a mismatched engine) saying what is missing."""
    trt = import_tensorrt()
    available = cuda.cuda_available()
    if not available.ok:
        raise BackendUnavailableError(f"no usable CUDA GPU: {available.reason}")
    count = cuda.device_count()
    if not 0 <= device < count:
        raise BackendUnavailableError(f"CUDA device {device} does not exist (this machine has {count})")
    rebuild = rebuild_command(bundle)
    art = bundle.artifact(role="generator", kind="tensorrt")
    if art is None:
        raise BackendUnavailableError(
            f"bundle {bundle.folder} has no TensorRT engine; build one on this GPU: {rebuild}"
        )
    match_engine(art, trt.__version__, cuda.device_properties(device), rebuild)
    return art
