"""Accuracy-aware INT8: keep the convolutions that cost the most PSNR per MAC in float until a target is met.

Usage: result = keep_float_until(quantizer, target_db=40.0, base={"first", "last"}, rank=rank_psnr, check=check_psnr)

Greedy and measured, not modelled: one pass quantizes the model with each candidate convolution kept float on
its own and measures the PSNR it buys on search images (calibration images, so the held-out PSNR that decides
and gets recorded is never used to rank); then convolutions are kept float in order of dB gained per MAC,
the held-out PSNR re-measured after each, until it reaches the target. The search may keep float at most
`MAX_FLOAT_FRACTION` of the MACs that the base variant quantizes: past that an INT8 model is no longer the fast
path it exists to be, so a target still missed there is reported as missed rather than met by a model that is
INT8 in name only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from pathlib import Path

from stargan_export.int8_graph import ConvQuantizer

MAX_FLOAT_FRACTION = 0.5
MAX_KEPT = 32  # parity records one key per float convolution; the manifest allows 64 keys per artifact


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The chosen variant: convolutions kept float, held-out PSNR, whether it met the target, variants tried."""

    keep_float: frozenset[str]
    psnr_db: float
    met: bool
    variants: int


def keep_float_until(
    quantizer: ConvQuantizer,
    out: Path,
    *,
    target_db: float,
    base: Collection[str],
    rank: Callable[[Path], float],
    check: Callable[[Path], float],
    note: Callable[[str], None] = lambda _: None,
) -> SearchResult:
    """Write to `out` the variant that meets `target_db` with the fewest MACs kept float beyond `base` (or, when no
    allowed variant meets it, the most accurate one tried). `rank` and `check` measure a written model's PSNR vs
    FP32 on the search and on the held-out images."""
    kept = set(base)
    quantizer.write(out, kept)
    psnr, variants = check(out), 1
    if psnr >= target_db:
        return SearchResult(frozenset(kept), psnr, True, variants)
    base_rank = rank(out)
    gain_per_mac = {}
    for name in (n for n in quantizer.convs if n not in kept):
        quantizer.write(out, kept | {name})
        variants += 1
        gain = rank(out) - base_rank
        if gain > 0:
            gain_per_mac[name] = gain / max(quantizer.macs.get(name, 1), 1)
    note(f"INT8 at {psnr:.1f} dB < {target_db:g} dB: keeping float the convolutions that gain most per MAC")
    best = (psnr, frozenset(kept))
    budget = quantizer.float_fraction(base) + MAX_FLOAT_FRACTION * (1.0 - quantizer.float_fraction(base))
    for name in sorted(gain_per_mac, key=gain_per_mac.__getitem__, reverse=True):
        trial = kept | {name}
        if quantizer.float_fraction(trial) > budget or len(trial) > MAX_KEPT:
            continue
        kept = trial
        quantizer.write(out, kept)
        psnr, variants = check(out), variants + 1
        if psnr > best[0]:
            best = (psnr, frozenset(kept))
        if psnr >= target_db:
            return SearchResult(frozenset(kept), psnr, True, variants)
    if best[1] != kept:  # the last variant written is not the most accurate: write that one again
        quantizer.write(out, best[1])
    return SearchResult(best[1], best[0], False, variants)
