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
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, TextColumn
from rich.table import Table

from stargan_sdk.backends.registry import auto_choice, availability_report, backend_names, select_backend
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.cli.assignments import UsageError, parse_assignments
from stargan_sdk.cli.options import PrecisionOpt, precision_options
from stargan_sdk.cli.ui import UI_HELP, ui
from stargan_sdk.errors import BackendUnavailableError, NoFaceFoundError, StarGANError
from stargan_sdk.host.files import overwritten_input, remove_leftover_temps
from stargan_sdk.images.figure import MAX_TILE, figure_row
from stargan_sdk.images.imaging import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, PNG_LEVEL, center_crop, save_image, upright
from stargan_sdk.photo.framing import Framing, shape_name
from stargan_sdk.pipeline.files import StageTimes
from stargan_sdk.pipeline.jobs import run_files
from stargan_sdk.translator import Translator

app = typer.Typer(
    name="stargan",
    help="Run exported StarGAN bundles: edit face attributes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

BundleOpt = Annotated[Path, typer.Option("--bundle", "-b", help="Bundle folder (manifest.json + model files).")]
BackendOpt = Annotated[str, typer.Option("--backend", help=" | ".join(("auto", *backend_names())) + ".")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
MaxPixelsOpt = Annotated[
    float,
    typer.Option(
        "--max-megapixels", min=0.01, help="Refuse images larger than this (read from the header, before decoding)."
    ),
]
MEGAPIXELS = MAX_IMAGE_PIXELS / 1e6  # the SDK's own cap, so translate() and the CLI refuse the same images
NO_FACE = "no face found; --crop edits the centre square as an aligned face, or use a photo with a clear frontal face"
OriginalOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--original", help="What the input shows, NAME=0|1 (repeat); default: the bundle's classifier estimates it."
    ),
]


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


def _one_line(e: BaseException, *paths: Path) -> str:
    """The first line of an error, control characters shown; `paths` (with newlines in their names, say) are
    made printable first, so a file name never cuts the reason short."""
    text = str(e).strip()
    for path in paths:
        text = text.replace(str(path), printable(path))
    return printable(text.splitlines()[0] if text else type(e).__name__)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """Text from a bundle or a file name with control characters (ANSI escapes) shown as \\xNN, never sent
    to the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def safe(text: object) -> str:
    """`printable`, and Rich markup shown literally: for values interpolated into console.print."""
    return escape(printable(text))


def _open_image(path: Path, max_megapixels: float) -> Image.Image:
    """Decode a file (sized from its header first, so a bomb is refused before decoding) and turn it
    upright as its EXIF orientation says, so every later rule sees what a viewer shows."""
    from stargan_sdk.photo.faces import open_photo  # OpenCV is imported only when a face is detected

    return upright(open_photo(path, max_pixels=int(max_megapixels * 1e6)))


class FileError(StarGANError):
    """One file's error, its reason already in one printable line."""


def _edit(
    t: Translator,
    image: Image.Image,
    changes: dict[str, int],
    original: dict[str, int] | None,
    mode: str,
    framing: Framing,
    src: Path,
) -> Image.Image:
    """--crop centre-crops and edits whole; --photo always finds faces; `auto` applies the framing rule of
    stargan_sdk.photo.framing (the web page's too) and says on stderr when it edits a whole image without a face."""
    if mode == "crop":
        return t.translate(center_crop(image), changes, original=original)
    if mode == "photo":
        try:
            return t.translate_photo(image, changes, original=original)
        except NoFaceFoundError as e:
            raise NoFaceFoundError(NO_FACE) from e
    choice = framing.choose(image)
    if choice.why == "aligned" and not choice.detector_missing:
        _note(
            f"{printable(src)}: no face detected; edited whole as an aligned face "
            f"({shape_name(image.size, t.image_size)})"
        )
    if choice.whole:
        return t.translate(image, changes, original=original)
    if choice.why == "no-face":
        raise NoFaceFoundError(
            NO_FACE
            if not choice.detector_missing
            else "cannot look for faces without a face detector; --crop edits the centre square"
        )
    faces = list(choice.faces)
    return t.translate_photo(image, changes, original=original, detector=lambda _rgb: faces)


