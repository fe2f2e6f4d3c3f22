"""`--precision`, shared by the `stargan` commands that run a bundle on this machine (translate, info, ui, serve).

Usage: def cmd(precision: PrecisionOpt = "auto"): Translator.load(bundle, backend=b, **precision_options(precision))
"""

from __future__ import annotations

from typing import Annotated

import typer

PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="auto | fp32 | bf16 | int8, for the CPU backends. auto: BF16 where the CPU has it, else the "
        "bundle's INT8 model when its recorded PSNR is >= 40 dB, else FP32; fp32 opts out.",
    ),
]


def precision_options(precision: str) -> dict[str, str]:
    """Backend options for `--precision`. Only an explicit choice is passed: each backend keeps its own default
    ("auto" is not a precision every backend knows)."""
    return {} if precision == "auto" else {"precision": precision}
