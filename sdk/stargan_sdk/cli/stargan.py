"""`stargan` command line: inspect a bundle, edit images, save the paper's figure row.

Usage: stargan translate face.png --bundle models/toyfaces-64 --set Blond_Hair=1 -o blond.png

Commands only parse, call the library and print. Bad input ends with one `error: ...` line and exit
status 2; set STARGAN_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from stargan_sdk.backends.registry import availability_report, backend_names, select_backend
from stargan_sdk.cli.ui import UI_HELP, ui
from stargan_sdk.errors import BackendUnavailableError, StarGANError
from stargan_sdk.images.figure import MAX_TILE, figure_row
from stargan_sdk.photo.framing import Framing
from stargan_sdk.images.imaging import center_crop, save_image, upright
from stargan_sdk.bundle.manifest import read_manifest, verify_artifact
from stargan_sdk.translator import Translator

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

app = typer.Typer(name="stargan", help="Run exported StarGAN bundles: edit face attributes.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()

BundleOpt = Annotated[Path, typer.Option("--bundle", "-b", help="Bundle folder (manifest.json + model files).")]
BackendOpt = Annotated[str, typer.Option("--backend", help=" | ".join(("auto", *backend_names())) + ".")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
MaxPixelsOpt = Annotated[float, typer.Option(
    "--max-megapixels", min=0.01, help="Refuse images larger than this (read from the header, before decoding).")]
OriginalOpt = Annotated[Optional[list[str]], typer.Option(
    "--original", help="What the input shows, NAME=0|1 (repeat); default: the bundle's classifier estimates it.")]


class UsageError(StarGANError):
    """Bad command-line syntax (reported like any other bad input)."""


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into `error: ...` + exit 2 (tracebacks only with STARGAN_DEBUG=1)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (StarGANError, OSError, UnidentifiedImageError, ValueError) as e:
            if os.environ.get("STARGAN_DEBUG") == "1":
                raise
            typer.echo(f"error: {_one_line(e)}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return printable(text.splitlines()[0] if text else type(e).__name__)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """Text from a bundle or a file name with control characters (ANSI escapes) shown as \\xNN, never sent
    to the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def safe(text: object) -> str:
    """`printable`, and Rich markup shown literally: for values interpolated into console.print."""
    return escape(printable(text))


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


def _open_image(path: Path, max_megapixels: float) -> Image.Image:
    """Decode a file (sized from its header first, so a bomb is refused before decoding) and turn it
    upright as its EXIF orientation says, so every later rule sees what a viewer shows."""
    from stargan_sdk.photo.faces import open_photo  # OpenCV is imported only when a face is detected

    return upright(open_photo(path, max_pixels=int(max_megapixels * 1e6)))


def _edit(t: Translator, image: Image.Image, changes: dict[str, int], original: dict[str, int] | None,
          mode: str, framing: Framing) -> Image.Image:
    """--photo always finds faces; --crop centre-crops; `auto` edits an aligned face crop (a face filling
    the frame) whole and sends anything else to the face pipeline (see stargan_sdk.photo.framing)."""
    if mode == "crop":
        image = center_crop(image)
    if mode == "photo" or (mode == "auto" and not framing.edit_whole(image)):
        return t.translate_photo(image, changes, original=original)
    return t.translate(image, changes, original=original)


