"""Ray Data job vs the local pipeline (`stargan translate FOLDER`) on the same folder: Ray's overhead on one machine.

Usage: python benchmarks/ray_pipeline.py --bundle models/toyfaces-64 --count 200 [--out benchmarks/results/x.json]

Both runs go through the CLI as a user would, on the same backend (fresh processes, so Ray's start-up is counted
in the Ray wall time); Ray's own summary gives the job time without start-up. Ray's servers listen on every
interface, so Ray runs inside a loopback-only network namespace (`unshare -rn`) where the machine allows it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_report import git_commit  # noqa: E402

STARGAN = [sys.executable, "-m", "stargan_sdk.cli"]
PRIVATE_NET = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def private_net() -> list[str]:
    """The prefix that runs a command with loopback only, or [] where namespaces are not allowed."""
    ok = shutil.which("unshare") and subprocess.run([*PRIVATE_NET, "true"], capture_output=True).returncode == 0
    return PRIVATE_NET if ok else []


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def ray_startup_seconds(prefix: list[str]) -> float:
    code = (
        "import time,ray;t=time.perf_counter();ray.init(num_cpus=2,include_dashboard=False,"
        "_node_ip_address='127.0.0.1');print(time.perf_counter()-t);ray.shutdown()"
    )
    return float(
        subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/toyfaces-64"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from stargan_train.data.toyfaces import generate_toyfaces

    with tempfile.TemporaryDirectory() as tmp:
        faces = generate_toyfaces(Path(tmp) / "toy", args.count, seed=1, progress=False) / "images"
        common = ["--set", "Blond_Hair=1", "--backend", args.backend, "--batch-size", "16", "--json"]
        prefix = private_net()
        rows: dict[str, list[dict]] = {"local": [], "ray": []}
        for r in range(args.rounds):  # interleaved, so drift on a shared machine hits both alike
            wall, out = timed(STARGAN + ["translate", str(faces), "-b", str(args.bundle), "-o", f"{tmp}/l{r}"] + common)
            rows["local"].append({"wall_s": wall, "job_s": json.loads(out)["seconds"]})
            wall, out = timed(
                prefix
                + STARGAN
                + ["translate-dataset", str(faces), f"{tmp}/r{r}", "-b", str(args.bundle), "--concurrency", "1"]
                + common
            )
            job = json.loads(out.strip().splitlines()[-1])
            assert job["written"] == args.count, job
            rows["ray"].append({"wall_s": wall, "job_s": job["seconds"]})

    def rate(kind: str, key: str) -> float:
        return round(args.count / statistics.median(row[key] for row in rows[kind]), 2)

    report = {
        "git_commit": git_commit(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "images": args.count,
        "backend": args.backend,
        "bundle": str(args.bundle),
        "rounds": args.rounds,
        "loopback_namespace": bool(prefix),
        "rows": rows,
        "local_pipeline_images_per_s": rate("local", "job_s"),
        "ray_job_images_per_s": rate("ray", "job_s"),
        "local_cli_images_per_s": rate("local", "wall_s"),
        "ray_cli_images_per_s": rate("ray", "wall_s"),
        "ray_job_vs_local_pipeline": round(rate("ray", "job_s") / rate("local", "job_s"), 3),
        "ray_cli_vs_local_cli": round(rate("ray", "wall_s") / rate("local", "wall_s"), 3),
        "ray_startup_s": round(ray_startup_seconds(prefix), 2),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
