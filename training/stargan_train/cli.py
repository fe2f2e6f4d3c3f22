"""`stargan-train`: train (single process or under torchrun), make toy data, evaluate, and draw sample grids.

Usage: stargan-train toyfaces data/toy --count 2000 && stargan-train train --dataset toyfaces --data-dir data/toy
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from stargan_train.config import (
    DataConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    RunConfig,
    TrainConfig,
    classifier_dim,
    label_dim,
)

app = typer.Typer(
    help="Train StarGAN (CelebA, RaFD, both, or the built-in toyfaces) and inspect runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_G, _D, _DATA, _T = GeneratorConfig(), DiscriminatorConfig(), DataConfig(), TrainConfig()
DATA, MODEL, OPTIM, OUTPUT, RUN = "Data", "Model", "Optimisation", "Schedule and outputs", "Run"

# CLI option name -> the (section, field) pairs it sets in RunConfig.
OPTION_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "dataset": (("data", "dataset"),),
    "celeba_image_dir": (("data", "celeba_image_dir"),),
    "attr_path": (("data", "attr_path"),),
    "rafd_image_dir": (("data", "rafd_image_dir"),),
    "rafd_test_dir": (("data", "rafd_test_dir"),),
    "selected_attrs": (("data", "selected_attrs"),),
    "celeba_crop_size": (("data", "celeba_crop_size"),),
    "rafd_crop_size": (("data", "rafd_crop_size"),),
    "test_count": (("data", "test_count"),),
    "data_seed": (("data", "seed"),),
    "num_workers": (("data", "num_workers"),),
    "image_size": (("data", "image_size"), ("discriminator", "image_size")),
    "g_conv_dim": (("generator", "conv_dim"),),
    "d_conv_dim": (("discriminator", "conv_dim"),),
    "g_repeat_num": (("generator", "repeat_num"),),
    "d_repeat_num": (("discriminator", "repeat_num"),),
    **{
        name: (("train", name),)
        for name in (
            "batch_size",
            "num_iters",
            "num_iters_decay",
            "lr_schedule",
            "lr_update_step",
            "g_lr",
            "d_lr",
            "n_critic",
            "beta1",
            "beta2",
            "lambda_cls",
            "lambda_rec",
            "lambda_gp",
            "lambda_id",
            "augment",
            "init_weights",
            "fresh_critic",
            "critic_warmup",
            "amp",
            "channels_last",
            "seed",
            "device",
            "log_step",
            "sample_step",
            "model_save_step",
            "keep_checkpoints",
        )
    },
}


def cli_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and exit code 2 (1 for unexpected ones)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:
            if os.environ.get("STARGAN_DEBUG") == "1":
                raise
            message = " ".join(str(e).split()) or type(e).__name__
            known = isinstance(e, (ValueError, OSError, KeyError))  # config, dataset, checkpoint, run-dir, files
            prefix = "" if known else f"{type(e).__name__}: "
            hint = "" if known else " (set STARGAN_DEBUG=1 for the traceback)"
            typer.echo(f"error: {prefix}{message}{hint}", err=True)
            raise typer.Exit(2 if known else 1) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def build_config(base: RunConfig, given: dict[str, Any], c_dim: int | None) -> RunConfig:
    """Apply the options the user gave on top of `base`, then derive c_dim from the dataset's labels."""
    sections = base.to_dict()
    for option, value in given.items():
        for section, name in OPTION_FIELDS[option]:
            sections[section][name] = value
    train = sections["train"]
    if "num_iters_decay" not in given and train["num_iters_decay"] > train["num_iters"]:
        train["num_iters_decay"] = (
            train["num_iters"] // 2
        )  # a short run keeps the paper's shape: decay over the last half
    data = DataConfig(**sections["data"])
    n = label_dim(data)
    if c_dim is not None and c_dim != n:
        raise ValueError(
            f"--c-dim {c_dim} does not match the {n} label(s) of dataset {sections['data']['dataset']!r}; "
            f"leave --c-dim out, it is derived from --dataset and --selected-attrs"
        )
    sections["generator"]["c_dim"] = n
    sections["discriminator"]["c_dim"] = classifier_dim(data)  # joint: no logits for the mask, as officially
    return RunConfig.from_dict(sections)


