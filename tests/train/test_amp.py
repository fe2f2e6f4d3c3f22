"""GPU training speed options (--amp bf16, --channels-last; cudnn.benchmark on CUDA): off by default so the
official recipe stays exact; on, they train the same model within float rounding (channels_last) or BF16's
precision (amp), with the gradient penalty always in FP32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_trainer import tiny_config
from typer.testing import CliRunner

from stargan_train.cli import app
from stargan_train.config import TrainConfig
from stargan_train.data.toyfaces import generate_toyfaces
from stargan_train.losses import gradient_penalty
from stargan_train.model import Discriminator
from stargan_train.trainer import Trainer


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_toyfaces(tmp_path_factory.mktemp("toy"), 16, seed=0, width=36, height=44, progress=False)


def _train(toy: Path, run_dir: Path, **options: object) -> tuple[Trainer, list[dict[str, float]]]:
    logs: list[dict[str, float]] = []
    trainer = Trainer(
        tiny_config(toy, num_iters=4, num_iters_decay=2, n_critic=1, log_step=1, **options),
        run_dir,
        progress=False,
        on_log=lambda i, entry: logs.append(entry),
    )
    trainer.fit()
    return trainer, logs


def test_the_options_are_off_by_default_and_checked() -> None:
    assert TrainConfig().amp == "off" and TrainConfig().channels_last is False
    with pytest.raises(ValueError, match="amp must be one of off, bf16"):
        TrainConfig(amp="fp16")


def test_channels_last_computes_the_same_losses_and_gradients_within_rounding(toy: Path, tmp_path: Path) -> None:
    """The same step in both memory formats: equal losses and gradients up to float rounding (whole runs drift
    apart by Adam's sign-like first steps on near-zero gradients, so one step is what can be compared)."""
    steps = []
    for channels_last in (False, True):
        trainer = Trainer(tiny_config(toy, channels_last=channels_last), tmp_path / str(channels_last), progress=False)
        batch = trainer.make_batch(*trainer.streams["celeba"].next(), "celeba")
        trainer.d_opt.step = lambda: None  # keep the weights: compare the gradients of one step
        logs = trainer.d_step(batch)
        steps.append((trainer, logs, {n: p.grad.clone() for n, p in trainer.D.named_parameters()}))
    (plain, plain_logs, plain_grads), (nhwc, nhwc_logs, nhwc_grads) = steps
    assert nhwc.G.main[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert nhwc_logs == pytest.approx(plain_logs, rel=1e-4, abs=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(nhwc_grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_bf16_autocast_trains_close_to_fp32_and_differs_from_it(toy: Path, tmp_path: Path) -> None:
    fp32, fp32_logs = _train(toy, tmp_path / "fp32")
    bf16, bf16_logs = _train(toy, tmp_path / "bf16", amp="bf16")
    first32, first16 = fp32_logs[0], bf16_logs[0]
    for key in ("D/loss_real", "D/loss_fake", "D/loss_cls", "G/loss_rec"):  # the same batch, weights and targets
        assert first16[key] == pytest.approx(first32[key], rel=0.05, abs=0.02), key
    assert first16 != first32  # it did run in BF16
    assert all(p.dtype == torch.float32 for p in bf16.G.parameters())  # master weights stay FP32
    assert all(torch.isfinite(torch.tensor(list(entry.values()))).all() for entry in bf16_logs)


def test_the_gradient_penalty_is_fp32_under_autocast() -> None:
    torch.manual_seed(0)
    D = Discriminator(32, 8, 5, 3)
    x_real, x_fake = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    plain = gradient_penalty(D, x_real, x_fake)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = gradient_penalty(D, x_real.bfloat16(), x_fake.bfloat16())
    assert autocast.dtype == torch.float32
    # the inputs were rounded to BF16 by the caller; the penalty itself was not computed in BF16
    torch.manual_seed(1)
    rounded = gradient_penalty(D, x_real.bfloat16().float(), x_fake.bfloat16().float())
    torch.testing.assert_close(autocast, rounded, rtol=1e-6, atol=1e-7)
    assert abs(autocast.item() - plain.item()) < 0.05 * abs(plain.item()) + 1e-4


def test_the_cli_takes_the_options_and_refuses_fp16(toy: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    common = [
        "train",
        "--run-dir",
        str(tmp_path / "run"),
        "--dataset",
        "toyfaces",
        "--data-dir",
        str(toy),
        "--image-size",
        "32",
        "--celeba-crop-size",
        "36",
        "--test-count",
        "4",
        "--num-workers",
        "0",
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
        "--num-iters",
        "2",
        "--num-iters-decay",
        "1",
        "--device",
        "cpu",
        "--no-progress",
    ]
    bad = runner.invoke(app, [*common, "--amp", "fp16"])
    assert bad.exit_code == 2 and "amp must be one of off, bf16" in bad.output
    good = runner.invoke(app, [*common, "--amp", "bf16", "--channels-last", "--json"])
    assert good.exit_code == 0, good.output
    config = __import__("json").loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert config["amp"] == "bf16" and config["channels_last"] is True


@pytest.mark.gpu
def test_cudnn_benchmark_is_on_for_cuda_runs(toy: Path, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    torch.backends.cudnn.benchmark = False
    Trainer(tiny_config(toy, device="cuda"), tmp_path, progress=False)
    assert torch.backends.cudnn.benchmark is True
