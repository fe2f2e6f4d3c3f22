"""README: its Python code runs as written (from the repo root), and its set-up commands are the Makefile's."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_python_blocks_run_as_written() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README shows the SDK in a python block"
    for code in blocks:
        if "RemoteTranslator.load(" in code:
            continue  # needs a running server: tests/sdk/test_serve.py runs it against one
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"README block failed:\n{code}\n{proc.stderr}"
        assert "Black_Hair" in proc.stdout


def test_quick_start_has_exactly_the_two_make_targets() -> None:
    quick = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_train_section_says_how_long_its_commands_take() -> None:
    """The durations quoted under the train commands are of those commands: the toy recipe's iteration count, the
    paper recipe's default one and the classifier steps of the first eval (re-measure when one changes)."""
    from stargan_train.cli_eval import eval_command
    from stargan_train.config import TrainConfig

    train = README.split("## Train", 1)[1].split("\n## ", 1)[0]
    commands = train.split("```bash", 1)[1].split("```", 1)[0]
    timing = " ".join(train.split("How long, on a CPU", 1)[1].split("\n\n", 1)[0].split())
    toy_iters = int(re.search(r"--dataset toyfaces .*?--num-iters (\d+)", commands, flags=re.S).group(1))
    assert f"its {toy_iters:,} iterations take about" in timing
    assert f"for its {TrainConfig().num_iters:,} iterations" in timing
    classifier_iters = inspect.signature(eval_command).parameters["classifier_iters"].default
    assert f"attribute classifier ({classifier_iters:,} steps:" in timing
    eval_images = int(re.search(r"stargan-train eval \S+ --num-images (\d+)", commands).group(1))
    assert f"({eval_images} in " in timing
    assert re.search(r"stargan-train toyfaces \S+ --count 10000", commands) and "--count 10000` takes" in timing
