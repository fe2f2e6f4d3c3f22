"""benchmarks/: the FLOP model, timing statistics, and one real latency run writing a complete JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_timing import gflop_per_image, interleaved, summarize  # noqa: E402


def test_flop_model_matches_the_published_cost() -> None:
    assert gflop_per_image(128) == pytest.approx(19.92, abs=0.01)  # 9.96 GMAC per 128 px image (design.md)
    assert gflop_per_image(256) == pytest.approx(4 * gflop_per_image(128), rel=1e-3)


def test_summary_statistics_on_known_samples() -> None:
    s = summarize([float(v) for v in range(1, 101)], batch=4)
    assert (s.min_ms, s.max_ms, s.median_ms, s.mean_ms) == (1.0, 100.0, 50.5, 50.5)
    assert s.p90_ms == pytest.approx(90.1) and s.p99_ms == pytest.approx(99.01)
    assert s.throughput_ips == pytest.approx(4 * 1000 / 50.5)
    with pytest.raises(ValueError):
        summarize([], batch=1)


def test_blocks_refill_then_time_consecutive_calls() -> None:
    calls: list[str] = []
    samples = interleaved({n: (lambda n=n: calls.append(n)) for n in "ab"}, iterations=3, warmup=0, block=2)
    assert {k: len(v) for k, v in samples.items()} == {"a": 6, "b": 6}  # the untimed call is not a sample
    runs = [calls[i : i + 3] for i in range(0, len(calls), 3)]
    assert len(runs) == 6 and all(len(set(r)) == 1 for r in runs)  # one runner's calls are consecutive


def test_interleaving_runs_each_once_a_round_and_varies_who_follows_whom() -> None:
    calls: list[str] = []
    names = "abcd"
    interleaved({n: (lambda n=n: calls.append(n)) for n in names}, iterations=40, warmup=0)
    rounds = [calls[i : i + 4] for i in range(0, len(calls), 4)]
    assert len(rounds) == 40 and all(sorted(r) == list(names) for r in rounds)
    # rotation gave "a" one fixed predecessor; a random order per round gives it several
    before_a = {r[r.index("a") - 1] for r in rounds if r.index("a") > 0}
    assert len(before_a) == 3


def test_latency_run_writes_a_complete_report(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "make_bundle.py"),
            str(bundle),
            "--image-size",
            "32",
            "--conv-dim",
            "8",
            "--repeat-num",
            "1",
            "--max-batch",
            "2",
            "--opt-batch",
            "1",
            "--engine",
            "no",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "latency.py"),
            str(bundle),
            "--backends",
            "onnxruntime,tensorrt",
            "--batch-sizes",
            "1,2",
            "--iterations",
            "3",
            "--warmup",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    rows = {(r["backend"], r["batch"]): r for r in report["results"]}
    assert set(rows) == {(b, n) for b in ("torch-eager-fp32", "ort-raw", "onnxruntime") for n in (1, 2)}
    assert report["block"] == 3  # the default: one untimed call, then 3 timed, per round
    for r in rows.values():
        assert r["iterations"] == 3 * report["block"] and r["min_ms"] <= r["median_ms"] <= r["max_ms"]  # samples
        assert r["gflops"] == pytest.approx(report["gflop_per_image"] * r["throughput_ips"])
    assert rows[("torch-eager-fp32", 1)]["speedup_vs_eager"] == 1.0
    assert rows[("ort-raw", 2)]["speedup_vs_raw"] == 1.0
    assert rows[("onnxruntime", 1)]["psnr_db_vs_fp32"] > 80  # the same FP32 weights, another engine
    assert "tensorrt" in report["skipped"]  # no TensorRT here: reported, not fatal
    assert report["device"]["kind"] == "cpu" and report["gemm_gflops"] and report["versions"]["onnxruntime"]
    assert report["sdk_processing"]["preprocess_ms_per_image"] > 0
    assert report["input_memory"] == "pageable" and rows[("onnxruntime", 1)]["info"]["pinned_inputs"] is False


def test_bad_bundle_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "latency.py"), str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        proc.returncode == 2
        and proc.stderr.strip().startswith("error: ")
        and len(proc.stderr.strip().splitlines()) == 1
    )


def test_pinned_inputs_on_a_cpu_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "latency.py"),
            str(ROOT / "models" / "toyfaces-64"),
            "--pinned-inputs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--pinned-inputs needs --device cuda" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("capabilities", "picked"), [("FP32,INT8", "openvino int8"), ("FP32,INT8,BF16", "openvino bf16")]
)
def test_auto_rows_say_which_precision_auto_picked(tmp_path: Path, capabilities: str, picked: str) -> None:
    """The shipped bundle's INT8 model (>= 40 dB) is what `auto` runs on a CPU without BF16; with BF16, BF16."""
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'stargan[openvino]')")
    from results_table import table

    out = tmp_path / "r.json"
    env = {**os.environ, "STARGAN_CPU_CAPABILITIES": capabilities}
    shipped = ROOT / "models" / "toyfaces-64"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "latency.py"),
            str(shipped),
            "--backends",
            "auto",
            "--batch-sizes",
            "1",
            "--iterations",
            "3",
            "--warmup",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    auto = next(r for r in report["results"] if r["backend"] == "auto")
    assert auto["picked"] == picked == f"{auto['info']['backend']} {auto['info']['precision']}"
    assert auto["picked_reason"].startswith("auto: ") and auto["info"]["file"] == (
        "generator.int8.onnx" if picked.endswith("int8") else "generator.onnx"
    )
    assert report["device"]["cpu_capabilities_override"] == capabilities
    assert f"auto → {picked}" in proc.stdout and f"STARGAN_CPU_CAPABILITIES={capabilities}" in proc.stdout
    text = table(report)
    assert f"| auto → {picked} | 1 |" in text and f"only {capabilities} (STARGAN_CPU_CAPABILITIES)" in text
    if picked.endswith("int8"):  # the recorded PSNR is a held-out measurement; these are other inputs
        assert auto["psnr_db_vs_fp32"] > 35.0
