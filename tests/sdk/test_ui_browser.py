"""`stargan ui` in a real headless Chromium: upload the example face, choose blond hair, check the shown result.

Usage: pytest -q tests/sdk/test_ui_browser.py   (skips without chromium + chromedriver; STARGAN_UI_SCREENSHOT=path
also saves the screenshot there, e.g. docs/ui.png)

The page is served by `stargan ui` (under an audit hook) in its own process group on 127.0.0.1 and a free port,
and stopped by the test. Chromium resolves no name but 127.0.0.1 (as with no internet), and the test asserts
that neither the page nor the server asked for anything beyond loopback.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image, ImageFilter

from procs import free_ports

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "toyfaces-64"
EXAMPLE = ROOT / "docs" / "example-face.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
HAIR_RGB = (91, 51, 29)  # the example face's brown hair
TIMEOUT = 40.0
# Runs `stargan` with an audit hook that reports every connection or name lookup beyond loopback.
SERVE_AUDITED = """
import sys
LOCAL = ("127.0.0.1", "::1", "localhost", None)
def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in LOCAL:
        print(f"OUTBOUND connect {args[1]!r}", file=sys.stderr, flush=True)
    if event == "socket.getaddrinfo" and args[0] not in LOCAL:
        print(f"OUTBOUND lookup {args[0]!r}", file=sys.stderr, flush=True)
sys.addaudithook(hook)
from stargan_sdk.cli.stargan import main
sys.argv[0] = "stargan"
main()
"""

if not (CHROMIUM and DRIVER):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
pytest.importorskip("gradio", reason="needs gradio (the ui extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server_log() -> Iterator[io.BufferedRandom]:
    with tempfile.TemporaryFile() as log:
        yield log


@pytest.fixture(scope="module")
def server(server_log: io.BufferedRandom) -> Iterator[str]:
    """`stargan ui` on the shipped bundle (ONNX Runtime, so the test can reproduce the result exactly)."""
    (port,), log = free_ports(1), server_log
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_AUDITED, "ui", str(BUNDLE), "--port", str(port), "--backend", "onnxruntime"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(proc, url, log)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_until_up(proc: subprocess.Popen, url: str, log: io.BufferedRandom) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"stargan ui exited with {proc.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail("stargan ui did not answer within 60 s")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def requested_hosts(driver) -> set[str]:
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            url = message["params"].get("request", {}).get("url") or message["params"].get("url", "")
            if urlsplit(url).scheme in ("http", "https", "ws", "wss"):
                hosts.add(urlsplit(url).hostname)
    return hosts


def shown_image(driver, css: str) -> np.ndarray:
    """The pixels the page displays in `css` (fetched by the page itself, decoded here)."""
    src = WebDriverWait(driver, TIMEOUT).until(
        lambda d: next(
            (e.get_attribute("src") for e in d.find_elements(By.CSS_SELECTOR, css) if e.get_attribute("src")), None
        )
    )
    data = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {"
        "  let s = ''; new Uint8Array(b).forEach(x => s += String.fromCharCode(x)); done(btoa(s)); });",
        src,
    )
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")).astype(np.float64)


def hair_regions(face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hair, far from hair): the example face's hair is its brown above the eye line (the beard is below)."""
    hair = np.abs(face - HAIR_RGB).sum(axis=2) < 70
    hair[int(0.4 * face.shape[0]) :] = False
    near = np.asarray(Image.fromarray(hair.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(15))) > 0
    return hair, ~near


