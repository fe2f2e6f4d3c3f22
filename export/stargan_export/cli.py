"""`stargan-export`: build a bundle from a checkpoint, validate it, generate a Triton model repository.

Usage: stargan-export build 200000-G.ckpt --out bundle --attrs Black_Hair Blond_Hair Brown_Hair Male Young

Commands only parse, call the library and print. Bad input prints one `error: ...` line and exits 2, a
bundle that fails validation exits 1; tracebacks appear only with STARGAN_DEBUG=1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export StarGAN checkpoints to deployable bundles.",
)
out_console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary on stdout.")]


class _Exit(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


CheckpointArg = Annotated[Path, typer.Argument(help="Run dir, NNNNNN.ckpt, *-G.safetensors or official *-G.ckpt.")]
AttrsOpt = Annotated[
    list[str] | None,
    typer.Option("--attrs", help="Attribute names, space or comma separated; required for official checkpoints."),
]
FP16_HELP = (
    "Write generator.fp16.onnx (FP16 convolutions, FP32 norms) and build the TensorRT engine from it "
    "(an FP16 engine); --no-fp16: FP32 ONNX only and an FP32 engine."
)
TARGET_PSNR_HELP = (
    "INT8 accuracy target in dB PSNR vs FP32 on held-out faces: while the model misses it, the convolutions that "
    "cost the most PSNR per MAC stay float (at most half of the MACs); a target still missed is recorded and "
    "noted. The default is the bar `auto` runs INT8 at."
)
EngineOpt = Annotated[
    bool | None,
    typer.Option(
        "--engine/--no-engine", help="Force or skip the TensorRT engine (default: when available).", show_default=False
    ),
]


@app.command()
def build(
    checkpoint: CheckpointArg,
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to create or replace.")],
    attrs: AttrsOpt = None,
    image_size: Annotated[int | None, typer.Option(help="Image size for official checkpoints (default 128).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16/--no-fp16", help=FP16_HELP)] = True,
    classifier: Annotated[bool, typer.Option("--classifier", help="Also export the attribute classifier (D).")] = False,
    engine: EngineOpt = None,
    torch_weights: Annotated[
        bool,
        typer.Option(
            "--torch-weights/--no-torch-weights",
            help="Write generator.safetensors (for the torch and inductor backends).",
        ),
    ] = True,
    min_batch: Annotated[int, typer.Option(help="Engine profile: smallest batch.")] = 1,
    opt_batch: Annotated[int, typer.Option(help="Engine profile: batch to tune for.")] = 8,
    max_batch: Annotated[int, typer.Option(help="Engine profile: largest batch; parity is checked up to it.")] = 64,
    opset: Annotated[int, typer.Option(help="ONNX opset, 15..21.")] = 17,
    workspace_gib: Annotated[float, typer.Option(help="TensorRT builder workspace limit in GiB.")] = 4.0,
    int8_calibration: Annotated[
        Path | None,
        typer.Option(
            help="Folder of face images (a few dozen, not the training set) to calibrate an INT8 model "
            "(generator.int8.onnx, QDQ): the fast path on CPUs without BF16, where `auto` runs it when its "
            "recorded PSNR vs FP32 is >= 40 dB (it is marked unusable below 30 dB)."
        ),
    ] = None,
    int8_target_psnr: Annotated[float, typer.Option(help=TARGET_PSNR_HELP)] = AUTO_INT8_MIN_PSNR_DB,
    as_json: JsonOpt = False,
) -> None:
    """Export a checkpoint to a bundle (ONNX FP32/FP16/INT8, safetensors weights, TensorRT engine, manifest.json)."""
    from stargan_export.bundle import build_bundle
    from stargan_export.errors import ExportError

    if int8_calibration is not None and not int8_calibration.is_dir():  # fail before minutes of export
        raise ExportError(f"--int8-calibration {int8_calibration} is not a folder of face images")
    notes: list[str] = []

    def note(line: str) -> None:
        notes.append(line)
        typer.echo(line, err=True)

    start = time.perf_counter()
    manifest = build_bundle(
        checkpoint,
        out,
        attributes=attrs,
        image_size=image_size,
        fp16=fp16,
        classifier=classifier,
        engine=engine,
        torch_weights=torch_weights,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        opset=opset,
        workspace_gib=workspace_gib,
        int8_calibration=int8_calibration,
        int8_target_psnr=int8_target_psnr,
        progress=not as_json,
        log=note,
    )
    _note_unusable_int8(manifest, note)
    seconds = time.perf_counter() - start
    rows = [_artifact_row(out, a) for a in manifest.artifacts]
    if as_json:
        print(
            json.dumps({"bundle": str(out), "seconds": round(seconds, 2), "artifacts": rows, "notes": notes}, indent=2)
        )
        return
    table = Table(title=f"bundle {out} ({seconds:.1f} s)")
    for column in ("file", "precision", "size", "parity vs torch"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["file"], r["precision"], f"{r['bytes'] / 1e6:.2f} MB", _parity_text(r["parity"]))
    out_console.print(table)


def _note_unusable_int8(manifest: Any, note: Any) -> None:
    art = manifest.artifact(precision="int8")
    parity = (art.parity or {}) if art is not None else {}
    if art is not None and parity.get("usable") != 1.0:
        note(
            f"INT8 model recorded but marked unusable: {parity.get('psnr_db', float('nan')):.1f} dB "
            f"PSNR vs FP32 is below the {parity.get('min_psnr_db', 30.0):g} dB bar"
        )
    elif art is not None and parity.get("target_met") == 0.0:
        note(
            f"INT8 model misses its {parity['target_psnr_db']:g} dB target: {parity['psnr_db']:.1f} dB PSNR vs FP32 "
            f"with {1 - parity['quantized_mac_fraction']:.0%} of the MACs kept float"
        )


@app.command()
def quantize(
    bundle: Annotated[Path, typer.Argument(help="Existing bundle folder (its FP32 generator is quantized).")],
    calibration: Annotated[
        Path,
        typer.Option("--calibration", help="Folder of face images like the ones you will edit (not the training set)."),
    ],
    count: Annotated[
        int,
        typer.Option(
            "--count", help="Images drawn from the folder: three quarters calibrate, a quarter measures the PSNR."
        ),
    ] = 64,
    seed: Annotated[int, typer.Option(help="Seed for the images drawn and their target labels.")] = 0,
    target_psnr: Annotated[float, typer.Option(help=TARGET_PSNR_HELP)] = AUTO_INT8_MIN_PSNR_DB,
    as_json: JsonOpt = False,
) -> None:
    """Add generator.int8.onnx (static QDQ INT8) to an existing bundle and record its PSNR vs FP32 in the manifest.

    The fast path on CPUs without BF16: `auto` runs it there when the recorded PSNR is >= 40 dB.

    The bundle is updated atomically: a run killed at any point leaves it as it was."""
    from stargan_export.errors import ExportError
    from stargan_export.quantize import quantize_bundle

    if not calibration.is_dir():
        raise ExportError(f"--calibration {calibration} is not a folder of face images")
    if count < 2:
        raise ExportError(f"--count must be at least 2 (one image to calibrate, one to measure), got {count}")
    notes: list[str] = []

    def note(line: str) -> None:
        notes.append(line)
        typer.echo(line, err=True)

    start = time.perf_counter()
    manifest = quantize_bundle(
        bundle, calibration, num_images=count, seed=seed, target_psnr_db=target_psnr, progress=not as_json, log=note
    )
    _note_unusable_int8(manifest, note)
    art = manifest.artifact(precision="int8")
    row = {
        **_artifact_row(bundle, art),
        "auto_on_cpus_without_bf16": art.parity["psnr_db"] >= AUTO_INT8_MIN_PSNR_DB and art.parity["usable"] == 1.0,
        "seconds": round(time.perf_counter() - start, 2),
        "notes": notes,
    }
    if as_json:
        print(json.dumps(row, indent=2))
        return
    used = "used" if row["auto_on_cpus_without_bf16"] else "not used"
    out_console.print(
        f"wrote {bundle / art.file} ({row['bytes'] / 1e6:.2f} MB): PSNR vs FP32 "
        f"{art.parity['psnr_db']:.1f} dB on {art.parity['held_out_images']:.0f} held-out images; "
        f"{used} by `auto` on CPUs without BF16 (needs >= {AUTO_INT8_MIN_PSNR_DB:g} dB)",
        highlight=False,
    )


def _artifact_row(bundle: Path, artifact: Any) -> dict[str, Any]:
    return {
        "file": artifact.file,
        "kind": artifact.kind,
        "precision": artifact.precision,
        "bytes": (bundle / artifact.file).stat().st_size,
        "sha256": artifact.sha256,
        "parity": artifact.parity,
    }


def _parity_text(parity: dict[str, float] | None) -> str:
    if not parity:
        return "not measured"
    if "max_rel" in parity:  # classifier.plan: logits, measured relative to the largest one
        return f"logits within {parity['max_rel']:.2e} of the largest"
    return f"max abs {parity['max_abs']:.2e}, PSNR {parity['psnr_db']:.1f} dB"


@app.command()
def validate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    as_json: JsonOpt = False,
) -> None:
    """Re-check every artifact's checksum, I/O signature and parity against the FP32 graph."""
    from stargan_export.errors import ExportError
    from stargan_export.validate import validate_bundle
    from stargan_sdk.errors import StarGANError

    if not bundle.is_dir():
        raise _Exit(f"bundle folder not found: {bundle}", 2)
    try:
        results = validate_bundle(bundle)
    except (StarGANError, ExportError) as e:
        if as_json:
            print(json.dumps({"bundle": str(bundle), "ok": False, "error": str(e)}))
        raise _Exit(str(e), 1) from None
    if as_json:
        print(json.dumps({"bundle": str(bundle), "ok": True, "artifacts": [r.__dict__ for r in results]}, indent=2))
        return
    for r in results:
        out_console.print(f"{r.status:8} {r.file}: {r.detail}", highlight=False)
    out_console.print(f"bundle {bundle} is valid", highlight=False)


