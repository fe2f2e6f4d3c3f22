"""Train candidate demo models side by side on one GPU in one device call, evaluate them, return the best.

Usage, from the checkout (the code runs from it through PYTHONPATH; nothing is installed):
    python training/gpu_train.py --out "$OUT"                         # the H100/H200 call (stops by --budget-s)
    python training/gpu_train.py --out /tmp/gt --dry-run --device cpu  # the same steps at tiny sizes on a CPU

Steps: toy faces (the held-out split is the run's test split) -> a short probe of every candidate, all at
once, for their iterations/s while they share the GPU -> the real runs, all at once, each sized to end inside
the budget with its lr decayed to 0 -> `stargan-train eval` of each on the held-out faces (one attribute
classifier, trained once and shared, so the scores compare) -> in --out: `candidates.json` (configs, rates,
evals, times), the winner's generator and critic weights (files over 15 MiB split into `.partNN`; join with
`cat F.part* > F`), its config and last sample grid, and `train.log`. The device returns at most 8 files of
16 MiB, so nothing else is written there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PART_BYTES = 15 * 2**20  # under the device's 16 MiB a file

# name -> options beyond the shared recipe. The same seed and data for all, so the differences are theirs.
CANDIDATES: dict[str, list[str]] = {
    "g32r6": ["--g-conv-dim", "32", "--g-repeat-num", "6", "--d-conv-dim", "32", "--d-repeat-num", "5"],
    "g40r6": ["--g-conv-dim", "40", "--g-repeat-num", "6", "--d-conv-dim", "32", "--d-repeat-num", "5"],
    # the first one again with the GPU speed options: their it/s and their eval against FP32 in one call
    "g32r6-bf16": [
        "--g-conv-dim",
        "32",
        "--g-repeat-num",
        "6",
        "--d-conv-dim",
        "32",
        "--d-repeat-num",
        "5",
        "--amp",
        "bf16",
        "--channels-last",
    ],
}
DRY_CANDIDATES: dict[str, list[str]] = {
    "g8r1": ["--g-conv-dim", "8", "--g-repeat-num", "1", "--d-conv-dim", "8", "--d-repeat-num", "3"],
    "g8r2-bf16": [
        "--g-conv-dim",
        "8",
        "--g-repeat-num",
        "2",
        "--d-conv-dim",
        "8",
        "--d-repeat-num",
        "3",
        "--amp",
        "bf16",
        "--channels-last",
    ],
}


class Plan:
    """Sizes of the real call and of the CPU dry run."""

    def __init__(self, dry: bool) -> None:
        self.faces, self.test_count = (96, 8) if dry else (10_000, 500)
        self.image_size = 32 if dry else 64
        self.probe_iters = 4 if dry else 300
        self.eval_images, self.classifier_iters = (8, 20) if dry else (500, 1500)
        self.eval_reserve_s = 60 if dry else 150  # the classifier once, then one eval per candidate
        self.workers = 0 if dry else 4  # DataLoader processes per run (three runs share 16 cores)
        self.candidates = DRY_CANDIDATES if dry else CANDIDATES


def recipe(plan: Plan, data: Path, device: str) -> list[str]:
    """What every candidate shares: the shipped model's fidelity recipe (identity loss, DiffAugment, one critic
    step per G step after a warm-up), batch 16, the lr decaying linearly to 0 over the second half."""
    return [
        "--dataset",
        "toyfaces",
        "--data-dir",
        str(data),
        "--image-size",
        str(plan.image_size),
        "--test-count",
        str(plan.test_count),
        "--batch-size",
        "16",
        "--lambda-id",
        "10",
        "--augment",
        "translation,cutout",
        "--n-critic",
        "1",
        "--seed",
        "0",
        "--device",
        device,
        "--num-workers",
        str(plan.workers),
        "--no-progress",
        "--json",
    ]


def run(cmd: list[str], log: Path, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run to the end or to `timeout` (then exit status 124, as timeout(1)); stderr goes to the log."""
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            f.write(f"--- timed out after {timeout:.0f} s\n")
            return subprocess.CompletedProcess(cmd, 124, "", "")


