"""toyfaces: seeded procedural face images with the five CelebA attributes, written in the CelebA layout.

Usage: generate_toyfaces("data/toyfaces", count=2000, seed=0)  # images/, masks/, list_attr_celeba.txt

Hair colour (black / blond / brown), Male (beard + short hair; else long hair past the ears) and Young
(else grey streaks and face lines) are drawn independently of each other and of the nuisances (skin,
face shape, position, background, eyes, mouth, noise), so a model has to learn the attribute itself.
Beard and eyebrows never take the hair colour: a hair-colour edit should change only hair-mask pixels.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stargan_train.config import CELEBA_DEFAULT_ATTRS, RAFD_EXPRESSIONS
from stargan_train.data.toyfaces_draw import (
    BEARD,
    HAIR,
    SKIN,
    Frame,
    add_noise,
    draw_face,
    gradient,
    hair_texture,
    mix,
    shade,
    stubble,
)
from stargan_train.files import atomic_write_bytes

TOYFACES_VERSION = 1  # bump when the same seed would draw different pixels
TOY_ATTRS: tuple[str, ...] = CELEBA_DEFAULT_ATTRS
HAIR_COLOURS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair")
RGB = tuple[int, int, int]

# (brow_raise, brow_tilt, eye_open, mouth_curve, mouth_open, mouth_asym, nose_wrinkle) per expression.
EXPRESSION_SHAPES: dict[str, tuple[float, ...]] = {
    "angry": (-4.0, -1.2, 0.75, -0.5, 0.0, 0.0, 0.3),
    "contemptuous": (0.0, 0.0, 0.85, 0.0, 0.0, 1.2, 0.0),
    "disgusted": (-2.5, -0.6, 0.55, -0.7, 0.35, 0.0, 1.0),
    "fearful": (5.0, 1.0, 1.45, -0.4, 0.5, 0.0, 0.0),
    "happy": (1.5, 0.0, 0.7, 1.1, 0.45, 0.0, 0.0),
    "neutral": (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0),
    "sad": (1.0, 1.3, 0.8, -0.9, 0.0, 0.0, 0.0),
    "surprised": (8.0, 0.3, 1.6, 0.0, 1.0, 0.0, 0.0),
}
assert tuple(EXPRESSION_SHAPES) == RAFD_EXPRESSIONS

_EYE_COLOURS: tuple[RGB, ...] = (
    (92, 60, 38),
    (60, 40, 28),
    (70, 110, 150),
    (80, 120, 80),
    (120, 100, 60),
    (110, 120, 130),
)


@dataclass(frozen=True)
class FaceParams:
    """Everything that decides one face. Lengths are in px of a 178-px-wide frame; colours are RGB.

    `hair`, `male`, `young` give the labels; the drawing follows the shape fields (beard, hair_length,
    grey, wrinkles), which `sample_params` keeps consistent with the labels.
    """

    hair: str  # one of HAIR_COLOURS
    male: bool
    young: bool
    expression: str = "neutral"
    hair_rgb: RGB = (110, 70, 40)
    grey_rgb: RGB = (190, 190, 190)
    skin_rgb: RGB = (220, 180, 150)
    eye_rgb: RGB = (92, 60, 38)
    lip_rgb: RGB = (190, 110, 100)
    brow_rgb: RGB = (60, 45, 35)
    beard_rgb: RGB = (45, 35, 30)
    shirt_rgb: RGB = (60, 80, 120)
    bg_top: RGB = (200, 200, 210)
    bg_bottom: RGB = (150, 150, 170)
    bg_tilt: float = 0.0
    dx: float = 0.0  # position jitter
    dy: float = 0.0
    face_w: float = 43.0  # half width
    face_h: float = 57.0  # half height
    face_power: float = 2.3  # 2 = oval, 3 = square-ish
    chin: float = 0.2  # narrowing of the jaw
    eye_gap: float = 19.0  # centre-to-eye distance
    eye_size: float = 6.5  # eye half width
    eye_open: float = 1.0
    brow_raise: float = 0.0
    brow_tilt: float = 0.0  # > 0 lifts the inner ends (sad, fearful), < 0 lowers them (angry)
    brow_width: float = 3.5
    mouth_w: float = 17.0  # half width
    mouth_curve: float = 0.0  # > 0 smiles
    mouth_open: float = 0.0
    mouth_asym: float = 0.0  # lifts one corner (contempt)
    nose_wrinkle: float = 0.0
    hair_volume: float = 4.0  # how far hair stands out beside the face
    hair_top: float = 8.0  # how far hair rises above the skull
    fringe: float = 0.2  # forehead covered, as a fraction of the face height
    parting: float = 0.0  # tilt of the fringe line, -1..1
    hair_length: float = 0.0  # below the chin; 0 for short hair
    hair_phase: float = 0.0
    grey: float = 0.0  # fraction of grey strands
    wrinkles: float = 0.0  # 0 = none, else the darkening factor of the lines (~0.6)
    beard: float = 0.0  # 0 = none, else stubble density
    noise_sigma: float = 3.0
    noise_seed: int = 0
    labels: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hair not in HAIR_COLOURS:
            raise ValueError(f"hair must be one of {', '.join(HAIR_COLOURS)}, got {self.hair!r}")
        if self.expression not in EXPRESSION_SHAPES:
            raise ValueError(f"expression must be one of {', '.join(RAFD_EXPRESSIONS)}, got {self.expression!r}")
        values = {name: int(name == self.hair) for name in HAIR_COLOURS}
        values.update(Male=int(self.male), Young=int(self.young))
        object.__setattr__(self, "labels", {name: values[name] for name in TOY_ATTRS})


def render_face(params: FaceParams, width: int = 178, height: int = 218) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw one face: uint8 HxWx3 RGB and boolean HxW masks "hair", "face" (visible skin) and "beard"."""
    check_frame(width, height)
    p = params
    f = Frame.of(p, width, height)
    background = gradient(width, height, p.bg_top, p.bg_bottom, p.bg_tilt)
    rgb, labels = draw_face(p, f, background)
    # Separate streams for stubble and noise, so a beard changes no pixel outside itself.
    beard_rng, noise_rng = (np.random.default_rng([p.noise_seed, k]) for k in (1, 2))
    hair_texture(rgb, labels == HAIR, (f.cx, f.cy - f.b * 0.55), p.hair_phase, p.grey, p.grey_rgb)
    if p.beard > 0:
        beard = f.beard_region(labels == SKIN)
        labels[beard] = BEARD
        stubble(rgb, beard, p.beard_rgb, p.beard, beard_rng)
    rgb = add_noise(rgb, p.noise_sigma, noise_rng)
    return rgb, {"hair": labels == HAIR, "face": labels == SKIN, "beard": labels == BEARD}