@app.command()
def triton(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    out: Annotated[Path, typer.Option("--out", help="Model repository folder.")],
    backend: Annotated[
        str,
        typer.Option(
            help="tensorrt (model.plan) or onnxruntime (model.onnx) for NVIDIA's containers; python (model.py runs "
            "the SDK)."
        ),
    ] = "tensorrt",
    max_batch: Annotated[int, typer.Option(help="Triton max_batch_size.")] = 64,
    instances: Annotated[int, typer.Option(help="Model instances (instance_group count).")] = 1,
    model_name: Annotated[str, typer.Option(help="Model name in the repository.")] = "stargan",
    precision: Annotated[str, typer.Option(help="fp32 or fp16 artifact.")] = "fp32",
    kind: Annotated[str, typer.Option(help="Instance kind: gpu or cpu (cpu only with onnxruntime).")] = "gpu",
    as_json: JsonOpt = False,
) -> None:
    """Write a Triton Inference Server model repository (config.pbtxt + 1/model.{plan,onnx,py}) from a bundle."""
    from stargan_export.triton import BACKENDS, write_triton_repository, written_models

    model_dir = write_triton_repository(
        bundle,
        out,
        backend=backend,
        max_batch=max_batch,
        instances=instances,
        model_name=model_name,
        precision=precision,
        kind=kind,
    )
    models = written_models(out, backend, model_name)
    copy = model_dir / "bundle" if backend == "python" else None
    if as_json:
        print(
            json.dumps(
                {
                    "model_dir": str(model_dir),
                    "config": str(model_dir / "config.pbtxt"),
                    "models": [str(m) for m in models],
                    "bundle_copy": str(copy) if copy else None,
                }
            )
        )
        return
    for m in models:
        out_console.print(f"wrote {m}/config.pbtxt and {m}/1/{BACKENDS[backend][1]}", highlight=False)
    if copy is not None:
        out_console.print(f"wrote {copy}/ (a copy of the bundle, which the models' model.py load)", highlight=False)


def join_attr_values(argv: list[str]) -> list[str]:
    """Let `--attrs A B C` mean `--attrs A,B,C` (click options take one value each)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] == "--attrs":
            values = []
            while i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                values.append(argv[i + 1])
                i += 1
            if values:
                out.append(",".join(values))
        i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    from stargan_export.errors import ExportError
    from stargan_sdk.errors import StarGANError
    from stargan_train.weights import CheckpointError

    args = join_attr_values(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="stargan-export", standalone_mode=True)
    except _Exit as e:
        _fail(str(e), e.code)
    except (ExportError, StarGANError, CheckpointError, OSError) as e:
        _fail(str(e) or type(e).__name__, 2)


def _fail(message: str, code: int) -> None:
    """One `error:` line (TensorRT parser failures add one indented line per parser error)."""
    if os.environ.get("STARGAN_DEBUG") == "1":
        raise  # called inside an except block: re-raise the original exception with its traceback
    first, *rest = message.splitlines() or [""]
    typer.echo(f"error: {first}", err=True)
    for line in rest:
        typer.echo(f"  {line}", err=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
