"""Folder -> folder throughput of the pipeline beside `infer` on the same images and the serial path, interleaved.

Usage: python benchmarks/pipeline.py models/toyfaces-64 FACES_DIR --rounds 3 --json benchmarks/results/pipeline-cpu.json

Rows: aligned faces (PNG and JPEG in, the same format out) at each --workers count, with the classifier estimating
the originals (the CLI's default) and with them given; in-memory uint8 images (`translate_stream`); photo mode
(scikit-image's astronaut, one and two faces a photo) against `translate_photo` photo by photo. Every variant of a
row runs once per round, interleaved, and the best round counts, so a noisy machine slows all of them alike.
Extras: PNG levels (encode ms and bytes a face), and threads vs processes for the CPU stages alone.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench_report import git_commit, versions
from stargan_sdk import Translator
from stargan_sdk.images.imaging import center_crop, save_image, to_model_rgb
from stargan_sdk.pipeline.files import StageTimes

CHANGES = {"Blond_Hair": 1}
ORIGINAL = {"Black_Hair": 1, "Male": 0, "Young": 1}


def _model_rgbs(t: Translator, paths: list[Path]) -> np.ndarray:
    rgbs = []
    for p in paths:
        with Image.open(p) as im:
            rgbs.append(to_model_rgb(center_crop(im), t.image_size)[0])
    return np.stack(rgbs)


def _infer(t: Translator, x: np.ndarray, batch: int) -> None:
    """The engine ceiling: float32 tensors decoded and normalised beforehand (not timed)."""
    labels = np.zeros((len(x), len(t.attributes)), np.float32)
    for i in range(0, len(x), batch):
        t.infer(x[i : i + batch], labels[i : i + batch])


def _files(t: Translator, paths: list[Path], out: Path, times: StageTimes, **options) -> None:
    results = list(t.translate_files(paths, out, CHANGES, times=times, **options))
    assert not [r for r in results if r.error], [r.error for r in results if r.error][:3]
    shutil.rmtree(out)


def _original(t: Translator) -> dict | None:
    """None (the classifier estimates, as the CLI by default) where the bundle has a classifier, else ORIGINAL."""
    return None if t.classifier is not None else ORIGINAL


def _serial(t: Translator, paths: list[Path], out: Path, photo: bool = False) -> None:
    """The path the pipeline replaces: decode, edit at batch 1, save, one file at a time."""
    out.mkdir()
    given = _original(t)
    for p in paths:
        with Image.open(p) as im:
            edit = (
                t.translate_photo(im, CHANGES, original=given)
                if photo
                else t.translate(center_crop(im), CHANGES, original=given)
            )
            save_image(edit, out / p.name)
    shutil.rmtree(out)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _interleave(variants: dict[str, Callable[[], None]], rounds: int, n: int) -> tuple[dict, dict]:
    """Best images/s of each variant; and the seconds of every round, with the process's CPU milliseconds per
    image (user + system, all threads): on a machine shared with other jobs, CPU time per image is the steadier
    measure of the work a variant adds, wall time the one a user sees."""
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            start, cpu0 = time.perf_counter(), _cpu()
            run()
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(1e3 * (_cpu() - cpu0) / n)
    return {k: n / min(v) for k, v in seconds.items()}, {"wall": seconds, "cpu_ms_per_image": cpu}


def _rescale(best: dict, seconds: dict, name: str, counted: int, ran: int) -> None:
    """A variant run on the first `ran` of `counted` images (--serial-count): its rates per image it ran."""
    best[name] *= ran / counted
    seconds["cpu_ms_per_image"][name] = [v * counted / ran for v in seconds["cpu_ms_per_image"][name]]


def _convert(faces: list[Path], src: Path, fmt: str, workers: int) -> list[Path]:
    """The faces in format `fmt` (in threads: 10,000 faces for the GPU run)."""
    src.mkdir()

    def one(p: Path) -> Path:
        with Image.open(p) as im:
            im.convert("RGB").save(src / f"{p.stem}.{fmt}")
        return src / f"{p.stem}.{fmt}"

    with ThreadPoolExecutor(workers) as pool:
        return sorted(pool.map(one, faces))


def aligned_row(t: Translator, paths: list[Path], tmp: Path, fmt: str, args: argparse.Namespace) -> dict:
    x = t.normalizer.preprocess(_model_rgbs(t, paths))
    out = tmp / "out"
    times = {w: StageTimes() for w in args.workers}
    variants: dict[str, Callable[[], None]] = {"infer": lambda: _infer(t, x, args.batch)}
    given = _original(t)  # a bundle without a classifier (make_bundle.py's) is always told the originals
    for w in args.workers:
        variants[f"pipeline_w{w}"] = lambda w=w: _files(
            t, paths, out, times[w], mode="crop", workers=w, batch_size=args.batch, original=given
        )
    if given is None:
        variants["pipeline_original_given"] = lambda: _files(
            t, paths, out, StageTimes(), mode="crop", batch_size=args.batch, original=ORIGINAL
        )
    variants["serial"] = lambda: _serial(t, paths[: args.serial_count], out)
    best, seconds = _interleave(variants, args.rounds, len(paths))
    _rescale(best, seconds, "serial", len(paths), min(len(paths), args.serial_count))
    pipe = max(v for k, v in best.items() if k.startswith("pipeline_w"))
    return {
        "input": fmt,
        "output": fmt,
        "mode": "crop",
        "images": len(paths),
        "classifier": given is None,
        "images_per_s": best,
        "pipeline_vs_infer": pipe / best["infer"],
        "stage_seconds": {
            f"w{w}": {"prepare": s.prepare, "engine": s.engine, "finish": s.finish} for w, s in times.items()
        },
        "seconds": seconds,
    }


def stream_row(t: Translator, paths: list[Path], args: argparse.Namespace) -> dict:
    """In-memory uint8 model-size images through `translate_stream` (no files, no codecs) beside `infer`."""
    rgbs = list(_model_rgbs(t, paths))
    x = t.normalizer.preprocess(np.stack(rgbs))
    variants = {
        "infer": lambda: _infer(t, x, args.batch),
        "stream": lambda: list(t.translate_stream(rgbs, CHANGES, batch_size=args.batch, original=ORIGINAL)),
    }
    best, seconds = _interleave(variants, args.rounds, len(rgbs))
    return {
        "input": "uint8 arrays",
        "output": "uint8 arrays",
        "mode": "whole",
        "images": len(rgbs),
        "images_per_s": best,
        "pipeline_vs_infer": best["stream"] / best["infer"],
        "seconds": seconds,
    }


def photo_row(t: Translator, tmp: Path, args: argparse.Namespace) -> dict | None:
    """Photo mode: Haar finds the astronaut's face; one-face and two-face photos, JPEG in and out."""
    try:
        from skimage import data
    except ImportError:
        return None
    face = data.astronaut()
    src = tmp / "photos"
    src.mkdir()
    for i in range(args.photos):
        rgb = face[:, ::-1] if i % 2 else face
        rgb = np.concatenate([rgb, face], axis=1) if i % 3 == 0 else rgb  # every third photo: two faces
        Image.fromarray(np.ascontiguousarray(rgb)).save(src / f"{i:04d}.jpg", quality=90)
    paths = sorted(src.iterdir())
    out = tmp / "out"
    times = StageTimes()
    variants = {
        "pipeline": lambda: _files(t, paths, out, times, mode="photo", batch_size=args.batch, original=_original(t)),
        "serial": lambda: _serial(t, paths[: args.serial_count], out, photo=True),
    }
    best, seconds = _interleave(variants, args.rounds, len(paths))
    _rescale(best, seconds, "serial", len(paths), min(len(paths), args.serial_count))
    faces = sum(2 if i % 3 == 0 else 1 for i in range(args.photos))
    return {
        "input": "jpg photos (512x512 one face, 1024x512 two faces)",
        "output": "jpg",
        "mode": "photo",
        "images": len(paths),
        "faces": faces,
        "images_per_s": best,
        "pipeline_vs_serial": best["pipeline"] / best["serial"],
        "stage_seconds": {"prepare": times.prepare, "engine": times.engine, "finish": times.finish},
        "seconds": seconds,
    }