def _note(line: str) -> None:
    typer.echo(f"note: {line}", err=True)


def _inputs(src: Path, out: Path, overwrite_inputs: bool) -> list[tuple[Path, Path]]:
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise UsageError(f"{printable(src)} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        if out.exists() and not out.is_dir():
            raise UsageError(f"{printable(src)} is a folder, so -o must be a folder too; {printable(out)} is a file")
        pairs = [(p, out / p.name) for p in files]
    elif not src.is_file():
        raise UsageError(f"input not found: {printable(src)}")
    else:
        pairs = [(src, out / src.name if out.is_dir() else out)]
    if not overwrite_inputs:
        _refuse_overwriting_inputs(src, out, pairs)
    return pairs


def _refuse_overwriting_inputs(src: Path, out: Path, pairs: list[tuple[Path, Path]]) -> None:
    """An output that is an input would be replaced by its own edit: refused before anything is written."""
    if src.is_dir() and out.is_dir() and os.path.samefile(src, out):
        raise UsageError(f"-o {printable(out)} is the input folder; choose another folder, or pass --overwrite-inputs")
    dst = overwritten_input(pairs)
    if dst is not None:
        raise UsageError(
            f"-o {printable(dst)} is an input (the same file or a link to one); choose another output, "
            "or pass --overwrite-inputs"
        )


TRANSLATE_HELP = (
    "Edit face attributes of an image or a folder of images.\n\n"
    "auto (the default) finds faces first. A face that fills the frame (an aligned face, as in CelebA) is edited "
    "whole, at the image's own size: non-square images have their centre square edited, as in training. Smaller "
    "faces are edited one by one and blended back into the photo. With no face found, an image of an aligned "
    "shape (178x218 as CelebA and `stargan-train toyfaces`, 178x178, or the model's own square size) is edited "
    "whole, with a note on stderr; any other image is an error. --crop (centre-crop to a square, then edit "
    "whole) or --photo (always detect faces) force one way. An output that is an input is refused unless "
    "--overwrite-inputs."
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
    precision: PrecisionOpt = "auto",
    crop: Annotated[bool, typer.Option("--crop", help="Centre-crop every image to a square first.")] = False,
    photo: Annotated[bool, typer.Option("--photo", help="Always detect faces and edit them in place.")] = False,
    overwrite_inputs: Annotated[
        bool,
        typer.Option("--overwrite-inputs", help="Allow -o to be an input (same file or folder, or a link to one)."),
    ] = False,
    max_megapixels: MaxPixelsOpt = MEGAPIXELS,
    as_json: JsonOpt = False,
    workers: Annotated[int | None, typer.Option(help="Decode/encode threads (default: one per core).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per engine call for a folder.")] = None,
    skip_existing: Annotated[
        bool,
        typer.Option("--skip-existing", help="Leave outputs that already exist (resume an interrupted folder run)."),
    ] = False,
    png_level: Annotated[
        int,
        typer.Option(
            "--png-level",
            min=0,
            max=9,
            help="zlib level of PNG outputs (RLE strategy): 1 (default) is fast; higher levels gain little on photos.",
        ),
    ] = PNG_LEVEL,
) -> None:
    """Edit face attributes (see TRANSLATE_HELP for the rule that picks whole-image or face editing)."""
    if crop and photo:
        raise UsageError("--crop and --photo exclude each other")
    changes, orig = parse_assignments(set_, "--set"), parse_assignments(original, "--original") or None
    pairs = _inputs(src, out, overwrite_inputs)
    note = compile_note(bundle, backend)
    if note:
        _note(note)
    started = time.perf_counter()
    with Translator.load(bundle, backend=backend, **precision_options(precision)) as t:
        if note and t.backend_name == "inductor":
            _note(f"compiled and checked in {time.perf_counter() - started:.1f} s")
        t.space.validate_changes(changes)  # unknown names fail before any image is read
        t.max_pixels = int(max_megapixels * 1e6)
        mode = "crop" if crop else "photo" if photo else "auto"
        stats: dict[str, Any] = {}
        done, failed = _run_all(
            t,
            pairs,
            changes,
            orig,
            mode,
            max_megapixels,
            stats=stats,
            progress=len(pairs) > 1 and not as_json,
            workers=workers,
            batch_size=batch_size,
            skip_existing=skip_existing,
            png_level=png_level,
        )
    if as_json:
        typer.echo(json.dumps({"written": done, "failed": failed, **stats}, indent=2))
    else:
        for path in done:
            console.print(f"wrote {safe(path)}")
    for path, message in failed.items():
        typer.echo(f"error: {printable(path)}: {message}", err=True)
    if failed:
        raise typer.Exit(2)


def compile_note(bundle: Path, backend: str) -> str | None:
    """What to say before loading when the backend that will load compiles the generator first (inductor: up to
    a minute without its cache), so a silent terminal is not taken for a hang; None for the others."""
    try:
        chosen = select_backend(backend, bundle)[0].name
    except StarGANError:
        return None  # Translator.load says what is wrong
    if chosen != "inductor":
        return None
    from stargan_sdk.backends.inductor import default_cache_dir

    return (
        "compiling the generator with TorchInductor (each batch size once: up to a minute, or seconds with "
        f"the cache in {printable(default_cache_dir())})..."
    )


def _run_all(
    t: Translator,
    pairs: list[tuple[Path, Path]],
    changes: dict[str, int],
    orig: dict[str, int] | None,
    mode: str,
    max_megapixels: float,
    progress: bool,
    workers: int | None = None,
    batch_size: int | None = None,
    skip_existing: bool = False,
    stats: dict[str, Any] | None = None,
    png_level: int = PNG_LEVEL,
) -> tuple[list[str], dict[str, str]]:
    """Edit each file; a bad file in a folder is reported and skipped, bad options stop everything. A folder
    goes through the streaming pipeline (decode and encode+write in threads while the engine runs)."""
    # An image PIL would warn about as a possible bomb is above our own limit (refused in one line) unless
    # --max-megapixels allowed it, and open_photo's catch_warnings is not thread-safe (the pipeline decodes in
    # threads), so the CLI, which owns its process, silences PIL's redundant warning once for the run.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    framing = Framing(
        note=lambda line: typer.echo(line, err=True), model_size=t.image_size, max_pixels=int(max_megapixels * 1e6)
    )
    if len(pairs) == 1 and not skip_existing:
        src, dst = pairs[0]
        try:
            save_image(
                _edit(t, _open_image(src, max_megapixels), changes, orig, mode, framing, src), dst, png_level=png_level
            )
        except (StarGANError, OSError, ValueError) as e:
            if isinstance(e, BackendUnavailableError):
                raise
            raise FileError(_one_line(e, src, dst)) from e
        return [str(dst)], {}
    done: list[str] = []
    failed: dict[str, str] = {}
    times = StageTimes()
    for folder in {dst.parent for _, dst in pairs}:  # what a killed run left (its outputs are whole or absent)
        remove_leftover_temps(folder, {dst.name for _, dst in pairs})

    def error_line(pair: tuple[Path, Path], e: BaseException) -> str:
        if isinstance(e, NoFaceFoundError):
            e = NoFaceFoundError(
                NO_FACE
                if not framing.detector_missing
                else "cannot look for faces without a face detector; --crop edits the centre square"
            )
        return _one_line(e, *pair).removeprefix(f"{printable(pair[0])}: ")

    # Outputs that are inputs were refused (or allowed by --overwrite-inputs) before the bundle was loaded.
    results = run_files(
        t,
        [src for src, _ in pairs],
        [dst for _, dst in pairs],
        changes,
        mode=mode,
        workers=workers,
        batch_size=batch_size,
        skip_existing=skip_existing,
        original=orig,
        times=times,
        png_level=png_level,
        framing=framing,
        note=lambda line: _note(printable(line)),
        overwrite_inputs=True,
        error_line=error_line,
        fatal=(BackendUnavailableError,),
    )
    columns = (*Progress.get_default_columns(), TextColumn("{task.fields[rate]} images/s"))
    with Progress(*columns, console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("translating", total=len(pairs), rate="-")
        start = time.perf_counter()
        for r in results:
            if r.error:
                failed[str(r.source)] = r.error
            elif not r.skipped:
                done.append(str(r.output))
            bar.update(task, advance=1, rate=f"{len(done) / max(time.perf_counter() - start, 1e-9):.1f}")
    seconds = time.perf_counter() - start
    if stats is not None:  # the --json summary
        stats.update(
            counts=times.counts,
            seconds=round(seconds, 3),
            images_per_s=round(len(done) / seconds, 2),
            stage_seconds={
                "prepare": round(times.prepare, 3),
                "engine": round(times.engine, 3),
                "finish": round(times.finish, 3),
            },
        )
    return done, failed


@app.command()
@friendly
def grid(
    src: Annotated[
        Path, typer.Argument(metavar="IN", help="A face image (non-square: its centre square, or use --crop).")
    ],
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


def bundle_report(bundle: Path, precision: str = "auto") -> dict[str, Any]:
    """Everything `stargan info` shows, as plain data; `precision` as `--precision` would ask the CPU backend."""
    opened = Bundle.open(bundle)
    m = opened.manifest
    artifacts = [
        {
            "file": a.file,
            "kind": a.kind,
            "role": a.role,
            "precision": a.precision,
            "sha256": a.sha256,
            "status": opened.status(a),
        }
        for a in m.artifacts
    ]
    backends = availability_report(opened)  # once: `auto` is read from the same report
    auto = auto_choice(backends)
    return {
        "bundle": str(bundle),
        "image_size": m.image_size,
        "dataset": m.dataset,
        "attributes": list(m.attributes),
        "groups": [{"name": g.name, "kind": g.kind, "attributes": list(g.attributes)} for g in m.groups],
        "artifacts": artifacts,
        "auto": auto,
        "cpu_precision": _cpu_precision(m, precision) if auto == "openvino" or precision != "auto" else None,
        "backends": {name: {"available": av.ok, "reason": av.reason} for name, av in backends.items()},
    }


def _cpu_precision(m: Any, requested: str) -> dict[str, str | None]:
    """What OpenVINO runs on this CPU for `requested` and why (auto: BF16, a >= 40 dB INT8 model, or FP32); a
    precision it would refuse (BF16 on a CPU without it, an INT8 model below its bar) has precision None."""
    from stargan_sdk.backends.openvino import PRECISIONS, choose_precision, cpu_capabilities
    from stargan_sdk.bundle.artifacts import int8_artifact

    if requested not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    try:
        precision, reason = choose_precision(requested, cpu_capabilities(), m)
        if precision == "int8":
            int8_artifact(m)  # refused below its PSNR bar, as the backend's load refuses it
    except StarGANError as e:
        return {"requested": requested, "precision": None, "reason": _one_line(e)}
    return {"requested": requested, "precision": precision, "reason": reason}


@app.command()
@friendly
def info(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder.")],
    as_json: JsonOpt = False,
    precision: PrecisionOpt = "auto",
) -> None:
    """Show a bundle's attributes, files (checksums verified), which backends can run it here and at which CPU
    precision (with --precision: what that choice would run, or why it is refused)."""
    report = bundle_report(bundle, precision)
    failed = any(a["status"] != "ok" for a in report["artifacts"])  # scripts see a damaged bundle by exit code
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        raise typer.Exit(1 if failed else 0)
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
    cpu = report["cpu_precision"]
    if cpu:
        chosen = cpu["precision"] or "[red]refused"
        console.print(f"CPU precision ({cpu['requested']}): {chosen} ({safe(cpu['reason'])})")
    if failed:
        raise typer.Exit(1)


app.command(help=UI_HELP)(friendly(ui))
from stargan_sdk.cli.serve import serve  # noqa: E402  (its own module; registered here)

app.command(name="serve")(friendly(serve))
from stargan_sdk.cli.ray_cli import translate_dataset  # noqa: E402  (Ray itself is imported when it runs)

app.command(name="translate-dataset")(friendly(translate_dataset))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
