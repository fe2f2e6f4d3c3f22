"""The paper's figure row as one image: [input | one output per single-attribute edit], each captioned.

Usage: row = figure_row(photo, t.translate_all(photo), tile=128); row.save("grid.png")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CAPTION_HEIGHT = 16
GAP = 2


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


def figure_row(
    image: Any, outputs: Mapping[str, Any], tile: int = 128, *, first_caption: str = "input"
) -> Image.Image:
    """A white canvas with the first image (captioned `first_caption`) then each output, resized to `tile` px,
    captions above."""
    tiles = [(first_caption, image), *outputs.items()]
    canvas = Image.new("RGB", (len(tiles) * (tile + GAP) - GAP, tile + CAPTION_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, (caption, picture) in enumerate(tiles):
        x = i * (tile + GAP)
        canvas.paste(_as_rgb(picture).resize((tile, tile), Image.Resampling.BICUBIC), (x, CAPTION_HEIGHT))
        text = _fit(draw, caption, font, tile)
        draw.text((x + (tile - draw.textlength(text, font=font)) / 2, 2), text, fill="black", font=font)
    return canvas