def png_levels(paths: list[Path], levels: list[int]) -> list[dict]:
    """What each zlib level costs and saves on these faces (one core, PIL, in memory), with zlib's default strategy
    and with the RLE strategy the SDK writes PNGs with (`imaging.PNG_STRATEGY`)."""
    images = []
    for p in paths[:32]:
        with Image.open(p) as im:
            images.append(center_crop(im.convert("RGB")))
    rows = []
    for strategy, name in ((zlib.Z_DEFAULT_STRATEGY, "default"), (zlib.Z_RLE, "rle")):
        for level in levels:
            start = time.perf_counter()
            sizes = []
            for im in images:
                buf = io.BytesIO()
                im.save(buf, "PNG", compress_level=level, compress_type=strategy)
                sizes.append(buf.tell())
            rows.append(
                {
                    "level": level,
                    "strategy": name,
                    "encode_ms": 1e3 * (time.perf_counter() - start) / len(images),
                    "bytes": float(np.mean(sizes)),
                    "size": list(images[0].size),
                }
            )
    return rows


def _cpu_stages(job: tuple[str, str, int]) -> int:
    """Decode, crop, resize to the model size, resize back, PNG-encode and write: the pipeline's CPU work."""
    src, dst, size = job
    with Image.open(src) as im:
        rgb, meta = to_model_rgb(center_crop(im), size)
    save_image(Image.fromarray(rgb).resize((meta.size, meta.size), Image.Resampling.BICUBIC), dst)
    return len(rgb)


