"""Drawing primitives for toyfaces: a painter that fills an RGB image and a region-label map together.

Usage: p = Painter(background); p.ellipse(box, (200, 160, 140), SKIN); rgb, labels = p.arrays()

Every shape is drawn twice, once in colour and once as a region code, so the masks returned with a
face (hair, face skin, beard) are exactly the pixels that ended up visible, occlusions included.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:  # only for annotations: toyfaces imports this module
    from stargan_train.data.toyfaces import FaceParams

# Region codes of the label map. 0 is the background.
BACKGROUND, CLOTHES, SKIN, HAIR, BEARD, FEATURE, NECK = 0, 1, 2, 3, 4, 5, 6

RGB = tuple[int, int, int]
Point = tuple[float, float]


class Painter:
    """Draws each shape into an RGB canvas and, with its region code, into a parallel label map.

    Args:
        background: uint8 HxWx3 array that becomes the canvas (copied).
    """

    def __init__(self, background: np.ndarray) -> None:
        self.rgb = Image.fromarray(np.ascontiguousarray(background, dtype=np.uint8), "RGB")
        self.labels = Image.new("L", self.rgb.size, BACKGROUND)
        self._draw = ImageDraw.Draw(self.rgb)
        self._label_draw = ImageDraw.Draw(self.labels)

    def ellipse(self, box: tuple[float, float, float, float], colour: RGB, label: int | None) -> None:
        self._paint("ellipse", _valid_box(box), colour, label)

    def polygon(self, points: list[Point], colour: RGB, label: int | None) -> None:
        self._paint("polygon", points, colour, label)

    def rounded_rectangle(
        self, box: tuple[float, float, float, float], radius: float, colour: RGB, label: int | None
    ) -> None:
        box = _valid_box(box)
        radius = max(0.0, min(radius, (box[2] - box[0]) / 2, (box[3] - box[1]) / 2))
        self._paint("rounded_rectangle", box, colour, label, radius=radius)

    def line(self, points: list[Point], colour: RGB, width: float, label: int | None) -> None:
        # joint="curve" keeps thick polylines (brows, lips) free of notches at the joints.
        self._paint("line", points, colour, label, width=max(1, int(round(width))), joint="curve")

    def _paint(self, shape: str, geometry: object, colour: RGB, label: int | None, **options: object) -> None:
        getattr(self._draw, shape)(geometry, fill=colour, **options)
        if label is not None:  # None: paint over the colour only (lines and creases on skin stay skin)
            getattr(self._label_draw, shape)(geometry, fill=label, **options)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 HxWx3 RGB, uint8 HxW region labels), writable copies."""
        return np.array(self.rgb), np.array(self.labels)


def _valid_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    # Pillow rejects boxes whose corners are swapped; tiny frames can round a feature to zero size.
    x0, y0, x1, y1 = box
    return (min(x0, x1), min(y0, y1), max(x0, x1, min(x0, x1) + 1), max(y0, y1, min(y0, y1) + 1))


@lru_cache(maxsize=8)
def pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (xs [1,W], ys [H,1]) as float32, cached per frame size."""
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    return xs, ys


def gradient(width: int, height: int, top: RGB, bottom: RGB, tilt: float) -> np.ndarray:
    """A linear colour gradient from `top` to `bottom`, its direction tilted sideways by `tilt` (-1..1)."""
    xs, ys = pixel_grid(width, height)
    t = ys / max(height - 1, 1) + tilt * (xs / max(width - 1, 1) - 0.5)
    # 256 colour steps through a lookup table: a fraction of the cost of blending every pixel in float.
    index = (np.clip(t, 0.0, 1.0) * 255).astype(np.uint8)
    steps = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
    lut = np.asarray(top, np.float32) * (1.0 - steps) + np.asarray(bottom, np.float32) * steps
    return lut.astype(np.uint8)[index]


def superellipse(cx: float, cy: float, a: float, b: float, power: float, chin: float, n: int = 48) -> list[Point]:
    """Outline of a face: a superellipse (power 2 = oval, larger = squarer) whose lower half narrows by `chin`."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = np.sign(c) * np.abs(c) ** (2.0 / power) * a
    y = np.sign(s) * np.abs(s) ** (2.0 / power) * b
    # Taper only below the middle (y > 0 is down in image coordinates), most at the chin.
    x = x * (1.0 - chin * np.clip(s, 0.0, 1.0) ** 2)
    return list(zip((cx + x).tolist(), (cy + y).tolist()))