def test_blond_edit_in_a_real_browser(server: str, browser, tmp_path: Path) -> None:
    from stargan_sdk import Translator

    browser.get(server)
    wait = WebDriverWait(browser, TIMEOUT)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#input-image input[type=file]").send_keys(str(EXAMPLE))
    wait.until(lambda d: "Estimated" in d.find_element(By.ID, "estimate").text)
    assert browser.find_element(By.ID, "estimate").text == "Estimated: Brown_Hair · Male · Young"

    browser.find_element(By.CSS_SELECTOR, "#target-hair [data-testid='Blond_Hair-radio-label']").click()
    browser.find_element(By.ID, "edit-button").click()
    wait.until(lambda d: "Changed: Blond_Hair=1" in d.find_element(By.ID, "note").text)
    shown = shown_image(browser, "#result-image img")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#all-edits img")) >= 6)
    time.sleep(0.5)  # let the gallery's images paint before the screenshot
    browser.save_screenshot(str(tmp_path / "ui.png"))
    if os.environ.get("STARGAN_UI_SCREENSHOT"):
        shutil.copyfile(tmp_path / "ui.png", os.environ["STARGAN_UI_SCREENSHOT"])

    face = np.asarray(Image.open(EXAMPLE).convert("RGB")).astype(np.float64)
    assert shown.shape == face.shape  # the result comes back at the input's size
    with Translator.load(BUNDLE, backend="onnxruntime") as t:
        expected = np.asarray(t.translate(Image.open(EXAMPLE), Blond_Hair=1)).astype(np.float64)
    assert np.abs(shown - expected).max() <= 2, "the page shows something else than the SDK's edit"

    hair, elsewhere = hair_regions(face)
    change = np.abs(shown - face).mean(axis=2)
    assert hair.sum() > 1000 and elsewhere.sum() > 20000
    assert change[hair].mean() > 60, f"hair barely changed ({change[hair].mean():.1f})"
    assert change[elsewhere].mean() < 25, f"too much changed away from the hair ({change[elsewhere].mean():.1f})"
    assert change[hair].mean() > 4 * change[elsewhere].mean()
    assert (shown[hair].mean(axis=0) - face[hair].mean(axis=0)).min() > 40, "the hair did not get lighter"

    assert requested_hosts(browser) == {"127.0.0.1"}, "the page asked for something beyond the local server"


def visible_errors(driver) -> list[str]:
    """Every visible red 'Error' badge or toast title on the page."""
    return [e.text for e in driver.find_elements(By.XPATH, "//*[normalize-space(text())='Error']") if e.is_displayed()]


def test_a_photo_without_a_face_gets_one_message_and_edit_says_it_again(server: str, browser, tmp_path: Path) -> None:
    wall = tmp_path / "wall.png"
    Image.new("RGB", (300, 200), (120, 130, 140)).save(wall)
    browser.get(server)
    wait = WebDriverWait(browser, TIMEOUT)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#input-image input[type=file]").send_keys(str(EXAMPLE))
    wait.until(lambda d: "Estimated" in d.find_element(By.ID, "estimate").text)
    browser.find_element(By.CSS_SELECTOR, "#input-image input[type=file]").send_keys(str(wall))
    wait.until(lambda d: "No face found in the image" in d.find_element(By.ID, "estimate").text)
    assert "upload a photo with a clear frontal face" in browser.find_element(By.ID, "estimate").text
    time.sleep(1.0)  # any badge or toast would be up by now
    assert visible_errors(browser) == []
    browser.find_element(By.ID, "edit-button").click()  # the shown image: Edit says why it cannot be edited
    wait.until(lambda d: "No face found in the image" in d.find_element(By.ID, "note").text)
    time.sleep(1.0)
    assert visible_errors(browser) == []
    toasts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")]
    assert not any("Upload a face or a photo first" in text for text in toasts)
    assert not browser.find_elements(By.CSS_SELECTOR, "#result-image img[src]")


def test_the_server_reached_for_nothing_beyond_loopback(server: str, server_log: io.BufferedRandom) -> None:
    """Runs after the browser tests (file order): no telemetry, update check, CDN or share tunnel."""
    server_log.seek(0)
    text = server_log.read().decode(errors="replace")
    assert "serving the StarGAN face editor on http://127.0.0.1:" in text
    assert "OUTBOUND" not in text, text
    assert "Traceback" not in text, text  # messages to the user are not server errors