def generate_toyfaces(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    *,
    width: int = 178,
    height: int = 218,
    expressions: bool = False,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Write `count` faces in the CelebA layout (+ hair masks, toyfaces.json; RaFD folders if `expressions`).

    Face i depends only on (seed, i), so a larger set starts with the faces of a smaller one, and `workers`
    processes write the same files as one (about 10 ms a face each). The attribute list is written last and
    atomically: a folder with `list_attr_celeba.txt` is always complete.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    check_frame(width, height)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    # A list from an earlier run would describe images this run is replacing: remove it first.
    (out / "list_attr_celeba.txt").unlink(missing_ok=True)
    plan = _rafd_plan(count) if expressions else []
    with _progress_bar(progress, count + len(plan)) as advance:
        rows, totals = _write_faces(out, count, seed, width, height, advance, workers)
        _write_expressions(out / "rafd", plan, seed, advance)
    info = {
        "generator": "toyfaces",
        "version": TOYFACES_VERSION,
        "seed": seed,
        "count": count,
        "width": width,
        "height": height,
        "attributes": list(TOY_ATTRS),
        "frequencies": {a: totals[a] / count for a in TOY_ATTRS},
        "masks": "masks/<image name>: hair mask, 8-bit L, 255 = hair",
        "rafd": {s: sum(1 for sp, _ in plan if sp == s) for s in ("train", "test")} if expressions else None,
    }
    atomic_write_bytes(out / "toyfaces.json", (json.dumps(info, indent=2) + "\n").encode(), sync=False)
    listing = f"{count}\n{' '.join(TOY_ATTRS)}\n" + "\n".join(rows) + "\n"
    atomic_write_bytes(out / "list_attr_celeba.txt", listing.encode())
    return out


def _write_faces(
    out: Path, count: int, seed: int, width: int, height: int, advance: Callable[[], None], workers: int = 1
) -> tuple[list[str], dict[str, int]]:
    """Write images/ and masks/; return the attribute-list rows and how often each attribute is present."""
    rows: list[str] = []
    totals = dict.fromkeys(TOY_ATTRS, 0)
    write = functools.partial(_write_face, out, seed, width, height)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(min(workers, count)))
            written = pool.map(write, range(count), chunksize=max(1, min(64, count // (4 * workers))))
        else:
            written = map(write, range(count))
        for row, labels in written:  # in face order, whatever process wrote it
            rows.append(row)
            for a in TOY_ATTRS:
                totals[a] += labels[a]
            advance()
    return rows, totals


def _write_face(out: Path, seed: int, width: int, height: int, i: int) -> tuple[str, dict[str, bool]]:
    """Face i's image and hair mask; its attribute-list row and labels."""
    params = sample_params(np.random.default_rng([seed, 0, i]))
    image, masks = render_face(params, width, height)
    name = f"{i + 1:06d}.png"
    _write_png(out / "images" / name, image)
    _write_png(out / "masks" / name, masks["hair"].astype(np.uint8) * 255)
    labels = {a: bool(params.labels[a]) for a in TOY_ATTRS}
    return name + " " + " ".join("1" if labels[a] else "-1" for a in TOY_ATTRS), labels


def _write_expressions(root: Path, plan: list[tuple[str, str]], seed: int, advance: Callable[[], None]) -> None:
    """RaFD ImageFolder layout root/{train,test}/<expression>/*.png on 256x256 frames."""
    if not plan:
        return
    # The folders are read whole (no list file), so images left from an earlier run must go.
    for old in root.glob("*/*/*.png"):
        old.unlink()
    for k, (split, expression) in enumerate(plan):
        params = sample_params(np.random.default_rng([seed, 1, k]), expression=expression)
        image, _ = render_face(params, 256, 256)
        _write_png(root / split / expression / f"{k + 1:06d}.png", image)
        advance()


def _rafd_plan(count: int) -> list[tuple[str, str]]:
    """(split, expression) per RaFD image: ceil(count/8) (at least 2) per expression, a tenth (at least 1) for test."""
    per = max(2, math.ceil(count / len(RAFD_EXPRESSIONS)))
    n_test = max(1, per // 10)
    return [("test" if j < n_test else "train", e) for e in RAFD_EXPRESSIONS for j in range(per)]


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("toyfaces"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as bar:
        task = bar.add_task("faces", total=total)
        yield lambda: bar.advance(task)


def _write_png(path: Path, pixels: np.ndarray) -> None:
    atomic_write_bytes(path, png_bytes(pixels), sync=False)


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode uint8 HxWx3 (RGB) or HxW (greyscale) pixels as a PNG file.

    Every row uses PNG's "Sub" filter and noisy RGB gets Huffman-only deflate: about 3x faster than
    Pillow's adaptive filtering on these images, at the same size.
    """
    h, w = pixels.shape[:2]
    ch = 1 if pixels.ndim == 2 else 3
    rows = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(h, w * ch)
    data = np.empty((h, w * ch + 1), np.uint8)
    data[:, 0] = 1  # filter type Sub: each byte minus the same channel one pixel to the left
    data[:, 1 : ch + 1] = rows[:, :ch]
    data[:, ch + 1 :] = rows[:, ch:] - rows[:, :-ch]  # uint8 wrap-around is the modulo-256 PNG asks for
    strategy = zlib.Z_HUFFMAN_ONLY if ch == 3 else zlib.Z_DEFAULT_STRATEGY  # masks are flat: LZ pays there
    z = zlib.compressobj(1, zlib.DEFLATED, 15, 8, strategy)
    header = struct.pack(">IIBBBBB", w, h, 8, 2 if ch == 3 else 0, 0, 0, 0)
    chunks = ((b"IHDR", header), (b"IDAT", z.compress(data.tobytes()) + z.flush()), (b"IEND", b""))
    body = b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def check_frame(width: int, height: int) -> None:
    """Raise ValueError for frames too small, too large or too elongated to hold a recognisable face."""
    if width < 32 or height < 32:
        raise ValueError(f"toyfaces frames must be at least 32x32 px, got {width}x{height}")
    if max(width, height) > 4096:
        raise ValueError(f"toyfaces frames must be at most 4096 px on a side, got {width}x{height}")
    if max(width, height) > 2 * min(width, height):
        raise ValueError(f"toyfaces frames must not be more than 2:1 elongated, got {width}x{height}")


def sample_params(
    rng: np.random.Generator, attrs: dict[str, int] | None = None, *, expression: str = "neutral"
) -> FaceParams:
    """Draw a random face. `attrs` forces attributes ({"Blond_Hair": 1, "Male": 0}; 1 = present, 0/-1 = absent).

    Every call consumes the same number of uniform draws whatever is forced, so one seed with different
    forced attributes gives the same person (skin, pose, background...) with only those attributes changed.
    """
    if expression not in EXPRESSION_SHAPES:
        raise ValueError(f"expression must be one of {', '.join(RAFD_EXPRESSIONS)}, got {expression!r}")
    hair, male, young = _choose_attributes(rng, attrs or {})
    u = rng.uniform
    skin = _jitter(rng, mix((246, 214, 190), (110, 72, 50), u(0, 1)), 6)
    bg = _jitter(rng, (127, 127, 127), 100)
    j = u(-1.0, 1.0, 7)
    if expression == "neutral":  # CelebA-like: a little mouth and brow variation as a nuisance
        shape = (1.5 * j[0], 0.3 * j[1], 0.975 + 0.175 * j[2], 0.25 + 0.45 * j[3], 0.075 + 0.075 * j[4], 0.0, 0.0)
    else:
        shape = tuple(float(v + 0.1 * d * (abs(v) + 1)) for v, d in zip(EXPRESSION_SHAPES[expression], j))
    brow_raise, brow_tilt, eye_open, mouth_curve, mouth_open, mouth_asym, nose_wrinkle = shape
    return FaceParams(
        hair=hair,
        male=male,
        young=young,
        expression=expression,
        hair_rgb=_hair_rgb(rng, hair),
        grey_rgb=_jitter(rng, (int(u(165, 215)),) * 3, 5),
        skin_rgb=skin,
        eye_rgb=_EYE_COLOURS[int(u(0, len(_EYE_COLOURS)))],
        lip_rgb=mix(skin, (175, 60, 65), u(0.35, 0.65)),
        brow_rgb=_jitter(rng, (62, 46, 36), 12),
        beard_rgb=_jitter(rng, (42, 34, 30), 8),
        shirt_rgb=_jitter(rng, (128, 128, 128), 108),
        bg_top=bg,
        bg_bottom=_jitter(rng, shade(bg, u(0.6, 1.25)), 20),
        bg_tilt=u(-0.6, 0.6),
        dx=u(-5, 5),
        dy=u(-5, 5),
        face_w=u(38, 47),
        face_h=u(52, 61),
        face_power=u(2.0, 3.0),
        chin=u(0.1, 0.35),
        eye_gap=u(16.5, 20.5),
        eye_size=u(5.5, 7.5),
        eye_open=eye_open,
        brow_raise=brow_raise,
        brow_tilt=brow_tilt,
        brow_width=u(2.5, 4.5),
        mouth_w=u(12, 18),
        mouth_curve=mouth_curve,
        mouth_open=mouth_open,
        mouth_asym=mouth_asym,
        nose_wrinkle=nose_wrinkle,
        hair_volume=u(2, 6) if male else u(9, 18),
        hair_top=u(5, 11) if male else u(10, 20),
        fringe=u(0.1, 0.22) if male else u(0.22, 0.4),
        parting=u(-1, 1),
        hair_length=u(10, 45) * (not male),
        hair_phase=u(0, 2 * np.pi),
        grey=u(0.3, 0.5) * (not young),
        wrinkles=u(0.52, 0.66) * (not young),
        beard=u(0.45, 0.85) * male,
        noise_sigma=u(1.5, 4.5),
        noise_seed=int(u(0, 2**31)),
    )


def _choose_attributes(rng: np.random.Generator, attrs: dict[str, int]) -> tuple[str, bool, bool]:
    unknown = sorted(set(attrs) - set(TOY_ATTRS))
    if unknown:
        raise ValueError(f"unknown toyfaces attribute(s) {', '.join(unknown)}; known: {', '.join(TOY_ATTRS)}")
    bad = {k: v for k, v in attrs.items() if isinstance(v, bool) or v not in (1, 0, -1)}
    if bad:
        raise ValueError(f"attribute values must be 1 (present) or 0/-1 (absent), got {bad}")
    on = [h for h in HAIR_COLOURS if attrs.get(h) == 1]
    allowed = on or [h for h in HAIR_COLOURS if attrs.get(h, 1) == 1]
    if len(on) > 1 or not allowed:
        raise ValueError(f"exactly one hair colour must be present; attrs ask for {attrs}")
    pick, coin_male, coin_young = rng.uniform(0, 1, 3)  # drawn even when forced: keeps the stream aligned
    hair = allowed[min(int(pick * len(allowed)), len(allowed) - 1)]
    male = attrs["Male"] == 1 if "Male" in attrs else bool(coin_male < 0.5)
    young = attrs["Young"] == 1 if "Young" in attrs else bool(coin_young < 0.5)
    return hair, male, young


def _hair_rgb(rng: np.random.Generator, hair: str) -> RGB:
    """Per-image hue/brightness variation inside bands that keep black < brown < blond in brightness."""
    t, k = rng.uniform(0, 1), rng.uniform
    if hair == "Black_Hair":
        return _jitter(rng, shade((28, 24, 22), k(0.75, 1.35)), 4)
    if hair == "Brown_Hair":
        return _jitter(rng, shade(mix((96, 58, 32), (132, 86, 50), t), k(0.88, 1.1)), 6)
    return _jitter(rng, shade(mix((232, 200, 130), (206, 166, 96), t), k(0.92, 1.05)), 6)


def _jitter(rng: np.random.Generator, c: RGB, amount: int) -> RGB:
    # uniform, not integers(): bounded integers may reject and consume a varying number of draws.
    d = rng.uniform(-amount, amount, 3)
    return tuple(int(np.clip(round(v + e), 0, 255)) for v, e in zip(c, d))  # type: ignore[return-value]