def quad_curve(p0: Point, p1: Point, p2: Point, n: int = 9) -> list[Point]:
    """Points on the quadratic Bezier curve p0 -> p2 bent towards the control point p1."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)
    return [(float(x), float(y)) for x, y in pts]


def shade(colour: RGB, factor: float) -> RGB:
    """`colour` darkened (factor < 1) or lightened (> 1), clipped to 0..255."""
    return tuple(int(min(255, max(0, round(c * factor)))) for c in colour)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear blend: t = 0 gives `a`, t = 1 gives `b`."""
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def hair_texture(rgb: np.ndarray, hair: np.ndarray, crown: Point, phase: float, grey: float, grey_rgb: RGB) -> None:
    """Give hair pixels strands radiating from the crown, and turn a `grey` fraction of strands grey (in place)."""
    ys, xs = np.nonzero(hair)
    if ys.size == 0:
        return
    angle = np.arctan2(ys - crown[1], xs - crown[0])
    strands = np.sin(angle * 41.0 + phase) + 0.5 * np.sin(angle * 97.0 + 2.0 * phase)
    pix = rgb[ys, xs].astype(np.float32) * (1.0 + 0.07 * strands)[:, None]
    if grey > 0:
        # Streaks are whole strands (thresholded slow wave), so they read as grey locks, not speckle.
        wave = np.sin(angle * 23.0 + 3.0 * phase)
        streak = wave > np.cos(np.pi * grey)
        pix[streak] = 0.15 * pix[streak] + 0.85 * np.asarray(grey_rgb, np.float32)
    rgb[ys, xs] = np.clip(pix, 0, 255).astype(np.uint8)


def stubble(rgb: np.ndarray, region: np.ndarray, colour: RGB, density: float, rng: np.random.Generator) -> None:
    """Cover `region` with dark stubble/beard: each pixel blends towards `colour` by a noisy `density` (in place)."""
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return
    d = np.clip(density * (0.75 + 0.5 * rng.random(ys.size, dtype=np.float32)), 0.0, 1.0)[:, None]
    pix = rgb[ys, xs].astype(np.float32)
    rgb[ys, xs] = (pix * (1.0 - d) + np.asarray(colour, np.float32) * d).astype(np.uint8)


_NOISE_PAD = 64


@lru_cache(maxsize=4)
def _noise_tile(width: int, height: int) -> np.ndarray:
    """A fixed field of unit Gaussian noise x64 (int16), larger than the frame so windows of it differ."""
    rng = np.random.default_rng(0x70F)
    shape = (height + _NOISE_PAD, width + _NOISE_PAD, 3)
    return np.round(rng.standard_normal(shape, dtype=np.float32) * 64).astype(np.int16)


def add_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Mild Gaussian sensor noise, returned as a new uint8 array.

    A random window of a cached noise field, scaled in integers: drawing fresh normals for every pixel
    cost more than the whole rest of a face.
    """
    h, w = rgb.shape[:2]
    oy, ox = (int(v) for v in rng.integers(0, _NOISE_PAD + 1, 2))
    window = _noise_tile(w, h)[oy : oy + h, ox : ox + w]
    scale = int(round(sigma * 4))  # window * scale / 256 = N(0, 1) * sigma
    out = rgb.astype(np.int16) + ((window * scale) >> 8)
    return np.clip(out, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Frame:
    """Where one face's parts go in pixels: the face centre, its half axes and the feature rows."""

    u: float  # px per unit (a unit is one px of a 178-px-wide frame)
    cx: float
    cy: float
    a: float
    b: float
    eye_y: float
    nose_y: float
    mouth_y: float

    @classmethod
    def of(cls, p: FaceParams, width: int, height: int) -> Frame:
        u = min(width, height) / 178.0
        cx, cy = width / 2 + p.dx * u, height / 2 + (8.0 + p.dy) * u
        b = p.face_h * u
        return cls(u, cx, cy, p.face_w * u, b, cy - 0.1 * b, cy + 0.27 * b, cy + 0.53 * b)

    @property
    def chin_y(self) -> float:
        return self.cy + self.b

    def beard_region(self, skin: np.ndarray) -> np.ndarray:
        """Skin pixels of the jaw (rising to sideburns at the sides) and of the upper lip."""
        xs, ys = pixel_grid(skin.shape[1], skin.shape[0])
        side = np.minimum(np.abs(xs - self.cx) / self.a, 1.0) ** 2
        jaw_top = self.mouth_y - 6 * self.u
        jaw = ys > jaw_top - side * (jaw_top - self.eye_y - 0.12 * self.b)
        lip = ys > self.nose_y + 2.5 * self.u + 16 * self.u * ((xs - self.cx) / self.a) ** 2
        return skin & (jaw | lip)


