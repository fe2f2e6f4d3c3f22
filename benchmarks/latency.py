"""Latency and throughput of every backend side by side, trtexec-style, as ratios to the eager baseline.

Usage: python benchmarks/latency.py models/toyfaces-64 --batch-sizes 1,8 --json benchmarks/results/cpu.json

All backends are timed interleaved in one process (a new seeded random order each round, each backend in a warm
block of --block calls after one untimed call) so machine drift hits them alike; ratios are medians over the same
rounds. Inputs are host float32 arrays; GPU
backends include their host<->device copies.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_report import build_report, picked_row, print_report, write_json, write_plot  # noqa: E402
from bench_runners import BASELINE, BASELINE_STRICT, ORT_RAW, make_runner, peak_rss_mib, psnr_db, rss_mib  # noqa: E402
from bench_timing import interleaved, measure_gemm_gflops, summarize  # noqa: E402

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _preprocessing_ms(image_size: int, batch: int = 8) -> dict[str, float]:
    """SDK pre/post-processing cost per image: uint8 HWC -> normalised NCHW float32 -> uint8 HWC."""
    import numpy as np

    from stargan_sdk.images.imaging import Normalizer

    norm = Normalizer()
    images = np.random.default_rng(0).integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8)
    out = np.empty((batch, 3, image_size, image_size), np.float32)
    pre, post = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        x = norm.preprocess_into(images, out)
        t1 = time.perf_counter()
        norm.postprocess(x)
        post.append(time.perf_counter() - t1)
        pre.append(t1 - t0)
    return {
        "preprocess_ms_per_image": 1000 * float(np.median(pre)) / batch,
        "postprocess_ms_per_image": 1000 * float(np.median(post)) / batch,
    }


@app.command()
def main(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (manifest.json + artifacts).")],
    backends: Annotated[
        str,
        typer.Option(
            help="Comma list of SDK backends (auto, onnxruntime, onnxruntime-fp16, torch, "
            "torch-fp32, torch-cl, tensorrt, openvino, openvino-fp32, openvino-bf16, "
            "openvino-int8, inductor, inductor-fp32, inductor-nchw, inductor-autotune, inductor-pipe32, "
            "trt-raw) and optionally torch-eager-fp32-notf32 (then the PSNR "
            "reference: IEEE FP32); the baselines are always added."
        ),
    ] = "auto,onnxruntime,torch",
    batch_sizes: Annotated[str, typer.Option(help="Comma list of batch sizes.")] = "1,8,32",
    iterations: Annotated[int, typer.Option(min=3, help="Timed rounds per batch size.")] = 30,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed rounds first.")] = 3,
    device: Annotated[str, typer.Option(help="cpu, or cuda / cuda:N for GPU backends and the baseline.")] = "cpu",
    budget_s: Annotated[float, typer.Option(help="Time budget per batch size (keeps >= 3 rounds).")] = 60.0,
    block: Annotated[
        int,
        typer.Option(
            min=1,
            help="Timed calls per backend per round, after one untimed call that refills the caches (1: one "
            "cold-cache call per round, the method before 2026-12-05).",
        ),
    ] = 3,
    pinned_inputs: Annotated[
        bool,
        typer.Option(
            help="Input images in page-locked memory for the eager baselines and "
            "the SDK rows alike (needs CUDA): GPU backends then upload them "
            "in place, without a staging copy."
        ),
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write throughput vs batch size as PNG.")] = None,
) -> None:
    from stargan_sdk.bundle.manifest import read_manifest
    from stargan_sdk.errors import StarGANError

    try:
        manifest = read_manifest(bundle)
    except StarGANError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if pinned_inputs and device == "cpu":
        typer.echo("error: --pinned-inputs needs --device cuda (page-locked memory is a CUDA allocation)", err=True)
        raise typer.Exit(2)
    names = (
        [BASELINE]
        + ([ORT_RAW] if device == "cpu" else [])
        + [b for b in _csv(backends) if b not in (BASELINE, ORT_RAW)]
    )
    sizes = [int(b) for b in _csv(batch_sizes)]
    runners, skipped, memory = {}, {}, {}
    for name in names:
        before, t0 = rss_mib(), time.perf_counter()
        try:
            runners[name] = make_runner(
                name, bundle, device, manifest.image_size, manifest.c_dim, tuple(sizes), pinned=pinned_inputs
            )
        except Exception as e:  # a backend that cannot run here is reported, not fatal
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        memory[name] = {"rss_delta_after_load_mib": rss_mib() - before, "load_s": time.perf_counter() - t0}
    if BASELINE not in runners:
        typer.echo(f"error: the eager baseline cannot run: {skipped.get(BASELINE)}", err=True)
        raise typer.Exit(2)
    # IEEE FP32 (TF32 off) is the accuracy reference when it runs; else the eager baseline.
    reference_name = BASELINE_STRICT if BASELINE_STRICT in runners else BASELINE
    results = []
    for batch in sizes:
        for r in runners.values():
            r.prepare(batch)
        samples = interleaved({n: r.run for n, r in runners.items()}, iterations, warmup, budget_s, block)
        reference = runners[reference_name].run()  # FP32 outputs on the same inputs
        for name, ms in samples.items():
            entry = {
                "backend": name,
                **summarize(ms, batch).to_dict(),
                "info": runners[name].info,
                "psnr_db_vs_fp32": psnr_db(reference, runners[name].run()),
            }
            if name == "auto":  # which engine and precision `auto` chose here, and why
                entry.update(picked_row(runners[name].info))
            if runners[name].split is not None:
                entry["split_ms"] = runners[name].split()
            results.append(entry)
    for r in runners.values():
        r.close()
    gemm = measure_gemm_gflops("cpu" if device == "cpu" else device)
    report = build_report(
        manifest, device, results, skipped, gemm, memory, peak_rss_mib(), _preprocessing_ms(manifest.image_size)
    )
    report["psnr_reference"] = reference_name
    report["input_memory"] = "pinned" if pinned_inputs else "pageable"
    # timed calls per backend per round after one untimed call (absent in older reports: one cold call per round)
    report["block"] = block
    print_report(report)
    if json_out:
        write_json(report, json_out)
        typer.echo(f"wrote {json_out}")
    if plot:
        write_plot(report, plot)
        typer.echo(f"wrote {plot}")


if __name__ == "__main__":
    app()
