"""The `stargan ui` web page (Gradio): upload a face or photo, see the estimate, set the edit, get the result.

Usage: serve(Translator.load("models/toyfaces-64"), host="127.0.0.1", port=7860)  # or: stargan ui BUNDLE

Gradio is imported here only (extra `ui`), with telemetry and its update check off; the page loads nothing
from outside the server (the default theme's fonts are served locally), so it works with no internet.
The logic behind each control lives in `stargan_sdk.ui.actions`; this module only lays out the page and turns
SDK errors into messages on it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it at import

import gradio as gr  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from stargan_sdk.errors import NoFaceFoundError, StarGANError  # noqa: E402
from stargan_sdk.ui.actions import (  # noqa: E402
    HAIR_NONE,
    Controls,
    Prepared,
    changes_from,
    controls_for,
    describe,
    edit,
    original_from,
    prepare,
)

EXAMPLE = Path(str(files("stargan_sdk.ui") / "assets" / "example-face.png"))  # package data: in a wheel too
MODE_CHOICES = [("auto", "auto"), ("whole image (an aligned face)", "whole"), ("find faces in a photo", "faces")]
MAX_UPLOAD = "64mb"


def upload_image(**kwargs: Any) -> gr.Image:
    """A gr.Image whose upload errors (not an image, a decompression bomb) read as messages, not 'Error'.

    Gradio opens each upload with PIL before any handler runs. Wrapped on the instance, not subclassed:
    Gradio writes a .pyi stub beside the module of every component subclass at import time.
    """
    image = gr.Image(**kwargs)
    inner = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return inner(payload)
        except Image.DecompressionBombError as e:
            raise gr.Error(f"refused as a decompression bomb: {e}", print_exception=False) from e
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise gr.Error(f"not a readable image: {str(e).splitlines()[0]}", print_exception=False) from e

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


def _message(e: BaseException) -> gr.Error:
    """A message for the user: shown on the page, never logged with a traceback on the server."""
    return gr.Error(str(e).splitlines()[0] if str(e) else type(e).__name__, print_exception=False)


@dataclass(frozen=True)
class Refused:
    """An upload the page shows but cannot edit as it stands (no face found): Edit repeats why."""

    message: str


class Page:
    """The handlers of one page, bound to one translator.

    Args:
        translator: a loaded Translator, or any object with the same API (see `stargan_sdk.ui.actions`).
        download_dir: where results are written for the download button.
    """

    def __init__(self, translator: Any, download_dir: str | os.PathLike[str]) -> None:
        self.translator = translator
        self.controls: Controls = controls_for(translator)
        self.download_dir = Path(download_dir)

    def forget(self) -> list[Any]:
        """Clear the image and its results (runs before each new upload is examined)."""
        return [None, None, None, gr.update(value=None, visible=False), ""]

    def on_image(self, path: str | None, mode: str) -> list[Any]:
        """A new upload (or mode): estimate it and set both panels from the estimate."""
        n = len(self.controls.toggles)
        if not path:
            return [
                None,
                "Upload a face or a photo.",
                gr.update(),
                None,
                *[False] * n,
                "keep",
                *[False] * n,
                None,
                None,
                gr.update(value=None, visible=False),
                "",
            ]
        try:
            prepared = prepare(self.translator, path, mode)
        except NoFaceFoundError as e:  # said once, beside the image; no error badge, no traceback
            text = str(e)
            refused = Refused(f"{text[:1].upper()}{text[1:]}.")
            return [
                refused,
                refused.message,
                gr.update(),
                None,
                *[False] * n,
                "keep",
                *[False] * n,
                None,
                None,
                gr.update(value=None, visible=False),
                "",
            ]
        except (StarGANError, OSError, ValueError) as e:
            raise _message(e) from e
        est = prepared.estimate
        if est is None:
            gr.Warning("This bundle has no classifier: say what the input shows under 'Correct the estimate'.")
        values = est or {}
        hair = next((a for a in self.controls.choice if values.get(a)), HAIR_NONE)
        toggles = [bool(values.get(a, 0)) for a in self.controls.toggles]
        face = " (face 1)" if len(prepared.faces) > 1 and not prepared.whole else ""
        text = f"**Estimated{face}:** {describe(self.controls, est)}"
        return [
            prepared,
            text,
            gr.update(open=est is None),
            hair,
            *toggles,
            "keep",
            *toggles,
            None,
            None,
            gr.update(value=None, visible=False),
            prepared.note,
        ]

    def on_edit(self, prepared: Prepared | None, *values: Any) -> list[Any]:
        """Run the edit: values are the target choice and toggles, then the 'input shows' choice and toggles."""
        if prepared is None:
            raise gr.Error("Upload a face or a photo first.", print_exception=False)
        if isinstance(prepared, Refused):  # the shown image has no face to edit in this mode
            return [None, [], gr.update(value=None, visible=False), prepared.message]
        n = len(self.controls.toggles)
        target_hair, targets = values[0], dict(zip(self.controls.toggles, values[1 : 1 + n]))
        shown_hair, shown = values[1 + n], dict(zip(self.controls.toggles, values[2 + n : 2 + 2 * n]))
        original = original_from(self.controls, shown_hair, shown)
        try:
            changes = changes_from(self.controls, original, target_hair, targets)
            # With the estimate untouched, the classifier judges each face itself (photos with several faces).
            same = prepared.estimate == original
            result, row = edit(self.translator, prepared, changes, None if same else original)
        except (StarGANError, OSError, ValueError) as e:
            raise _message(e) from e
        gallery = [
            (prepared.face, "input" if prepared.whole else "input (face 1)"),
            *[(img, name) for name, img in row.items()],
        ]
        path = self._save(result)
        said = ", ".join(f"{k}={v}" for k, v in changes.items()) or "nothing (same attributes: a reconstruction)"
        return [result, gallery, gr.update(value=str(path), visible=True), f"{prepared.note} Changed: {said}."]

    def _save(self, result: Image.Image) -> Path:
        out = Path(tempfile.mkdtemp(dir=self.download_dir)) / "stargan-edit.png"
        result.save(out, format="PNG")
        return out


def build_page(translator: Any, *, title: str = "StarGAN face editor", download_dir: str | None = None) -> gr.Blocks:
    """The page's Blocks (not launched)."""
    page = Page(translator, download_dir or tempfile.mkdtemp(prefix="stargan-ui-"))
    c = page.controls
    # Uploads and results are personal photos: Gradio deletes its cached copies after an hour.
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(600, 3600)) as blocks:
        gr.Markdown(f"# {title}\n{_subtitle(translator)}")
        state = gr.State(None)
        with gr.Row():
            with gr.Column():
                upload = upload_image(
                    type="filepath",
                    label="Input: a face or a photo",
                    sources=["upload", "clipboard"],
                    elem_id="input-image",
                    format="png",
                )
                mode = gr.Radio(MODE_CHOICES, value="auto", label="How to edit it", elem_id="mode")
                if EXAMPLE.is_file():
                    gr.Examples([[str(EXAMPLE)]], inputs=[upload], label="Example")
            with gr.Column():
                estimate = gr.Markdown("Upload a face or a photo.", elem_id="estimate")
                with gr.Accordion("Correct the estimate", open=False) as correct:
                    shown_hair = gr.Radio(
                        [*c.choice, HAIR_NONE],
                        value=HAIR_NONE,
                        label="The input's hair colour",
                        visible=bool(c.choice),
                        elem_id="shown-hair",
                    )
                    shown = [gr.Checkbox(label=a, elem_id=f"shown-{a}") for a in c.toggles]
                gr.Markdown("**Change to**")
                target_hair = gr.Radio(
                    ["keep", *c.choice],
                    value="keep",
                    label="Hair colour",
                    visible=bool(c.choice),
                    elem_id="target-hair",
                )
                targets = [gr.Checkbox(label=a, elem_id=f"target-{a}") for a in c.toggles]
                run = gr.Button("Edit", variant="primary", elem_id="edit-button")
                note = gr.Markdown(elem_id="note")
            with gr.Column():
                result = gr.Image(
                    label="Result",
                    format="png",
                    interactive=False,
                    elem_id="result-image",
                    buttons=["download", "fullscreen"],
                )  # no "share": it posts to a hub
                download = gr.DownloadButton("Download the result (PNG)", visible=False, elem_id="download")
        row = gr.Gallery(
            label="Every single-attribute edit",
            columns=len(c.choice) + len(c.toggles) + 1,
            format="png",
            elem_id="all-edits",
            height="auto",
            buttons=["download", "fullscreen"],
        )
        image_outputs = [
            state,
            estimate,
            correct,
            shown_hair,
            *shown,
            target_hair,
            *targets,
            result,
            row,
            download,
            note,
        ]
        # Forget the previous image first, so a rejected upload never leaves it to be edited; progress and
        # error badges go on the one component the user waits for, not on every output.
        for changed in (upload.change, mode.change):
            changed(page.forget, None, [state, result, row, download, note], show_progress="hidden").then(
                page.on_image, [upload, mode], image_outputs, show_progress_on=[estimate]
            )
        run.click(
            page.on_edit,
            [state, target_hair, *targets, shown_hair, *shown],
            [result, row, download, note],
            show_progress_on=[result],
        )
    return blocks