def draw_face(p: FaceParams, f: Frame, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint body, hair, face and features back to front; returns (RGB, region labels)."""
    pt = Painter(background)
    u, a, b = f.u, f.a, f.b
    pt.ellipse((f.cx - 2.1 * a, f.chin_y + 18 * u, f.cx + 2.1 * a, f.chin_y + 18 * u + 3 * b), p.shirt_rgb, CLOTHES)
    _back_hair(pt, p, f)
    pt.rounded_rectangle(
        (f.cx - 0.5 * a, f.cy, f.cx + 0.5 * a, f.chin_y + 26 * u), 6 * u, shade(p.skin_rgb, 0.82), NECK
    )
    for s in (-1, 1):
        ex = f.cx + s * 0.97 * a
        pt.ellipse((ex - 6 * u, f.eye_y - 4 * u, ex + 6 * u, f.eye_y + 20 * u), shade(p.skin_rgb, 0.92), SKIN)
    pt.polygon(superellipse(f.cx, f.cy, a, b, p.face_power, p.chin), p.skin_rgb, SKIN)
    _eyes_and_brows(pt, p, f)
    _nose(pt, p, f)
    _mouth(pt, p, f)
    if p.wrinkles > 0:
        _wrinkles(pt, p, f)
    _front_hair(pt, p, f)
    return pt.arrays()


def _back_hair(pt: Painter, p: FaceParams, f: Frame) -> None:
    v, top = p.hair_volume * f.u, p.hair_top * f.u
    if p.hair_length <= 0:  # short hair: a cap whose lower part the face covers
        pt.ellipse((f.cx - f.a - v, f.cy - f.b - top, f.cx + f.a + v, f.cy + 0.05 * f.b), p.hair_rgb, HAIR)
        return
    pt.ellipse((f.cx - f.a - v, f.cy - f.b - top, f.cx + f.a + v, f.cy + 0.3 * f.b), p.hair_rgb, HAIR)
    box = (f.cx - f.a - v, f.cy - 0.4 * f.b, f.cx + f.a + v, f.chin_y + p.hair_length * f.u)
    pt.rounded_rectangle(box, v + 8 * f.u, p.hair_rgb, HAIR)


def _front_hair(pt: Painter, p: FaceParams, f: Frame) -> None:
    """The fringe over the forehead (a scalloped half-ellipse) and, for long hair, locks over the ears."""
    u, v = f.u, p.hair_volume * f.u
    fringe_y = f.cy - f.b + p.fringe * f.b
    ry = fringe_y - (f.cy - f.b - p.hair_top * u)
    t = np.linspace(np.pi, 2 * np.pi, 21)
    arc = list(zip((f.cx + (f.a + v) * np.cos(t)).tolist(), (fringe_y + ry * np.sin(t)).tolist()))
    xs = np.linspace(f.cx + f.a + v, f.cx - f.a - v, 17)
    ys = fringe_y + p.parting * (xs - f.cx) / f.a * 0.1 * f.b + np.where(np.arange(17) % 2, 4 * u, 0)
    pt.polygon(arc + list(zip(xs.tolist(), ys.tolist())), p.hair_rgb, HAIR)
    if p.hair_length <= 0:
        return
    for s in (-1, 1):
        lock = [
            (f.cx + s * (f.a + v), fringe_y - 2 * u),
            (f.cx + s * 0.76 * f.a, fringe_y - 2 * u),
            (f.cx + s * 0.84 * f.a, f.cy + 0.25 * f.b),
            (f.cx + s * 0.88 * f.a, f.chin_y + 0.6 * p.hair_length * u),
            (f.cx + s * (f.a + 0.6 * v), f.chin_y + p.hair_length * u),
        ]
        pt.polygon(lock, p.hair_rgb, HAIR)


def _eyes_and_brows(pt: Painter, p: FaceParams, f: Frame) -> None:
    u, es = f.u, p.eye_size * f.u
    eh = es * 0.6 * p.eye_open
    brow_y = f.eye_y - (p.eye_size + 7 + p.brow_raise) * u
    lid = shade(p.skin_rgb, 0.45)
    for s in (-1, 1):
        ex = f.cx + s * p.eye_gap * u
        pt.ellipse((ex - es, f.eye_y - eh, ex + es, f.eye_y + eh), (240, 238, 232), FEATURE)
        r = min(0.5 * es, 1.05 * eh)
        pt.ellipse((ex - r, f.eye_y - r, ex + r, f.eye_y + r), p.eye_rgb, FEATURE)
        pt.ellipse((ex - 0.45 * r, f.eye_y - 0.45 * r, ex + 0.45 * r, f.eye_y + 0.45 * r), (15, 12, 12), FEATURE)
        pt.line(quad_curve((ex - es, f.eye_y), (ex, f.eye_y - 2 * eh), (ex + es, f.eye_y)), lid, 1.6 * u, FEATURE)
        inner = (f.cx + s * (p.eye_gap - 0.9 * p.eye_size) * u, brow_y - p.brow_tilt * 4 * u)
        outer = (f.cx + s * (p.eye_gap + 1.3 * p.eye_size) * u, brow_y + 1.5 * u)
        mid = (f.cx + s * p.eye_gap * u, brow_y - (2.5 + p.brow_tilt) * u)
        pt.line(quad_curve(inner, mid, outer), p.brow_rgb, p.brow_width * u, FEATURE)


def _nose(pt: Painter, p: FaceParams, f: Frame) -> None:
    u, dark = f.u, shade(p.skin_rgb, 0.78)
    pt.line(
        quad_curve((f.cx - 1 * u, f.eye_y + 5 * u), (f.cx + 4 * u, f.nose_y - 6 * u), (f.cx, f.nose_y)),
        dark,
        1.5 * u,
        None,
    )
    for s in (-1, 1):
        nx = f.cx + s * 4 * u
        pt.ellipse(
            (nx - 2.2 * u, f.nose_y - 1.2 * u, nx + 2.2 * u, f.nose_y + 1.2 * u), shade(p.skin_rgb, 0.5), FEATURE
        )
    for k in range(int(round(3 * p.nose_wrinkle))):  # disgust: creases across the bridge
        y = f.eye_y + (3 + 3 * k) * u
        pt.line([(f.cx - 4 * u, y), (f.cx + 4 * u, y - u)], dark, 1.2 * u, None)


def _mouth(pt: Painter, p: FaceParams, f: Frame) -> None:
    """Lips along y(t) = smile curve plus a lifted corner; open mouths get a dark inside between the lips."""
    u, d = f.u, 6 * f.u
    t = np.linspace(-1.0, 1.0, 13)
    xs = f.cx + t * p.mouth_w * u
    ys = f.mouth_y + p.mouth_curve * d * (0.5 - t**2) - p.mouth_asym * d * np.clip(t, 0, None) ** 2
    opening = p.mouth_open * 10 * u * (1 - t**2)
    if p.mouth_open < 0.05:
        pt.line(list(zip(xs.tolist(), ys.tolist())), p.lip_rgb, 3.2 * u, FEATURE)
        return
    upper = list(zip(xs.tolist(), (ys - 0.3 * opening).tolist()))
    lower = list(zip(xs.tolist(), (ys + opening).tolist()))
    pt.polygon(upper + lower[::-1], (70, 25, 30), FEATURE)
    pt.line(upper, p.lip_rgb, 2.6 * u, FEATURE)
    pt.line(lower, p.lip_rgb, 3.0 * u, FEATURE)


def _wrinkles(pt: Painter, p: FaceParams, f: Frame) -> None:
    """Old faces: forehead lines, crow's feet, bags under the eyes and nose-to-mouth folds."""
    u, col, w = f.u, shade(p.skin_rgb, p.wrinkles), 1.8 * f.u
    brow_y = f.eye_y - (p.eye_size + 7 + p.brow_raise) * u
    for k in (1, 2):
        y = brow_y - 7 * k * u
        pt.line(quad_curve((f.cx - 0.45 * f.a, y), (f.cx, y - 4 * u), (f.cx + 0.45 * f.a, y)), col, w, None)
    es, eh = p.eye_size * u, p.eye_size * 0.6 * p.eye_open * u
    for s in (-1, 1):
        ex = f.cx + s * p.eye_gap * u
        for k in (-1, 0, 1):
            x0 = ex + s * (es + 2 * u)
            pt.line([(x0, f.eye_y + 2 * k * u), (x0 + s * 5 * u, f.eye_y + 4.5 * k * u)], col, w, None)
        y = f.eye_y + eh + 3 * u
        pt.line(quad_curve((ex - es, y), (ex, y + 3 * u), (ex + es, y)), col, w, None)
        fold = quad_curve(
            (f.cx + s * 0.3 * f.a, f.nose_y - 3 * u),
            (f.cx + s * 0.46 * f.a, f.mouth_y - 5 * u),
            (f.cx + s * (p.mouth_w + 4) * u, f.mouth_y + 5 * u),
        )
        pt.line(fold, col, w, None)
