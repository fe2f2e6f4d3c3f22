"""The paper's figure row as one image: [input | one output per single-attribute edit], each captioned.

Usage: row = figure_row(photo, t.translate_all(photo), tile=128); row.save("grid.png")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stargan_sdk.errors import ImageInputError

CAPTION_HEIGHT = 16
GAP = 2
MAX_TILE = 1024  # 20 edits of 1024 px are already a 20,000 px wide PNG


def _as_rgb(image: Any) -> Image.Image:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if pil.mode in ("RGBA", "LA", "PA"):
        white = Image.new("RGBA", pil.size, "white")
        return Image.alpha_composite(white, pil.convert("RGBA")).convert("RGB")
    return pil.convert("RGB")


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """Shorten a caption with an ellipsis until it fits the tile."""
    while text and draw.textlength(text, font=font) > width - 4:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def figure_row(image: Any, outputs: Mapping[str, Any], tile: int = 128, *, first_caption: str = "input") -> Image.Image:
    """A white canvas with the first image (captioned `first_caption`) then each output, `tile` px high (width by
    the first image's aspect ratio), captions above."""
    if isinstance(tile, bool) or not isinstance(tile, int) or not 1 <= tile <= MAX_TILE:
        raise ImageInputError(f"tile must be 1..{MAX_TILE} pixels, got {tile!r}")
    tiles = [(first_caption, _as_rgb(image)), *((k, _as_rgb(v)) for k, v in outputs.items())]
    width = max(1, min(4 * tile, round(tile * tiles[0][1].width / max(1, tiles[0][1].height))))
    canvas = Image.new("RGB", (len(tiles) * (width + GAP) - GAP, tile + CAPTION_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, (caption, picture) in enumerate(tiles):
        x = i * (width + GAP)
        canvas.paste(picture.resize((width, tile), Image.Resampling.BICUBIC), (x, CAPTION_HEIGHT))
        text = _fit(draw, caption, font, width)
        draw.text((x + (width - draw.textlength(text, font=font)) / 2, 2), text, fill="black", font=font)
    return canvas
