"""Folder -> folder throughput of the pipeline beside `infer` on the same images and the serial path, interleaved.

Usage: python benchmarks/pipeline.py models/toyfaces-64 FACES_DIR --rounds 3 --json benchmarks/results/pipeline-cpu.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench_report import git_commit, versions
from stargan_sdk import Translator
from stargan_sdk.images.imaging import save_image
from stargan_sdk.pipeline.files import StageTimes

CHANGES = {"Blond_Hair": 1}


def _infer(t: Translator, paths: list[Path], batch: int) -> float:
    """The engine ceiling: float32 tensors of the same images, decoded beforehand (not timed)."""
    rgbs = []
    for p in paths:
        with Image.open(p) as im:
            rgbs.append(np.asarray(im.convert("RGB").resize((t.image_size, t.image_size))))
    x = t.normalizer.preprocess(rgbs)
    labels = np.zeros((len(x), len(t.attributes)), np.float32)
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        t.infer(x[i : i + batch], labels[i : i + batch])
    return time.perf_counter() - start


def _serial(t: Translator, paths: list[Path], out: Path) -> float:
    """The path the pipeline replaces: decode, translate at batch 1, save with fsync, one file at a time."""
    start = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            save_image(t.translate(im, CHANGES), out / p.name)
    return time.perf_counter() - start


def _pipeline(t: Translator, paths: list[Path], out: Path, mode: str, batch: int, workers: int | None,
              times: StageTimes) -> float:
    start = time.perf_counter()
    results = list(t.translate_files(paths, out, CHANGES, mode=mode, batch_size=batch, workers=workers, times=times))
    assert not [r for r in results if r.error], [r.error for r in results if r.error][:3]
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bundle")
    ap.add_argument("faces", help="a folder of face images (e.g. from `stargan-train toyfaces`)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--formats", default="png,jpg")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    faces = sorted(p for p in Path(args.faces).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    faces = faces[: args.count]
    rows = []
    with Translator.load(args.bundle, backend=args.backend) as t, tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            src = Path(tmp) / f"in-{fmt}"
            src.mkdir()
            for p in faces:
                with Image.open(p) as im:
                    im.convert("RGB").save(src / f"{p.stem}.{fmt}")
            paths = sorted(src.iterdir())
            _infer(t, paths[: args.batch], args.batch)  # warm-up (an inductor compile is paid here)
            runs: dict[str, list[float]] = {"infer": [], "pipeline": [], "serial": []}
            times = StageTimes()
            for _ in range(args.rounds):  # interleaved: a noisy machine slows all three alike
                out = Path(tmp) / "out"
                runs["infer"].append(_infer(t, paths, args.batch))
                runs["pipeline"].append(_pipeline(t, paths, out, "crop", args.batch, args.workers, times))
                shutil.rmtree(out)
                out.mkdir()
                runs["serial"].append(_serial(t, paths, out))
                shutil.rmtree(out)
            best = {k: len(paths) / min(v) for k, v in runs.items()}
            rows.append({"input": fmt, "mode": "crop", "images": len(paths), "images_per_s": best,
                         "pipeline_vs_infer": best["pipeline"] / best["infer"],
                         "stage_seconds": {"prepare": times.prepare, "engine": times.engine, "finish": times.finish},
                         "seconds": runs})
            print(json.dumps(rows[-1]["images_per_s"]), fmt, f"pipeline/infer {rows[-1]['pipeline_vs_infer']:.2f}")
        report = {"git_commit": git_commit(), "backend": t.backend_name, "bundle": str(args.bundle),
                  "batch": args.batch, "rounds": args.rounds, "versions": versions(), "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
