"""Ray Data job vs the serial `stargan translate FOLDER` path on the same folder: the overhead of Ray on this machine.

Usage: python benchmarks/ray_pipeline.py --bundle models/toyfaces-64 --count 64 [--out benchmarks/results/x.json]

Both runs go through the CLI as a user would (fresh processes, so Ray's start-up is counted in the Ray wall time);
Ray's own summary gives the job time without start-up.
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

STARGAN = [sys.executable, "-m", "stargan_sdk.cli"]


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def ray_startup_seconds() -> float:
    code = ("import time,ray;t=time.perf_counter();ray.init(num_cpus=2,include_dashboard=False,"
            "_node_ip_address='127.0.0.1');print(time.perf_counter()-t);ray.shutdown()")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/toyfaces-64"))
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from stargan_train.data.toyfaces import generate_toyfaces

    with tempfile.TemporaryDirectory() as tmp:
        faces = generate_toyfaces(Path(tmp) / "toy", args.count, seed=1, progress=False) / "images"
        set_ = ["--set", "Blond_Hair=1"]  # both on the `auto` backend (translate has no --backend)
        serial_s, _ = timed(STARGAN + ["translate", str(faces), "-b", str(args.bundle), "-o", f"{tmp}/serial"] + set_)
        ray_s, out = timed(STARGAN + ["translate-dataset", str(faces), f"{tmp}/ray", "-b", str(args.bundle),
                                      "--json", "--batch-size", "16", "--concurrency", "1"] + set_)
        job = json.loads(out.strip().splitlines()[-1])
    report = {
        "git_commit": git_commit(), "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "images": args.count, "backend": "auto", "bundle": str(args.bundle),
        "serial_cli_s": round(serial_s, 2), "serial_images_per_s": round(args.count / serial_s, 2),
        "ray_cli_s": round(ray_s, 2), "ray_cli_images_per_s": round(args.count / ray_s, 2),
        "ray_job_s": job["seconds"], "ray_job_images_per_s": job["images_per_s"],
        "ray_startup_s": round(ray_startup_seconds(), 2),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
