"""Peak memory of `stargan translate FOLDER` against the number of files: the pipeline's queues are bounded, so a
folder of 20,000 faces should need no more memory than one of 200.

Usage: python benchmarks/pipeline_memory.py models/toyfaces-64 --counts 200,20000 [--json benchmarks/results/x.json]

Each run is a fresh `stargan translate` process on the first N toy faces (made with `stargan-train toyfaces`), and
its peak resident set comes from the kernel's accounting of that one child (`os.wait4`), so nothing is sampled.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_report import git_commit  # noqa: E402
from stargan_sdk.host.files import atomic_write_text  # noqa: E402


def peak_rss_mib(cmd: list[str]) -> tuple[float, float, dict]:
    """Run `cmd`; its peak RSS in MiB (ru_maxrss is in KiB on Linux), wall seconds and JSON summary."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        summary = json.loads(out.read().decode())
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {child.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--counts", default="200,20000")
    ap.add_argument("--backend", default="openvino")
    ap.add_argument("--faces", type=Path, help="a folder of toy faces to reuse (default: made here)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        faces = args.faces
        if faces is None:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "stargan_train",
                    "toyfaces",
                    f"{tmp}/toy",
                    "--count",
                    str(counts[-1]),
                    "--seed",
                    "11",
                    "--workers",
                    str(os.cpu_count() or 1),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            faces = Path(tmp) / "toy" / "images"
        files = sorted(faces.iterdir())
        rows = []
        for n in counts:
            src = Path(tmp) / f"in-{n}"
            src.mkdir()
            for f in files[:n]:  # links: the same bytes, no copy
                (src / f.name).symlink_to(f.resolve())
            cmd = [
                sys.executable,
                "-m",
                "stargan_sdk.cli",
                "translate",
                str(src),
                "-b",
                str(args.bundle),
                "-o",
                f"{tmp}/out-{n}",
                "--crop",
                "--set",
                "Blond_Hair=1",
                "--backend",
                args.backend,
                "--json",
            ]
            rss, wall, summary = peak_rss_mib(cmd)
            assert len(summary["written"]) == n and not summary["failed"], "every file written"
            rows.append(
                {
                    "files": n,
                    "peak_rss_mib": round(rss, 1),
                    "wall_s": round(wall, 1),
                    "images_per_s": summary["images_per_s"],
                }
            )
            print(f"{n:6d} files: peak RSS {rss:7.1f} MiB, {wall:6.1f} s, {summary['images_per_s']} images/s")
    report = {
        "git_commit": git_commit(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "bundle": str(args.bundle),
        "backend": args.backend,
        "mode": "crop",
        "rows": rows,
        "largest_over_smallest_rss": round(rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"], 3),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