def _subtitle(translator: Any) -> str:
    attrs = ", ".join(translator.attributes)
    backend = getattr(translator, "backend_name", "remote")
    return f"{translator.image_size} px model · attributes: {attrs} · backend: {backend}"


def serve(
    translator: Any,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    block: bool = True,
    title: str = "StarGAN face editor",
) -> gr.Blocks:
    """Launch the page on host:port (no share link, no telemetry) and print its address; `block=False`
    returns the running Blocks (stop it with `.close()`), otherwise it serves until Ctrl+C."""
    if not block:
        return _launch(build_page(translator, title=title), host, port)
    with tempfile.TemporaryDirectory(prefix="stargan-ui-") as downloads:
        blocks = _launch(build_page(translator, title=title, download_dir=downloads), host, port)
        blocks.block_thread()  # returns on Ctrl+C, with the server closed
        return blocks


def _launch(blocks: gr.Blocks, host: str, port: int) -> gr.Blocks:
    # quiet: Gradio's banner suggests share=True, a public tunnel this command never opens.
    blocks.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=True,
        max_file_size=MAX_UPLOAD,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        prevent_thread_lock=True,
        quiet=True,
    )
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"serving the StarGAN face editor on http://{shown}:{blocks.server_port}/ (Ctrl+C stops)", flush=True)
    return blocks
