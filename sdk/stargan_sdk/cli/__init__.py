"""The `stargan` command line: one module per command group; commands parse, call the SDK and print.

Usage: stargan info models/toyfaces-64  (or python -m stargan_sdk.cli info models/toyfaces-64)
"""

from stargan_sdk.cli.stargan import app, main

__all__ = ["app", "main"]