def pools(paths: list[Path], tmp: Path, size: int, workers: int, rounds: int) -> dict:
    """Threads vs processes for the CPU stages alone (no engine): images/s with `workers` of each."""
    out = tmp / "pool-out"
    out.mkdir()
    jobs = [(str(p), str(out / p.name), size) for p in paths]
    best: dict[str, float] = {}
    makers: dict[str, Callable[[], Executor]] = {
        "threads": lambda: ThreadPoolExecutor(workers),
        "processes": lambda: ProcessPoolExecutor(workers),
    }
    for name, make in makers.items():
        with make() as pool:
            list(pool.map(_cpu_stages, jobs[:workers]))  # start the workers (process start-up is not counted)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                list(pool.map(_cpu_stages, jobs, chunksize=4 if name == "processes" else 1))
                times.append(time.perf_counter() - start)
        best[name] = len(jobs) / min(times)
    shutil.rmtree(out)
    return {"workers": workers, "images_per_s": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bundle")
    ap.add_argument("faces", help="a folder of face images (e.g. the images/ of `stargan-train toyfaces`)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", default="1,2", help="pipeline thread counts to compare, e.g. 1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--formats", default="png,jpg")
    ap.add_argument("--photos", type=int, default=48, help="photo-mode photos (0: no photo row)")
    ap.add_argument("--png-levels", default="1,3,6")
    ap.add_argument(
        "--serial-count",
        type=int,
        default=200,
        help="the serial path runs on the first N images only (it is slow; its rate is per image)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    faces = sorted(p for p in Path(args.faces).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    faces = faces[: args.count]
    rows, extras = [], {}
    with Translator.load(args.bundle, backend=args.backend) as t, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        _infer(t, t.normalizer.preprocess(_model_rgbs(t, faces[: args.batch])), args.batch)  # warm-up / compile
        for fmt in args.formats.split(","):
            paths = _convert(faces, tmp / f"in-{fmt}", fmt, os.cpu_count() or 1)
            rows.append(aligned_row(t, paths, tmp, fmt, args))
            print(
                fmt,
                json.dumps({k: round(v, 1) for k, v in rows[-1]["images_per_s"].items()}),
                f"pipeline/infer {rows[-1]['pipeline_vs_infer']:.2f}",
                flush=True,
            )
        rows.append(stream_row(t, faces, args))
        print("stream", json.dumps({k: round(v, 1) for k, v in rows[-1]["images_per_s"].items()}), flush=True)
        if args.photos and (row := photo_row(t, tmp, args)):
            rows.append(row)
            print("photo", json.dumps({k: round(v, 1) for k, v in row["images_per_s"].items()}), flush=True)
        extras["png_levels"] = png_levels(faces, [int(v) for v in args.png_levels.split(",")])
        extras["pools"] = pools(faces, tmp, t.image_size, max(args.workers), args.rounds)
        print(json.dumps(extras), flush=True)
        report = {
            "git_commit": git_commit(),
            "backend": t.backend_name,
            "precision": t.backend.describe().get("precision"),
            "bundle": str(args.bundle),
            "batch": args.batch,
            "rounds": args.rounds,
            "cpus": os.cpu_count(),
            "versions": versions(),
            "rows": rows,
            **extras,
        }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