def _inputs(src: Path, out: Path) -> list[tuple[Path, Path]]:
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise UsageError(f"{src} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        if out.exists() and not out.is_dir():
            raise UsageError(f"{src} is a folder, so -o must be a folder too; {out} is a file")
        return [(p, out / p.name) for p in files]
    if not src.is_file():
        raise UsageError(f"input not found: {src}")
    return [(src, out / src.name if out.is_dir() else out)]


TRANSLATE_HELP = (
    "Edit face attributes of an image or a folder of images.\n\n"
    "An aligned face (the detected face fills the frame, as in CelebA) is edited whole, at its own size: "
    "non-square images have their centre square edited, as in training. Anything else goes through face "
    "detection: each face is edited and pasted back into the photo. Without OpenCV, square images are edited "
    "whole. --crop (centre-crop to a square, then edit whole) or --photo (always detect faces) force one way."
)


@app.command(help=TRANSLATE_HELP)
@friendly
def translate(
    src: Annotated[Path, typer.Argument(metavar="IN", help="An image file, or a folder of images.")],
    bundle: BundleOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (or folder when IN is a folder).")],
    set_: Annotated[list[str], typer.Option("--set", "-s", help="Attribute to set, NAME=0|1 (repeat).")],
    original: OriginalOpt = None,
    backend: BackendOpt = "auto",
    crop: Annotated[bool, typer.Option("--crop", help="Centre-crop every image to a square first.")] = False,
    photo: Annotated[bool, typer.Option("--photo", help="Always detect faces and edit them in place.")] = False,
    max_megapixels: MaxPixelsOpt = 64.0,
    as_json: JsonOpt = False,
) -> None:
    """Edit face attributes (see TRANSLATE_HELP for the rule that picks whole-image or face editing)."""
    if crop and photo:
        raise UsageError("--crop and --photo exclude each other")
    changes, orig = parse_assignments(set_, "--set"), parse_assignments(original, "--original") or None
    pairs = _inputs(src, out)
    with Translator.load(bundle, backend=backend) as t:
        t.space.validate_changes(changes)  # unknown names fail before any image is read
        mode = "crop" if crop else "photo" if photo else "auto"
        done, failed = _run_all(t, pairs, changes, orig, mode, max_megapixels, progress=len(pairs) > 1 and not as_json)
    if as_json:
        typer.echo(json.dumps({"written": done, "failed": failed}, indent=2))
    else:
        for path in done:
            console.print(f"wrote {safe(path)}")
    for path, message in failed.items():
        typer.echo(f"error: {printable(path)}: {message}", err=True)
    if failed:
        raise typer.Exit(2)


def _run_all(t: Translator, pairs: list[tuple[Path, Path]], changes: dict[str, int], orig: dict[str, int] | None,
             mode: str, max_megapixels: float, progress: bool) -> tuple[list[str], dict[str, str]]:
    """Edit each file; a bad file in a folder is reported and skipped, bad options stop everything."""
    done: list[str] = []
    failed: dict[str, str] = {}
    framing = Framing(note=lambda line: typer.echo(line, err=True))
    with Progress(console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("translating", total=len(pairs))
        for src, dst in pairs:
            try:
                save_image(_edit(t, _open_image(src, max_megapixels), changes, orig, mode, framing), dst)
                done.append(str(dst))
            except (StarGANError, OSError, ValueError) as e:
                if len(pairs) == 1 or isinstance(e, BackendUnavailableError):
                    raise
                failed[str(src)] = _one_line(e).removeprefix(f"{printable(src)}: ")  # the path is said once
            bar.advance(task)
    return done, failed


@app.command()
@friendly
def grid(
    src: Annotated[Path, typer.Argument(metavar="IN", help="A face image (non-square: its centre square, or use --crop).")],
    bundle: BundleOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("grid.png"),
    original: OriginalOpt = None,
    backend: BackendOpt = "auto",
    crop: Annotated[bool, typer.Option("--crop", help="Centre-crop the image to a square first.")] = False,
    tile: Annotated[int, typer.Option(help="Side of each tile in pixels (default: the model size).")] = 0,
    max_megapixels: MaxPixelsOpt = 64.0,
) -> None:
    """Save the input and one output per single-attribute edit as one captioned PNG (the paper's figure row)."""
    if not src.is_file():
        raise UsageError(f"input not found: {src}")
    if not 0 <= tile <= MAX_TILE:
        raise UsageError(f"--tile must be 1..{MAX_TILE} pixels (0: the model size), got {tile}")
    image = _open_image(src, max_megapixels)
    image = center_crop(image) if crop else image
    with Translator.load(bundle, backend=backend) as t:
        side = tile or t.image_size
        # Every edit comes back at the input's size; the figure shows them `side` px high, so a large photo
        # is first scaled down to what the figure shows (memory: c_dim + 1 images of that size, not of 64 MP).
        image.thumbnail((4 * max(side, t.image_size), max(side, t.image_size)), Image.Resampling.LANCZOS)
        row = t.translate_all(image, original=parse_assignments(original, "--original") or None)
        canvas = figure_row(image, row, tile=side)
    save_image(canvas, out)
    console.print(safe(f"wrote {out} ({len(row)} edits: {', '.join(row)})"))


def bundle_report(bundle: Path) -> dict[str, Any]:
    """Everything `stargan info` shows, as plain data."""
    m = read_manifest(bundle)
    artifacts = []
    for a in m.artifacts:
        try:
            verify_artifact(bundle, a)
            status = "ok"
        except StarGANError as e:
            status = str(e)
        artifacts.append({"file": a.file, "kind": a.kind, "role": a.role, "precision": a.precision,
                          "sha256": a.sha256, "status": status})
    backends = availability_report(bundle, m)
    try:
        auto: str | None = select_backend("auto", bundle, m)[0].name
    except StarGANError:
        auto = None
    return {
        "bundle": str(bundle), "image_size": m.image_size, "dataset": m.dataset, "attributes": list(m.attributes),
        "groups": [{"name": g.name, "kind": g.kind, "attributes": list(g.attributes)} for g in m.groups],
        "artifacts": artifacts, "auto": auto,
        "backends": {name: {"available": av.ok, "reason": av.reason} for name, av in backends.items()},
    }


@app.command()
@friendly
def info(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder.")], as_json: JsonOpt = False
) -> None:
    """Show a bundle's attributes, files (checksums verified) and which backends can run it here."""
    report = bundle_report(bundle)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(f"[bold]{safe(report['bundle'])}[/]: {safe(report['dataset'])}, {report['image_size']} px")
    for g in report["groups"]:
        console.print(f"  {safe(g['name'])} ({safe(g['kind'])}): {safe(', '.join(g['attributes']))}")
    files = Table("file", "kind", "role", "precision", "sha256")
    for a in report["artifacts"]:
        status = "ok" if a["status"] == "ok" else f"[red]{safe(a['status'])}"
        files.add_row(safe(a["file"]), safe(a["kind"]), safe(a["role"]), safe(a["precision"]), status)
    console.print(files)
    table = Table("backend", "available", "why")
    for name, b in report["backends"].items():
        chosen = " (auto)" if name == report["auto"] else ""
        table.add_row(name + chosen, "yes" if b["available"] else "no", safe(b["reason"]))
    console.print(table)


app.command(help=UI_HELP)(friendly(ui))
from stargan_sdk.cli.serve import serve  # noqa: E402  (its own module; registered here)

app.command(name="serve")(friendly(serve))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
