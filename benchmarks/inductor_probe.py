"""The inductor backend's load cost (cold vs warm compile cache, each in a fresh process) and a kernel profile.

Usage: python benchmarks/inductor_probe.py BUNDLE --batch-sizes 1,8,64,256 --json out.json [--profile-batch 64]

Cold: an empty cache folder, so Inductor generates and compiles every kernel. Warm: a second process on the
same folder, which should find Inductor's compiled graphs on disk. The profile runs the compiled FP16 graph
once at one batch size without a CUDA graph (so the profiler sees each kernel) and groups CUDA time by
kind: convolutions (cuDNN / GEMM), Triton kernels (the fused norms, casts and activations), the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])

_LOAD = """
import json, sys, time
t0 = time.perf_counter()
from stargan_sdk import Translator
t1 = time.perf_counter()
t = Translator.load(sys.argv[1], backend="inductor", batch_sizes=tuple(json.loads(sys.argv[2])), cache_dir=sys.argv[3],
                    device_type=sys.argv[4])
t2 = time.perf_counter()
from torch._dynamo.utils import counters
info = t.describe()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": info["first_call_s"],
                  "parity_psnr_db": info["parity_psnr_db"], "device": info["device"],
                  "fxgraph_cache_hit": counters["inductor"]["fxgraph_cache_hit"],
                  "fxgraph_cache_miss": counters["inductor"]["fxgraph_cache_miss"]}))
"""


def _load_in_fresh_process(bundle: Path, sizes: list[int], cache: Path, device_type: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, str(bundle), json.dumps(sizes), str(cache), device_type],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"loading failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def kernel_profile(bundle: Path, batch: int, cache: Path) -> dict:
    """CUDA time of one compiled FP16 forward at `batch`, grouped by kernel kind (top kernels listed)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)  # the graph the backend compiled: taken from the cache
    import torch
    from torch.profiler import ProfilerActivity, profile

    from stargan_sdk.backends.torch_backend import to_precision
    from stargan_sdk.backends.torch_generator import load_generator
    from stargan_sdk.bundle.manifest import read_manifest

    manifest = read_manifest(bundle)
    module = to_precision(torch, load_generator(bundle, manifest).cuda(), fp16=True).to(
        memory_format=torch.channels_last
    )
    compiled = torch.compile(module, dynamic=False, fullgraph=True)
    size = manifest.image_size
    x = torch.rand(batch, 3, size, size, device="cuda").mul(2).sub(1).contiguous(memory_format=torch.channels_last)
    c = torch.randint(0, 2, (batch, manifest.c_dim), device="cuda").float()
    with torch.no_grad():
        for _ in range(3):
            compiled(x, c)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            compiled(x, c)
            torch.cuda.synchronize()
    kernels = [(e.key, e.device_time_total / 1000.0) for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(ms for _, ms in kernels)
    groups = {"convolution": 0.0, "triton": 0.0, "other": 0.0}
    for name, ms in kernels:
        low = name.lower()
        kind = (
            "triton"
            if low.startswith("triton")
            else "convolution"
            if any(k in low for k in ("conv", "gemm", "xmma", "cudnn", "sm90", "implicit", "dgrad", "wgrad"))
            else "other"
        )
        groups[kind] += ms
    top = sorted(kernels, key=lambda k: -k[1])[:12]
    return {
        "batch": batch,
        "cuda_ms_total": total,
        "by_kind_ms": groups,
        "top_kernels": [{"name": n[:120], "ms": ms} for n, ms in top],
    }


@app.command()
def main(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder with generator.safetensors.")],
    batch_sizes: Annotated[str, typer.Option(help="Comma list of static sizes to compile.")] = "1,8,64,256",
    device_type: Annotated[str, typer.Option(help="cuda or cpu (cpu: a tiny dry run of the same path).")] = "cuda",
    profile_batch: Annotated[int, typer.Option(help="Batch for the kernel profile (0: none; CUDA only).")] = 64,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Keep the compile cache here (default: a temp folder).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON.")] = None,
) -> None:
    sizes = [int(s) for s in batch_sizes.split(",") if s.strip()]
    cache = cache_dir or Path(tempfile.mkdtemp(prefix="inductor-probe-"))
    shutil.rmtree(cache, ignore_errors=True)  # cold means cold
    t0 = time.perf_counter()
    cold = _load_in_fresh_process(bundle, sizes, cache, device_type)
    warm = _load_in_fresh_process(bundle, sizes, cache, device_type)
    report = {"batch_sizes": sizes, "cold": cold, "warm": warm, "wall_s": time.perf_counter() - t0}
    if profile_batch and device_type == "cuda":
        report["profile"] = kernel_profile(bundle, profile_batch, cache)
    text = json.dumps(report, indent=2)
    typer.echo(text)
    if json_out:
        from stargan_sdk.host.files import atomic_write_text

        json_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_out, text + "\n")
    if cache_dir is None:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
