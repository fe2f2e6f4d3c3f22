"""benchmarks/serve_load.py: row summaries and the README table from known numbers; a real (slow) short run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

if importlib.util.find_spec("pytriton") is None:
    pytest.skip("needs the serve extra (make install-dev installs it)", allow_module_level=True)

from serve_load import BEGIN, END, summarize, table, write_table  # noqa: E402


def _run(mode: str, rps: float, batches: dict[int, int] | None = None) -> dict:
    row = {
        "mode": mode,
        "clients": 8,
        "requests": 4,
        "throughput_rps": rps,
        "latencies": [1.0, 2.0, 3.0, 4.0],
        "cpu_ms_per_request": 5.0,
    }
    return row if batches is None else {**row, "batches": batches, "mean_batch": 2.0}


def test_summary_takes_median_throughput_and_pools_batches() -> None:
    rows = summarize(
        [
            _run("direct", 10),
            _run("direct", 30),
            _run("direct", 20),
            _run("grpc", 16, {1: 2, 4: 1}),
            _run("grpc", 24, {4: 1}),
            _run("grpc", 8, {2: 1}),
        ]
    )
    direct, grpc = rows
    assert direct["throughput_rps"] == 20 and direct["requests"] == 12 and direct["p50_ms"] == 2.5
    assert grpc["throughput_rps"] == 16 and grpc["vs_direct"] == pytest.approx(0.8)
    assert grpc["batches"] == {1: 2, 2: 1, 4: 2} and grpc["mean_batch"] == pytest.approx(12 / 5)


def test_table_replaces_only_its_own_block(tmp_path: Path) -> None:
    rows = summarize([_run("direct", 10), _run("http", 9, {3: 3})])
    report = {
        "machine": "test cpu",
        "date": "2026-11-29T00:00:00",
        "git_commit": "abcdef123456",
        "config": {
            "bundle": "b",
            "image_size": 64,
            "backend": "onnxruntime",
            "requests": 4,
            "repeats": 1,
            "max_batch": 16,
            "queue_delay_us": 100,
            "instances": 1,
        },
        "results": rows,
    }
    assert "| 8 | http | 9.0 | 0.90× |" in table(report)
    report["faults"] = [
        {
            "mode": "http+bad",
            "clients": 8,
            "bad_clients": 2,
            "good_requests": 160,
            "good_failed": 0,
            "throughput_rps": 50.0,
            "bad_requests": 90,
            "bad_statuses": {"400": 90},
            "restarts": 0,
        },
        {
            "mode": "sigterm",
            "clients": 16,
            "answered_before": 300,
            "answered_after_sigterm": 16,
            "dropped": 0,
            "refused_at_reconnect": 16,
            "exit_status": 0,
            "stop_s": 3.5,
            "workdir_left": [],
        },
    ]
    text = table(report)
    assert (
        "| good + bad clients (HTTP) | 8 good + 2 bad | 160 good | 0 good failed | bad answered 400: 90 (90) |" in text
    )
    assert "| SIGTERM under keep-alive load | 16 | 300 before, 16 answered after SIGTERM | 0 dropped |" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold\n{END}\ntail\n")
    write_table(report, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{END}\ntail\n") and "old" not in text


@pytest.mark.slow
def test_short_real_run_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "serve_load.py"),
            str(ROOT / "models" / "toyfaces-64"),
            "--backend",
            "onnxruntime",
            "--clients",
            "1,4",
            "--requests",
            "16",
            "--repeats",
            "1",
            "--sigterm-clients",
            "6",
            "--sigterm-after",
            "1",
            "--json",
            str(out),
        ],
        check=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    modes = {(r["clients"], r["mode"]) for r in report["results"]}
    assert modes == {(c, m) for c in (1, 4) for m in ("direct", "http", "http-triton", "grpc")}
    bad, sigterm = report["faults"]
    assert bad["good_failed"] == 0 and bad["bad_requests"] > 0 and set(bad["bad_statuses"]) == {"400"}
    assert bad["restarts"] == 0
    assert sigterm["dropped"] == 0 and sigterm["answered_after_sigterm"] > 0 and sigterm["exit_status"] == 0
    assert sigterm["refused_at_reconnect"] == 6 and sigterm["workdir_left"] == []
    for r in report["results"]:
        assert r["requests"] == 16 and r["throughput_rps"] > 0 and r["p99_ms"] >= r["p50_ms"]
        if r["mode"] != "direct":
            assert sum(int(b) * n for b, n in r["batches"].items()) == 16
