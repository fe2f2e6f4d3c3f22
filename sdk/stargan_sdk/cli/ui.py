"""`stargan ui`: serve the face-editing web page on a local bundle or on a served one (`--url`).

Usage: stargan ui models/toyfaces-64 --port 7860

Gradio (extra `ui`) and the remote client are imported only when the command runs, so the SDK and the
rest of the CLI import without them.
"""

from __future__ import annotations

import importlib
import ipaddress
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from stargan_sdk.backends.registry import backend_names
from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.cli.options import PrecisionOpt, precision_options
from stargan_sdk.errors import BundleError, StarGANError
from stargan_sdk.translator import Translator

UI_HELP = (
    "Serve a web page to edit faces in the browser: upload a face or a photo, see what the bundle's classifier "
    "estimates, choose the edit, download the result.\n\n"
    "The page binds to 127.0.0.1 (this machine only) unless --host says otherwise; it has no login, so expose "
    "it only on networks you trust. Needs the `ui` extra: pip install 'stargan\\[ui]'."
)


def _load_gradio_page() -> Any:
    try:
        return importlib.import_module("stargan_sdk.ui.page")
    except ImportError as e:
        raise StarGANError(f"stargan ui needs Gradio ({e}): pip install 'stargan[ui]'") from None


def _remote(url: str, model: str, bundle: Path | None) -> Any:
    """A RemoteTranslator on `url`; with a bundle too, the served model must be that bundle's model."""
    try:
        from stargan_sdk.serve.remote import RemoteTranslator
    except ImportError as e:
        raise StarGANError(f"--url needs the remote client (stargan_sdk.serve.remote, extra `triton`): {e}") from None
    translator = RemoteTranslator.load(url, model=model)
    if bundle is not None:
        local = read_manifest(bundle)
        if (tuple(local.attributes), local.image_size) != (tuple(translator.attributes), translator.image_size):
            translator.close()
            raise BundleError(
                f"the model served at {url} ({translator.image_size} px, {', '.join(translator.attributes)}) is not "
                f"{bundle} ({local.image_size} px, {', '.join(local.attributes)}); drop BUNDLE or serve it"
            )
    return translator


def _stop(signum: int, frame: Any) -> None:
    """`kill` (SIGTERM) stops the page as Ctrl+C does, so its downloads folder is removed."""
    raise KeyboardInterrupt


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ui(
    bundle: Annotated[
        Path | None,
        typer.Argument(metavar="BUNDLE", help="Bundle folder (optional with --url: the server's bundle is used)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the page to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 7860,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Edit on a served bundle (`stargan serve`): http://HOST:8000 or grpc://HOST:8001."),
    ] = None,
    model: Annotated[str, typer.Option(help="Served model name (with --url).")] = "stargan",
    backend: Annotated[str, typer.Option(help=" | ".join(("auto", *backend_names())) + " (local).")] = "auto",
    precision: PrecisionOpt = "auto",
) -> None:
    """Serve the face-editing page (see UI_HELP)."""
    if bundle is None and url is None:
        raise StarGANError("give a BUNDLE folder, or --url of a served bundle")
    if url and precision != "auto":  # the server chose its precision when it started (`stargan serve --precision`)
        raise StarGANError("--precision applies to a local bundle; with --url, pass it to `stargan serve`")
    page = _load_gradio_page()  # before loading a model, so a missing extra fails fast
    if url:
        translator = _remote(url, model, bundle)
    else:
        translator = Translator.load(bundle, backend=backend, **precision_options(precision))
    title = f"StarGAN face editor: {url if url else bundle.resolve().name}"
    if not _is_loopback(host):
        typer.echo(f"warning: serving on {host}: anyone who can reach it can use this page (no login)", err=True)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:  # prints the address once it listens; serves until Ctrl+C or SIGTERM
        page.serve(translator, host=host, port=port, title=title)
    except OSError as e:
        reason = str(e).split(". ")[0]  # Gradio's advice after the first sentence names its own API
        raise StarGANError(f"cannot serve on {host}:{port} ({reason}); choose another --port") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        translator.close()
