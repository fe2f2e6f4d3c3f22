"""`stargan-train eval`: the paper's attribute-classification protocol (+ counterfactual fidelity) on a run dir.

Usage: stargan-train eval runs/toy --num-images 500 --json
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stargan_train.config import DataConfig, RunConfig


def eval_command(
    run_dir: Annotated[
        Path, typer.Argument(help="Run dir written by `stargan-train train` (config.json + checkpoints/).")
    ],
    checkpoint: Annotated[
        Path | None, typer.Option(help="A specific checkpoint (.ckpt or -G.safetensors); default: the run's newest.")
    ] = None,
    num_images: Annotated[
        int,
        typer.Option(
            help="Held-out test images to translate (the official test split is 2000); a smaller split is used whole, "
            "with a warning."
        ),
    ] = 2000,
    classifier_iters: Annotated[
        int,
        typer.Option(
            help="Training steps of the attribute classifier, when it is not cached (the first eval of a run: minutes "
            "on a CPU)."
        ),
    ] = 1500,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 16,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of classifier training.")] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="CelebA-layout folder (images/, list_attr_celeba.txt) replacing the run's data paths."),
    ] = None,
    retrain_classifier: Annotated[
        bool, typer.Option(help="Ignore the cached classifier in <run_dir>/eval and train a new one.")
    ] = False,
) -> None:
    """Translate held-out images to every single-attribute target; report attribute accuracy, L1, localisation and,
    on toyfaces, PSNR / SSIM against the true counterfactual face."""
    try:
        result = run_eval(
            run_dir,
            checkpoint,
            num_images=num_images,
            classifier_iters=classifier_iters,
            batch_size=batch_size,
            device=device,
            seed=seed,
            data_dir=data_dir,
            retrain_classifier=retrain_classifier,
            progress=True,
        )
    except Exception as e:  # one line for the user; the traceback on request
        if os.environ.get("STARGAN_DEBUG") == "1":
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        typer.echo(f"error: {message}", err=True)  # not rich: it would wrap a long path onto two lines
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
    else:
        print_tables(result, Console())
    for warning in result["warnings"]:  # stderr in both modes: stdout stays the JSON object (or the tables)
        typer.echo(f"warning: {warning}", err=True)


def run_eval(
    run_dir: Path,
    checkpoint: Path | None,
    *,
    num_images: int,
    classifier_iters: int,
    batch_size: int,
    device: str,
    seed: int,
    data_dir: Path | None,
    retrain_classifier: bool,
    progress: bool,
) -> dict[str, Any]:
    """Load the generator, get the (cached) classifier, evaluate; the `--json` dict."""
    from stargan_train.attribute_classifier import load_or_train_classifier
    from stargan_train.evaluate import evaluate, json_safe, resolve_device
    from stargan_train.weights import CheckpointError, load_discriminator, load_generator

    for name, value in (("num-images", num_images), ("batch-size", batch_size), ("classifier-iters", classifier_iters)):
        if value <= 0:
            raise ValueError(f"--{name} must be > 0, got {value}")
    start = time.perf_counter()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run dir not found: {run_dir}")
    device = resolve_device(device)
    loaded = load_generator(checkpoint if checkpoint is not None else run_dir, map_location=device)
    try:  # the run's critic, when its weights are there (a G-only file has none): reported beside the classifier
        critic = load_discriminator(loaded.source, map_location=device)
    except CheckpointError:
        critic = None
    data = _data_config(run_dir, loaded.run_config, data_dir)
    classifier, info, reused = load_or_train_classifier(
        run_dir,
        data,
        iters=classifier_iters,
        batch_size=32,
        device=device,
        seed=seed,
        progress=progress,
        retrain=retrain_classifier,
    )
    report = evaluate(
        loaded,
        data,
        classifier=classifier,
        num_images=num_images,
        batch_size=batch_size,
        device=device,
        seed=seed,
        progress=progress,
        critic=critic,
    )
    out = report.to_dict()
    out["checkpoint"] = str(loaded.source)
    out["critic"] = str(critic.source) if critic is not None else None
    out["classifier"] = {
        "path": str(run_dir / "eval" / "classifier.safetensors"),
        "cached": reused,
        "iters": info.iters,
        "held_out_accuracy": info.accuracy,
    }
    out["total_wall_time_s"] = time.perf_counter() - start
    return json_safe(out)


def _data_config(run_dir: Path, run_config: RunConfig | None, data_dir: Path | None) -> DataConfig:
    if run_config is None:
        config_path = run_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{run_dir} has no config.json and the checkpoint carries no config")
        run_config = RunConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    data = run_config.data
    if data_dir is not None:
        data = dataclasses.replace(
            data, celeba_image_dir=str(data_dir / "images"), attr_path=str(data_dir / "list_attr_celeba.txt")
        )
    return data


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _db(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fidelity_table(fidelity: dict[str, dict[str, Any]]) -> Table:
    """PSNR / SSIM of each output against the same toy face re-rendered with the target labels."""
    table = Table(title="fidelity to the true counterfactual face (toyfaces re-render; PSNR in dB, capped at 100)")
    for column in ("edit", "PSNR", "SSIM", "PSNR outside the edited region", "images"):
        table.add_column(column, justify="left" if column == "edit" else "right")
    for key, row in fidelity.items():
        name = "identity (own labels)" if key == "identity" else key
        table.add_row(name, _db(row["psnr"]), _num(row["ssim"]), _db(row["psnr_outside"]), str(row["images"]))
    return table


def print_tables(result: dict[str, Any], console: Console) -> None:
    """Per-attribute table, localisation table, summary lines (the warnings go to stderr, see eval_command)."""
    table = Table(
        title=f"single-attribute edits of {result['images_used']} test images "
        f"(checkpoint iteration {result['checkpoint_iteration']})"
    )
    critic = result.get("critic_target_accuracy") or {}
    columns = ["edit", "target acc", "others preserved", "rec L1", "classifier acc (real)"]
    for column in columns + (["critic's verdict"] if critic else []):
        table.add_column(column, justify="left" if column == "edit" else "right")
    for attr, row in result["per_attribute"].items():
        table.add_row(
            attr,
            _pct(row["target_accuracy"]),
            _pct(row["preserved_accuracy"]),
            _num(row["rec_l1"]),
            _pct(row["classifier_accuracy"]),
            *([_pct(critic[attr])] if critic else []),
        )
    table.add_section()
    mean_critic = [_pct(sum(critic.values()) / len(critic))] if critic else []
    table.add_row(
        "mean",
        _pct(result["mean_target_accuracy"]),
        _pct(result["mean_preserved_accuracy"]),
        _num(result["mean_rec_l1"]),
        _pct(result["mean_classifier_accuracy"]),
        *mean_critic,
    )
    console.print(table)
    by_input = result.get("target_accuracy_by_input")
    if by_input:
        # For a flip, "input had it" is one direction (e.g. young -> old) and "had not" the other.
        split = Table(title="target accuracy by the input's own value of the edited attribute")
        for column in ("edit", "input had it", "images", "input had not", "images "):
            split.add_column(column, justify="left" if column == "edit" else "right")
        for attr in result["attrs"]:
            had, had_not = by_input[attr][attr]["1"], by_input[attr][attr]["0"]
            split.add_row(
                attr, _pct(had["accuracy"]), str(had["images"]), _pct(had_not["accuracy"]), str(had_not["images"])
            )
        console.print(split)
    if result["localisation"]:
        loc = Table(title="hair edits: mean |output - input| (images whose hair colour changed)")
        for column in ("edit", "inside hair", "outside hair", "outside / inside", "images"):
            loc.add_column(column, justify="left" if column == "edit" else "right")
        for attr, row in result["localisation"].items():
            loc.add_row(
                attr, _num(row["inside"]), _num(row["outside"]), _num(row["outside_over_inside"]), str(row["images"])
            )
        console.print(loc)
    if result.get("counterfactual"):
        console.print(_fidelity_table(result["counterfactual"]))
    cached = "cached" if result["classifier"]["cached"] else "trained now"
    console.print(
        f"identity L1 |G(x, c_org) - x|: {result['identity_l1']:.4f}   "
        f"wall time: {result['wall_time_s']:.1f} s evaluating, {result['total_wall_time_s']:.1f} s in all"
    )
    console.print(f"classifier ({cached}): {result['classifier']['path']}")
