"""`infer_uint8` (uint8 crops up and down, normalised where the generator runs) beside `infer` between the host's
Normalizer, per GPU backend, on the same crops, interleaved; the best of the rounds counts.

Usage: python benchmarks/uint8_boundary.py BUNDLE --batch 64 --rounds 5 --json benchmarks/results/uint8-gpu.json

Each row records whether the backend normalises on the device (`uint8_on_device`, with its `uint8_error` when it
does not: then both columns run the same host path), the milliseconds per batch of each path, and the largest
difference in LSB between their results. With a classifier in the bundle, each row also times the originals'
estimate where the Translator runs it (`classifier_runs_on`: on the backend's GPU from uint8 crops, or ONNX
Runtime's CPU) beside ONNX Runtime's CPU classifier on the same crops. `--device-type cpu` is the dry run: inductor
then compiles its uint8 graphs on the CPU (`uint8_graphs=True`), so the folded path runs there too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench_report import git_commit, versions
from stargan_sdk import Translator
from stargan_sdk.backends.classifier import AttributeClassifier, logits_error
from stargan_sdk.errors import StarGANError

BACKENDS = ("tensorrt", "inductor", "torch")


def mean_ms(fn, iterations: int) -> float:
    """Mean milliseconds per call over `iterations` calls."""
    t0 = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - t0) * 1e3 / iterations


def classifier_row(t: Translator, images: np.ndarray, args: argparse.Namespace) -> dict | None:
    """The estimate where the Translator runs it vs ONNX Runtime's CPU classifier, ms per batch (None: none)."""
    if t.classifier is None:
        return None
    cpu = AttributeClassifier.from_bundle(t.bundle)
    x = t.normalizer.preprocess(images)
    out: dict = {"runs_on": t.classifier.describe()}
    paths = {"onnxruntime_cpu": lambda: cpu.logits(x)}
    if t.classifier.uint8_on_device:
        paths["device_uint8"] = lambda: t.classifier.logits_uint8(images)
        out["max_rel_logit_diff"] = logits_error(cpu.logits(x), t.classifier.logits_uint8(images))  # + warm-up
    iterations = max(1, args.iterations // 2)  # the CPU classifier is the slow side: fewer calls do
    rounds = [{k: mean_ms(f, iterations) for k, f in paths.items()} for _ in range(3)]
    out["ms_per_batch"] = {k: round(min(r[k] for r in rounds), 3) for k in paths}
    return out


def row(bundle: Path, backend: str, args: argparse.Namespace) -> dict:
    options = {"device_type": args.device_type} if backend != "tensorrt" else {}
    if backend == "inductor":
        options.update(batch_sizes=(args.batch,), uint8_graphs=True)
    with Translator.load(bundle, backend=backend, max_batch=args.batch, **options) as t:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.batch, t.image_size, t.image_size, 3), dtype=np.uint8)
        labels = rng.integers(0, 2, (args.batch, t.manifest.c_dim)).astype(np.float32)
        norm = t.normalizer

        def host() -> np.ndarray:
            return norm.postprocess(t.infer(norm.preprocess(images), labels))

        def device() -> np.ndarray:
            return t.infer_uint8(images, labels)

        diff = int(np.abs(host().astype(int) - device().astype(int)).max())  # also the warm-up of both
        rounds = [(mean_ms(host, args.iterations), mean_ms(device, args.iterations)) for _ in range(args.rounds)]
        ms = {"infer_host_normalised": min(h for h, _ in rounds), "infer_uint8": min(d for _, d in rounds)}
        info = t.describe()
        return {
            "backend": backend,
            "batch": args.batch,
            "uint8_on_device": bool(t.backend.uint8_on_device),
            "uint8_error": info.get("uint8_error", ""),
            "ms_per_batch": {k: round(v, 3) for k, v in ms.items()},
            "speedup": round(ms["infer_host_normalised"] / ms["infer_uint8"], 3),
            "max_diff_lsb": diff,
            "describe": {k: v for k, v in info.items() if "uint8" in k or k in ("device", "precision")},
            "classifier": classifier_row(t, images, args),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--device-type", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows, skipped = [], {}
    for backend in args.backends.split(","):
        try:
            rows.append(row(args.bundle, backend, args))
        except StarGANError as e:  # e.g. no TensorRT here: the other rows still count
            skipped[backend] = str(e)
            print(f"{backend}: skipped ({e})", flush=True)
            continue
        r = rows[-1]
        print(f"{backend}: uint8_on_device={r['uint8_on_device']} {r['ms_per_batch']} speedup {r['speedup']}x "
              f"max diff {r['max_diff_lsb']} LSB; classifier {r['classifier']}", flush=True)  # fmt: skip
    if args.json:
        report = {"commit": git_commit(), "versions": versions(), "rows": rows, "skipped": skipped}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
