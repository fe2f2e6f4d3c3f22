"""Benchmark report: ratios to the baselines, roofline share, environment, table, JSON and plot.

Usage: report = build_report(...); print_report(report); write_json(report, Path("out.json"))
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench_runner_base import BASELINE, ORT_RAW, TRT_RAW
from bench_timing import gflop_per_image
from stargan_sdk.host.files import atomic_write, atomic_write_text


def device_name(device: str) -> str:
    if device != "cpu":
        try:
            import torch

            return torch.cuda.get_device_name(torch.device(device))
        except Exception:
            return device
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "onnxruntime", "torch", "triton", "tensorrt", "onnx", "openvino"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            continue
    try:
        import torch

        if torch.version.cuda:
            out["cuda"] = torch.version.cuda
            out["cudnn"] = str(torch.backends.cudnn.version())
    except Exception:
        pass
    return out


def git_commit() -> str:
    """The commit measured: STARGAN_GIT_COMMIT where the tree travels without .git (a GPU machine), else git's."""
    if os.environ.get("STARGAN_GIT_COMMIT"):
        return os.environ["STARGAN_GIT_COMMIT"]
    try:
        root = Path(__file__).resolve().parent.parent
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


ISA_ENV = "ONEDNN_MAX_CPU_ISA"  # read by oneDNN inside OpenVINO's CPU plugin (its kernels show as jit_avx2_*)
CAPABILITIES_ENV = "STARGAN_CPU_CAPABILITIES"  # the OpenVINO backend's override (stargan_sdk.backends.openvino)


def picked_row(info: dict[str, Any]) -> dict[str, Any]:
    """For an `auto` row: the backend and precision it chose (from `describe()`), e.g. "openvino int8"."""
    picked = " ".join(str(info[k]) for k in ("backend", "precision") if info.get(k))
    return {"picked": picked or "unknown", "picked_reason": info.get("precision_reason")}


def row_label(row: dict[str, Any]) -> str:
    return f"{row['backend']} → {row['picked']}" if row.get("picked") else row["backend"]


def build_report(
    manifest: Any,
    device: str,
    results: list[dict[str, Any]],
    skipped: dict[str, str],
    gemm: dict[str, float],
    memory: dict[str, Any],
    peak_rss: float,
    processing: dict[str, float],
) -> dict[str, Any]:
    g = manifest.generator
    flop = gflop_per_image(manifest.image_size, g["conv_dim"], g["repeat_num"], g["c_dim"])
    best_gemm = max(gemm.values()) if gemm else float("nan")
    by_key = {(r["backend"], r["batch"]): r for r in results}
    for r in results:
        base = by_key.get((BASELINE, r["batch"]))
        raw = by_key.get((ORT_RAW, r["batch"])) or by_key.get((TRT_RAW, r["batch"]))
        r["speedup_vs_eager"] = base["median_ms"] / r["median_ms"] if base else None
        r["speedup_vs_raw"] = raw["median_ms"] / r["median_ms"] if raw else None
        r["gflops"] = flop * r["throughput_ips"]
        r["fraction_of_gemm"] = r["gflops"] / best_gemm if gemm else None
    return {
        "device": {
            "kind": "cpu" if device == "cpu" else "cuda",
            "name": device_name(device),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            # set: the SDK was told the CPU has only these (e.g. FP32,INT8: an AVX2-only CPU's answer)
            "cpu_capabilities_override": os.environ.get(CAPABILITIES_ENV) or None,
            # set: oneDNN (OpenVINO's convolutions) kept to this instruction set, e.g. AVX2 on an AVX-512 machine
            "onednn_max_cpu_isa": os.environ.get(ISA_ENV) or None,
        },
        "versions": versions(),
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bundle": {"image_size": manifest.image_size, "generator": dict(g), "attributes": list(manifest.attributes)},
        "gflop_per_image": flop,
        "gemm_gflops": gemm,
        "results": results,
        "skipped": skipped,
        "memory": {"per_backend": memory, "peak_rss_mib": peak_rss},
        "sdk_processing": processing,
        "notes": "latency = host float32 in -> host float32 out; GPU rows include H2D/D2H copies; "
        "cuda_graphs per row in info.",
    }


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    dev = report["device"]
    table = Table(
        title=f"{dev['name']} — {report['gflop_per_image']:.1f} GFLOP/image, "
        f"GEMM {max(report['gemm_gflops'].values(), default=float('nan')):.0f} GFLOP/s"
    )
    for col in (
        "backend",
        "batch",
        "img/s",
        "mean ms",
        "min",
        "p50",
        "p90",
        "p95",
        "p99",
        "×eager",
        "×raw",
        "GFLOP/s",
        "%GEMM",
        "PSNR dB",
    ):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in report["results"]:
        table.add_row(
            row_label(r),
            str(r["batch"]),
            f"{r['throughput_ips']:.1f}",
            f"{r['mean_ms']:.2f}",
            f"{r['min_ms']:.2f}",
            f"{r['median_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            _fmt(r["speedup_vs_eager"], "×"),
            _fmt(r["speedup_vs_raw"], "×"),
            f"{r['gflops']:.0f}",
            _fmt(r["fraction_of_gemm"] and 100 * r["fraction_of_gemm"], "%"),
            "exact" if r.get("psnr_db_vs_fp32", 0) >= 200 else f"{r.get('psnr_db_vs_fp32', float('nan')):.1f}",
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    for r in report["results"]:
        if "split_ms" in r:
            s = r["split_ms"]
            console.print(f"  {r['backend']} batch {r['batch']}: " + ", ".join(f"{k} {v:.3f}" for k, v in s.items()))
    override = report["device"].get("cpu_capabilities_override")
    if override:
        console.print(f"{CAPABILITIES_ENV}={override}: the SDK saw only these CPU capabilities")
    if report["device"].get("onednn_max_cpu_isa"):
        console.print(f"{ISA_ENV}={report['device']['onednn_max_cpu_isa']}: OpenVINO's oneDNN kernels kept to it")
    for name, why in report["skipped"].items():
        console.print(f"[yellow]skipped {name}[/]: {why}")
    p = report["sdk_processing"]
    console.print(
        f"SDK pre/post-processing per image: {p['preprocess_ms_per_image']:.3f} / "
        f"{p['postprocess_ms_per_image']:.3f} ms; peak RSS {report['memory']['peak_rss_mib']:.0f} MiB"
    )


def _fmt(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:.2f}{unit}" if unit == "×" else f"{value:.0f}{unit}"


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str) + "\n"
    atomic_write_text(path, text)


def write_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["backend"] for r in report["results"]):
        rows = sorted((r["batch"], r["throughput_ips"]) for r in report["results"] if r["backend"] == name)
        ax.plot([b for b, _ in rows], [t for _, t in rows], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s")
    ax.set_title(f"StarGAN {report['bundle']['image_size']} px — {report['device']['name']}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