def train_all(
    names: list[str], args_of: dict[str, list[str]], work: Path, log: Path, timeout: float
) -> dict[str, dict]:
    """Start every run at once (they share the GPU), wait for all; the JSON summary of each."""
    procs = {}
    for name in names:
        cmd = [sys.executable, "-m", "stargan_train", "train", *args_of[name]]
        with log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n")
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=(work / f"{name}.err").open("w"), text=True)
    deadline, out = time.monotonic() + timeout, {}
    for name, proc in procs.items():
        try:
            stdout, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
        err = (work / f"{name}.err").read_text()
        with log.open("a") as f:
            f.write(f"--- {name}: exit {proc.returncode}\n{err[-4000:]}\n")
        try:
            out[name] = json.loads(stdout)
        except json.JSONDecodeError:
            out[name] = {"error": f"exit {proc.returncode}: {err.strip().splitlines()[-1:] or ''}"}
    return out


def score(report: dict) -> float:
    """One number to rank candidates by: the mean PSNR of the targets the demo model is judged on (identity,
    hair edits and outside the hair, Male and Young flips); a model under 95% target accuracy ranks last."""
    cf = report["counterfactual"]
    hair = [cf[h] for h in ("Black_Hair", "Blond_Hair", "Brown_Hair")]
    values = [
        cf["identity"]["psnr"],
        *(h["psnr"] for h in hair),
        *(h["psnr_outside"] for h in hair),
        cf["Male"]["psnr"],
        cf["Young"]["psnr"],
    ]
    penalty = 0.0 if report["mean_target_accuracy"] >= 0.95 else 100.0
    return sum(values) / len(values) - penalty


