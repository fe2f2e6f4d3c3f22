"""Command-line attribute assignments (`--set Blond_Hair=1`), shared by every command that edits.

Usage: parse_assignments(["Blond_Hair=1", "Young=false"], "--set") -> {"Blond_Hair": 1, "Young": 0}
"""

from __future__ import annotations

from stargan_sdk.errors import StarGANError

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class UsageError(StarGANError):
    """Bad command-line syntax (reported like any other bad input)."""


def parse_assignments(items: list[str] | None, flag: str) -> dict[str, int]:
    """`["Blond_Hair=1", "Young=false"]` -> {"Blond_Hair": 1, "Young": 0}."""
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        value = value.strip().lower()
        if not sep or not name.strip() or value not in TRUE + FALSE:
            raise UsageError(f"{flag} expects NAME=0|1 (e.g. {flag} Blond_Hair=1), got {item!r}")
        out[name.strip()] = int(value in TRUE)
    return out