def _split_attrs(values: list[str]) -> list[str]:
    return [a for v in values for a in v.replace(",", " ").split()]


def _base_config(run_dir: Path, resume: bool) -> RunConfig:
    """Defaults for a new run; the stored config when resuming (so only changed options need repeating)."""
    if not resume:
        return RunConfig()
    stored = run_dir / "config.json"
    if stored.is_file():
        try:
            return RunConfig.from_dict(json.loads(stored.read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise ValueError(f"{stored} is not valid JSON: {e}") from None
    from stargan_train.checkpoint import latest_checkpoint, load_checkpoint

    latest = latest_checkpoint(run_dir)  # config.json deleted by hand: every checkpoint carries the config too
    return load_checkpoint(latest).config if latest else RunConfig()


@app.command(no_args_is_help=False)
@cli_errors
def train(
    ctx: typer.Context,
    run_dir: Annotated[
        Path,
        typer.Option(
            help="Output folder: config.json, checkpoints/, samples/, logs/ (TensorBoard).", rich_help_panel=RUN
        ),
    ] = Path("runs/stargan"),
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the newest checkpoint in --run-dir exactly; options not given are taken from it.",
            rich_help_panel=RUN,
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Delete the checkpoints, samples and logs already in --run-dir.", rich_help_panel=RUN
        ),
    ] = False,
    no_progress: Annotated[
        bool,
        typer.Option(
            "--no-progress", help="No progress bar (it is also off when stderr is not a terminal).", rich_help_panel=RUN
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the final summary as JSON on stdout.", rich_help_panel=RUN)
    ] = False,
    dataset: Annotated[
        str,
        typer.Option(help="celeba, rafd, both (joint, mask vector) or toyfaces (CelebA layout).", rich_help_panel=DATA),
    ] = _DATA.dataset,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Shortcut for a CelebA-layout folder: sets --celeba-image-dir DIR/images and --attr-path "
            "DIR/list_attr_celeba.txt.",
            rich_help_panel=DATA,
        ),
    ] = None,
    celeba_image_dir: Annotated[
        str, typer.Option(help="Folder of CelebA (or toyfaces) images.", rich_help_panel=DATA)
    ] = _DATA.celeba_image_dir,
    attr_path: Annotated[
        str, typer.Option(help="CelebA attribute file list_attr_celeba.txt.", rich_help_panel=DATA)
    ] = _DATA.attr_path,
    rafd_image_dir: Annotated[
        str, typer.Option(help="RaFD training folder (one sub-folder per expression).", rich_help_panel=DATA)
    ] = _DATA.rafd_image_dir,
    rafd_test_dir: Annotated[
        str,
        typer.Option(
            help="RaFD test folder (empty: the sibling of --rafd-image-dir named test).", rich_help_panel=DATA
        ),
    ] = _DATA.rafd_test_dir,
    selected_attrs: Annotated[
        list[str],
        typer.Option(
            help="CelebA attribute to learn; repeat the option (or separate by commas).", rich_help_panel=DATA
        ),
    ] = list(_DATA.selected_attrs),  # noqa: B006 (typer needs a list default; never mutated)
    image_size: Annotated[
        int, typer.Option(help="Training resolution (D needs it divisible by 2**d_repeat_num).", rich_help_panel=DATA)
    ] = _DATA.image_size,
    celeba_crop_size: Annotated[
        int, typer.Option(help="Center crop of CelebA images before resizing.", rich_help_panel=DATA)
    ] = _DATA.celeba_crop_size,
    rafd_crop_size: Annotated[
        int, typer.Option(help="Center crop of RaFD images before resizing.", rich_help_panel=DATA)
    ] = _DATA.rafd_crop_size,
    test_count: Annotated[
        int, typer.Option(help="CelebA images held out as the test split.", rich_help_panel=DATA)
    ] = _DATA.test_count,
    data_seed: Annotated[
        int, typer.Option(help="Seed of the CelebA train/test split.", rich_help_panel=DATA)
    ] = _DATA.seed,
    num_workers: Annotated[
        int,
        typer.Option(
            help="DataLoader worker processes (any count gives the same, exactly resumable run).", rich_help_panel=DATA
        ),
    ] = _DATA.num_workers,
    c_dim: Annotated[
        int | None,
        typer.Option(
            help="Label length; derived from --dataset/--selected-attrs, an error if given and different.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    g_conv_dim: Annotated[
        int, typer.Option(help="Generator channels in its first layer.", rich_help_panel=MODEL)
    ] = _G.conv_dim,
    d_conv_dim: Annotated[
        int, typer.Option(help="Discriminator channels in its first layer.", rich_help_panel=MODEL)
    ] = _D.conv_dim,
    g_repeat_num: Annotated[
        int, typer.Option(help="Residual blocks in the generator.", rich_help_panel=MODEL)
    ] = _G.repeat_num,
    d_repeat_num: Annotated[
        int, typer.Option(help="Stride-2 convolutions in the discriminator.", rich_help_panel=MODEL)
    ] = _D.repeat_num,
    batch_size: Annotated[
        int, typer.Option(help="Images per step (per process under torchrun).", rich_help_panel=OPTIM)
    ] = _T.batch_size,
    num_iters: Annotated[
        int,
        typer.Option(
            help="Total iterations (one critic step each). Without --num-iters-decay, a decay that does not fit "
            "becomes the last half.",
            rich_help_panel=OPTIM,
        ),
    ] = _T.num_iters,
    num_iters_decay: Annotated[
        int, typer.Option(help="Final iterations over which both lrs decay (see --lr-schedule).", rich_help_panel=OPTIM)
    ] = _T.num_iters_decay,
    lr_schedule: Annotated[
        str,
        typer.Option(
            help="paper (default): both lrs decay linearly to 0 over the last --num-iters-decay iterations, as the "
            "paper says and the official code did until its c53e598 clean-up. official: today's yunjey/stargan "
            "solver.py, which subtracts lr/num_iters_decay every --lr-update-step iterations and so ends near "
            "lr * (1 - 1/lr_update_step), 99.9% of it by default: the clean-up dropped the factor lr_update_step. "
            "Choose official only to reproduce a run of today's official code.",
            rich_help_panel=OPTIM,
        ),
    ] = _T.lr_schedule,
    lr_update_step: Annotated[
        int,
        typer.Option(
            help="Iterations between the lr steps of --lr-schedule official (ignored by paper).", rich_help_panel=OPTIM
        ),
    ] = _T.lr_update_step,
    g_lr: Annotated[float, typer.Option(help="Generator Adam learning rate.", rich_help_panel=OPTIM)] = _T.g_lr,
    d_lr: Annotated[float, typer.Option(help="Discriminator Adam learning rate.", rich_help_panel=OPTIM)] = _T.d_lr,
    n_critic: Annotated[
        int, typer.Option(help="Critic steps per generator step.", rich_help_panel=OPTIM)
    ] = _T.n_critic,
    beta1: Annotated[float, typer.Option(help="Adam beta1.", rich_help_panel=OPTIM)] = _T.beta1,
    beta2: Annotated[float, typer.Option(help="Adam beta2.", rich_help_panel=OPTIM)] = _T.beta2,
    lambda_cls: Annotated[
        float, typer.Option(help="Weight of the domain classification loss.", rich_help_panel=OPTIM)
    ] = _T.lambda_cls,
    lambda_rec: Annotated[
        float, typer.Option(help="Weight of the cycle reconstruction loss.", rich_help_panel=OPTIM)
    ] = _T.lambda_rec,
    lambda_gp: Annotated[
        float, typer.Option(help="Weight of the gradient penalty.", rich_help_panel=OPTIM)
    ] = _T.lambda_gp,
    lambda_id: Annotated[
        float,
        typer.Option(
            help="Weight of an identity loss L1(G(x, c_org), x); not in the official recipe (0 = off, exact official "
            "training).",
            rich_help_panel=OPTIM,
        ),
    ] = _T.lambda_id,
    augment: Annotated[
        str,
        typer.Option(
            help="DiffAugment for every critic input: translation, cutout or both (comma-separated); empty = official "
            "recipe.",
            rich_help_panel=OPTIM,
        ),
    ] = "",
    init_weights: Annotated[
        str,
        typer.Option(
            help="Fine-tune: start G and D from this run dir or checkpoint (same architecture), with fresh optimisers "
            "at iteration 0.",
            rich_help_panel=OPTIM,
        ),
    ] = "",
    fresh_critic: Annotated[
        bool,
        typer.Option(
            help="With --init-weights: take only the generator from it and start a new critic (the source may have no "
            "discriminator, e.g. a shipped bundle's weights).",
            rich_help_panel=OPTIM,
        ),
    ] = _T.fresh_critic,
    critic_warmup: Annotated[
        int,
        typer.Option(
            help="Iterations at the start that train only the critic, so a fresh one has learned before it judges G.",
            rich_help_panel=OPTIM,
        ),
    ] = _T.critic_warmup,
    amp: Annotated[
        str,
        typer.Option(
            help="off (default: exact FP32, the official recipe) or bf16: autocast the G and D forward passes to BF16 "
            "(GPUs with BF16, and CPUs; the gradient penalty stays FP32). Faster on a GPU, not bit-exact.",
            rich_help_panel=OPTIM,
        ),
    ] = _T.amp,
    channels_last: Annotated[
        bool,
        typer.Option(
            "--channels-last",
            help="NHWC memory format for the networks and batches (faster convolutions on GPUs; same results within "
            "float rounding).",
            rich_help_panel=OPTIM,
        ),
    ] = _T.channels_last,
    seed: Annotated[
        int, typer.Option(help="Seed of weights, data order and targets.", rich_help_panel=OPTIM)
    ] = _T.seed,
    device: Annotated[
        str, typer.Option(help="auto (CUDA if available), cpu, cuda or cuda:N.", rich_help_panel=OPTIM)
    ] = _T.device,
    log_step: Annotated[
        int, typer.Option(help="Iterations between TensorBoard scalars.", rich_help_panel=OUTPUT)
    ] = _T.log_step,
    sample_step: Annotated[
        int, typer.Option(help="Iterations between sample grids (samples/NNNNNN.png).", rich_help_panel=OUTPUT)
    ] = _T.sample_step,
    model_save_step: Annotated[
        int, typer.Option(help="Iterations between checkpoints.", rich_help_panel=OUTPUT)
    ] = _T.model_save_step,
    keep_checkpoints: Annotated[
        int, typer.Option(help="Newest checkpoints to keep (0 keeps all).", rich_help_panel=OUTPUT)
    ] = _T.keep_checkpoints,
) -> None:
    """Train StarGAN. Under `torchrun --nproc_per_node N -m stargan_train train ...` it runs DDP."""
    from stargan_train.trainer import run_training

    values = dict(locals())
    given = {k: values[k] for k in OPTION_FIELDS if ctx.get_parameter_source(k).name != "DEFAULT"}
    if "selected_attrs" in given:
        given["selected_attrs"] = _split_attrs(given["selected_attrs"])
    if data_dir is not None:
        given.setdefault("celeba_image_dir", str(data_dir / "images"))
        given.setdefault("attr_path", str(data_dir / "list_attr_celeba.txt"))
    config = build_config(_base_config(run_dir, resume), given, c_dim)
    bar_shown = not no_progress and sys.stderr.isatty()
    on_log = None if json_output or bar_shown else _print_log
    summary = run_training(config, run_dir, resume=resume, overwrite=overwrite, progress=not no_progress, on_log=on_log)
    if summary["rank"] != 0:  # under torchrun only rank 0 reports
        return
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(
            f"trained {summary['start_iteration']} -> {summary['iterations']} iterations in "
            f"{summary['seconds']:.1f} s ({summary['it_per_s']} it/s); checkpoint {summary['checkpoint']}"
        )