def split_into(src: Path, out: Path, name: str) -> list[str]:
    """Copy `src` to out/name, in parts of PART_BYTES when larger; the names written."""
    size = src.stat().st_size
    if size <= PART_BYTES:
        shutil.copyfile(src, out / name)
        return [name]
    names = []
    with src.open("rb") as f:
        for k in range((size + PART_BYTES - 1) // PART_BYTES):
            part = f"{name}.part{k:02d}"
            (out / part).write_bytes(f.read(PART_BYTES))
            names.append(part)
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".gpu-train")))
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=float, default=None, help="whole call, default 540 (dry run: 150)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes: the same steps in a minute or two")
    p.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    a = p.parse_args(argv)
    started = time.monotonic()
    plan = Plan(a.dry_run)
    budget = a.budget_s or (150.0 if a.dry_run else 540.0)
    names = [n for n in plan.candidates if not a.only or n in a.only.split(",")]
    if not names:
        p.error(f"--only matches no candidate of {', '.join(plan.candidates)}")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "training"), os.environ.get("PYTHONPATH", "")])
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stargan-gpu-train-"))
    log = a.out / "train.log"
    summary: dict = {
        "device": a.device,
        "budget_s": budget,
        "dry_run": a.dry_run,
        "commit": os.environ.get("STARGAN_GIT_COMMIT", "unknown"),
        "candidates": {},
    }

    data = work / "data"
    t0 = time.monotonic()
    made = run(
        [
            sys.executable,
            "-m",
            "stargan_train",
            "toyfaces",
            str(data),
            "--count",
            str(plan.faces),
            "--seed",
            "7",
            "--workers",
            str(max(1, (os.cpu_count() or 1))),
            "--no-progress",
        ],
        log,
    )
    if made.returncode != 0:
        print("toy faces failed; see train.log", file=sys.stderr)
        return 1
    summary["data_s"] = round(time.monotonic() - t0, 1)
    shared = recipe(plan, data, a.device)

    # 1. Probe: every candidate at once for a few hundred iterations: the rate each gets on a shared GPU.
    probe_args = {
        n: [
            *shared,
            *plan.candidates[n],
            "--run-dir",
            str(work / "probe" / n),
            "--num-iters",
            str(plan.probe_iters),
            "--num-iters-decay",
            "0",
            "--model-save-step",
            str(plan.probe_iters),
            "--sample-step",
            str(plan.probe_iters),
        ]
        for n in names
    }
    t0 = time.monotonic()
    probes = train_all(names, probe_args, work, log, timeout=180)
    summary["probe_s"] = round(time.monotonic() - t0, 1)
    rates = {n: probes[n].get("it_per_s") for n in names}
    names = [n for n in names if rates[n]]
    if not names:
        print("every probe failed; see train.log", file=sys.stderr)
        (a.out / "candidates.json").write_text(json.dumps({**summary, "probes": probes}, indent=2))
        return 1

    # 2. The runs: each as many iterations as its shared rate fits in what is left, decaying to 0.
    train_s = budget - (time.monotonic() - started) - plan.eval_reserve_s
    runs = {}
    for n in names:
        iters = max(10, int(rates[n] * train_s * 0.9) // 10 * 10)
        runs[n] = {"iterations": iters, "rate_probe": rates[n], "options": plan.candidates[n]}
        runs[n]["args"] = [
            *shared,
            *plan.candidates[n],
            "--run-dir",
            str(work / "runs" / n),
            "--num-iters",
            str(iters),
            "--num-iters-decay",
            str(iters // 2),
            "--critic-warmup",
            str(min(1000, iters // 10)),
            "--model-save-step",
            str(max(10, iters // 5)),
            "--sample-step",
            str(iters),
            "--keep-checkpoints",
            "1",
        ]
    t0 = time.monotonic()
    results = train_all(names, {n: runs[n]["args"] for n in names}, work, log, timeout=train_s + 60)
    summary["train_s"] = round(time.monotonic() - t0, 1)

    # 3. Eval on the held-out split, one classifier for all (trained with the first, copied to the others).
    classifier_from = None
    for n in names:
        runs[n]["train"] = results[n]
        run_dir = work / "runs" / n
        if not (run_dir / "checkpoints").is_dir():
            continue
        if classifier_from is not None:
            shutil.copytree(classifier_from, run_dir / "eval", dirs_exist_ok=True)
        t0 = time.monotonic()
        done = run(
            [
                sys.executable,
                "-m",
                "stargan_train",
                "eval",
                str(run_dir),
                "--num-images",
                str(plan.eval_images),
                "--classifier-iters",
                str(plan.classifier_iters),
                "--device",
                a.device,
                "--json",
            ],
            log,
            timeout=max(20.0, budget + 30 - (time.monotonic() - started)),
        )
        runs[n]["eval_s"] = round(time.monotonic() - t0, 1)
        try:
            runs[n]["eval"] = json.loads(done.stdout)
            runs[n]["score"] = score(runs[n]["eval"])
            classifier_from = classifier_from or run_dir / "eval"
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            runs[n]["eval_error"] = f"exit {done.returncode}: {e}"
    summary["candidates"] = {
        n: {k: v for k, v in r.items() if k != "args"} | {"command": " ".join(r["args"])} for n, r in runs.items()
    }

    # 4. The winner's weights (the newest checkpoint's safetensors), config and samples.
    scored = [n for n in names if "score" in runs[n]]
    if scored:
        best = max(scored, key=lambda n: runs[n]["score"])
        run_dir = work / "runs" / best
        checkpoints = sorted((run_dir / "checkpoints").glob("*-G.safetensors"))
        files = split_into(checkpoints[-1], a.out, f"{best}-G.safetensors")
        critic = checkpoints[-1].with_name(checkpoints[-1].name.replace("-G.", "-D."))
        if critic.is_file():
            files += split_into(critic, a.out, f"{best}-D.safetensors")
        shutil.copyfile(run_dir / "config.json", a.out / f"{best}-config.json")
        samples = sorted((run_dir / "samples").glob("*.png"))
        if samples:
            shutil.copyfile(samples[-1], a.out / f"{best}-samples.png")
        summary["winner"] = {"name": best, "files": files, "checkpoint": checkpoints[-1].name}
    summary["total_s"] = round(time.monotonic() - started, 1)
    (a.out / "candidates.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    for n in names:
        r = runs[n]
        print(f"{n}: {r['iterations']} iterations at {r['rate_probe']} it/s (probe), score {r.get('score')}")
    print(f"winner: {summary.get('winner', {}).get('name')}; {summary['total_s']} s in all")
    return 0 if scored else 1


if __name__ == "__main__":
    sys.exit(main())
