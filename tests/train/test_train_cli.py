"""`stargan-train` through typer's CliRunner (and one real subprocess): train, sample, toyfaces, eval, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from stargan_train.cli import OPTION_FIELDS, app, build_config
from stargan_train.config import RunConfig

runner = CliRunner()
TINY = [
    "--dataset",
    "toyfaces",
    "--image-size",
    "32",
    "--celeba-crop-size",
    "36",
    "--test-count",
    "4",
    "--g-conv-dim",
    "8",
    "--d-conv-dim",
    "8",
    "--g-repeat-num",
    "1",
    "--d-repeat-num",
    "3",
    "--batch-size",
    "4",
    "--num-workers",
    "0",
    "--device",
    "cpu",
    "--no-progress",
]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "toy"
    result = runner.invoke(
        app,
        [
            "toyfaces",
            str(out),
            "--count",
            "12",
            "--seed",
            "4",
            "--width",
            "36",
            "--height",
            "44",
            "--no-progress",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] == 12
    return out


@pytest.fixture(scope="module")
def trained(toy: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(
        app,
        [
            "train",
            *TINY,
            "--data-dir",
            str(toy),
            "--run-dir",
            str(run_dir),
            "--num-iters",
            "5",
            "--num-iters-decay",
            "2",
            "--model-save-step",
            "5",
            "--sample-step",
            "5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return run_dir, json.loads(result.stdout)


def _one_line_error(result: object, code: int = 2) -> str:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    err = result.stderr.strip()  # type: ignore[attr-defined]
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_toyfaces_command_writes_the_celeba_layout(toy: Path) -> None:
    assert len(list((toy / "images").glob("*.png"))) == 12
    assert (toy / "list_attr_celeba.txt").read_text().splitlines()[0].strip() == "12"


def test_train_writes_a_run_and_reports_json(trained: tuple[Path, dict]) -> None:
    run_dir, summary = trained
    assert summary["iterations"] == 5 and summary["start_iteration"] == 0 and summary["rank"] == 0
    assert Path(summary["checkpoint"]).name == "000005.ckpt"
    stored = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert (stored.generator.conv_dim, stored.generator.c_dim, stored.discriminator.repeat_num) == (8, 5, 3)
    assert stored.train.num_iters_decay == 2 and stored.data.image_size == stored.discriminator.image_size == 32
    assert all(v == v for v in summary["last"].values())  # finite, not NaN


def test_resume_takes_options_not_given_from_the_run(trained: tuple[Path, dict]) -> None:
    run_dir, _ = trained
    result = runner.invoke(
        app,
        [
            "train",
            "--run-dir",
            str(run_dir),
            "--resume",
            "--num-iters",
            "6",
            "--json",
            "--no-progress",
            "--model-save-step",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["start_iteration"], summary["iterations"]) == (5, 6)
    (run_dir / "config.json").unlink()  # the checkpoint's own copy of the config stands in
    result = runner.invoke(
        app, ["train", "--run-dir", str(run_dir), "--resume", "--num-iters", "7", "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["start_iteration"] == 6
    err = _one_line_error(runner.invoke(app, ["train", "--run-dir", str(run_dir), "--resume", "--g-conv-dim", "16"]))
    assert "generator.conv_dim (checkpoint 8, now 16)" in err


def test_sample_command_writes_the_grid(trained: tuple[Path, dict], tmp_path: Path) -> None:
    run_dir, _ = trained
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(run_dir), "--out", str(out), "--count", "3", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["rows"], info["columns"]) == (3, 6)
    with Image.open(out) as img:
        assert img.size == (6 * 32, 3 * 32)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--c-dim", "7"], "--c-dim 7 does not match the 5 label(s)"),
        (["--dataset", "mnist"], "dataset must be one of"),
        (["--image-size", "36"], "not divisible by 2**d_repeat_num"),
        (["--batch-size", "0"], "batch_size must be > 0"),
        (["--selected-attrs", "Black_Hair,Purple_Hair"], "Purple_Hair"),
        (["--resume", "--overwrite"], "exclude each other"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--augment", "translation,colour"], "unknown augmentation(s) 'colour'"),
        (["--lr-schedule", "cosine"], "lr_schedule must be one of paper, official, got 'cosine'"),
        (["--lr-update-step", "0"], "lr_update_step must be > 0"),
        (["--lambda-id", "-1"], "lambda_id must be >= 0"),
        (["--init-weights", "/nowhere/run"], "checkpoint not found: /nowhere/run"),
    ],
)
def test_bad_options_give_one_line_errors(toy: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(
        app, ["train", *TINY, "--data-dir", str(toy), "--run-dir", str(tmp_path / "r"), "--num-iters", "1", *args]
    )
    assert message in _one_line_error(result)


def test_missing_data_and_refused_run_dir_give_one_line_errors(
    trained: tuple[Path, dict], toy: Path, tmp_path: Path
) -> None:
    err = _one_line_error(
        runner.invoke(app, ["train", *TINY, "--data-dir", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "r")])
    )
    assert "nowhere" in err and not (tmp_path / "r").exists()  # data is checked before the run dir is touched
    err = _one_line_error(runner.invoke(app, ["train", *TINY, "--data-dir", str(toy), "--run-dir", str(trained[0])]))
    assert "--resume" in err and "--overwrite" in err
    assert "checkpoint not found" in _one_line_error(runner.invoke(app, ["sample", str(tmp_path / "none.ckpt")]))
    assert "count must be" in _one_line_error(runner.invoke(app, ["toyfaces", str(tmp_path / "t"), "--count", "0"]))


def test_debug_env_shows_the_real_exception(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--run-dir", str(tmp_path), "--dataset", "mnist"], env={"STARGAN_DEBUG": "1"})
    assert isinstance(result.exception, ValueError) and "dataset must be one of" in str(result.exception)


def test_help_lists_every_config_option_in_groups() -> None:
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in [*OPTION_FIELDS, "c_dim", "run_dir", "resume", "overwrite", "no_progress", "json", "data_dir"]:
        assert "--" + option.replace("_", "-") in result.output, option
    for group in ("Data", "Model", "Optimisation", "Schedule and outputs", "Run"):
        assert group in result.output
    assert runner.invoke(app, ["eval", "--help"]).exit_code == 0


def test_every_config_field_is_reachable_from_the_cli() -> None:
    reachable = {pair for pairs in OPTION_FIELDS.values() for pair in pairs}
    derived = {("generator", "c_dim"), ("discriminator", "c_dim")}
    for section, fields in RunConfig().to_dict().items():
        for name in fields:
            assert (section, name) in reachable | derived, f"{section}.{name}"
    cfg = build_config(RunConfig(), {"selected_attrs": ["Male", "Young"], "image_size": 64, "d_repeat_num": 4}, None)
    assert cfg.generator.c_dim == cfg.discriminator.c_dim == 2 and cfg.discriminator.image_size == 64
    joint = build_config(RunConfig(), {"dataset": "both"}, None)
    assert (joint.generator.c_dim, joint.discriminator.c_dim) == (15, 13)  # the official joint D: no mask logits
    assert joint.train.lr_schedule == "paper"
    official = build_config(RunConfig(), {"lr_schedule": "official", "lr_update_step": 500}, None)
    assert (official.train.lr_schedule, official.train.lr_update_step) == ("official", 500)
    assert build_config(RunConfig(), {"lambda_id": 5.0}, None).train.lambda_id == 5.0
    assert RunConfig().train.lambda_id == 0.0  # the official recipe by default


def test_console_entry_exits_2_with_one_line_on_bad_input(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stargan_train", "train", "--run-dir", str(tmp_path), "--n-critic", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: TrainConfig.n_critic must be > 0, got 0"