def _print_log(iteration: int, logs: dict[str, float]) -> None:
    """Log lines for when there is no progress bar (CI logs, --no-progress)."""
    shown = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k.endswith(("loss", "it_per_s")) or k == "lr/g")
    typer.echo(f"[{iteration}] {shown}", err=True)


@app.command()
@cli_errors
def toyfaces(
    out: Annotated[Path, typer.Argument(help="Folder to write (images/, list_attr_celeba.txt, masks/).")],
    count: Annotated[int, typer.Option(help="Number of faces.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed; the same seed writes the same images.")] = 0,
    expressions: Annotated[
        bool, typer.Option("--expressions", help="Also write the RaFD-layout expressions variant.")
    ] = False,
    width: Annotated[int, typer.Option(help="Image width (CelebA aligned: 178).")] = 178,
    height: Annotated[int, typer.Option(help="Image height (CelebA aligned: 218).")] = 218,
    workers: Annotated[int, typer.Option(help="Processes drawing faces (the files are the same for any number).")] = 1,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Generate the synthetic toyfaces data set (CelebA layout, the same five attributes)."""
    from stargan_train.data.toyfaces import generate_toyfaces

    path = generate_toyfaces(
        out, count, seed, width=width, height=height, expressions=expressions, progress=not no_progress, workers=workers
    )
    if json_output:
        typer.echo(json.dumps({"out": str(path), "count": count, "seed": seed, "expressions": expressions}))
    else:
        typer.echo(f"wrote {count} toy faces to {path}")


@app.command()
@cli_errors
def sample(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="Run dir (newest checkpoint), a checkpoint file of ours, or an official NNN-G.ckpt (CelebA, RaFD or "
            "joint: its label length says which)."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="PNG to write: per test image a row: input, then one output per domain.")
    ] = Path("samples.png"),
    count: Annotated[int, typer.Option(help="Test images (rows).")] = 8,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder to read test images from instead of the run's (required for an official checkpoint): CelebA "
            "layout (images/, list_attr_celeba.txt; joint mode samples CelebA faces), or for a RaFD model its test "
            "folder (one sub-folder per expression)."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a sample grid from a checkpoint on test images."""
    from stargan_train.distributed import resolve_device
    from stargan_train.samples import write_checkpoint_samples

    result = write_checkpoint_samples(run_dir, out, count=count, data_dir=data_dir, device=str(resolve_device(device)))
    typer.echo(
        json.dumps(result) if json_output else f"wrote {out} ({result['rows']} rows x {result['columns']} columns)"
    )


def _register_eval() -> None:
    """`eval` lives in its own module; a missing or broken one must not take the other commands down."""
    try:
        from stargan_train.cli_eval import eval_command
    except ImportError as e:
        reason = str(e)

        @app.command("eval", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        def eval_unavailable() -> None:
            """Evaluate a run (unavailable: the evaluation module could not be imported)."""
            typer.echo(
                f"error: evaluation is unavailable: stargan_train.cli_eval cannot be imported ({reason})", err=True
            )
            raise typer.Exit(2)

        return
    app.command("eval")(cli_errors(eval_command))


_register_eval()


def main() -> None:
    """Console-script entry point (`stargan-train`)."""
    app(prog_name="stargan-train")
