"""Ray Data jobs (stargan_sdk.pipeline.ray_job, `stargan translate-dataset`) on a local 2-CPU Ray.

Usage: .venv/bin/python -m pytest tests/sdk/test_ray_job.py -q

Ray's servers listen on every interface (Ray has no loopback-only setting), so every Ray here runs in its own
process inside a private network namespace with nothing but loopback (`unshare -rn`, no root needed): the tests'
traffic cannot leave the machine. Each test checks that no Ray process it started is left, and compares outputs
with Translator.translate / translate_photo image by image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray", reason="the `ray` extra is not installed (pip install -e '.[ray]')")

CHANGES = {"Blond_Hair": 1}
DRIVER = Path(__file__).with_name("ray_driver.py")
PRIVATE_NET = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def _private_net_works() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    return subprocess.run([*PRIVATE_NET, "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    not _private_net_works(), reason="cannot make a loopback-only network namespace (unshare -rn, ip)"
)


def _ray_processes() -> set[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return {
        line.strip()
        for line in out.splitlines()  # zombies (<defunct>) have exited: only their pid is left
        if any(name in line for name in ("raylet", "gcs_server", "ray::", "default_worker.py"))
        and "<defunct>" not in line
    }


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 178x218 toy faces (CelebA's aligned shape: `auto` edits the centre square, as Translator.translate)."""
    from stargan_train.data.toyfaces import generate_toyfaces

    return generate_toyfaces(tmp_path_factory.mktemp("toy"), 6, seed=5, progress=False) / "images"


def _drive(case: dict, timeout: int = 300) -> dict:
    """Run tests/sdk/ray_driver.py in a private network namespace; its JSON result. No Ray process may outlive it."""
    before = _ray_processes()
    result = subprocess.run(
        [*PRIVATE_NET, sys.executable, str(DRIVER), json.dumps(case)], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _ray_processes() - before == set(), "Ray processes left running"
    return json.loads(result.stdout.strip().splitlines()[-1])


def _stargan(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PRIVATE_NET, sys.executable, "-m", "stargan_sdk.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _src_with_bad_file(faces: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for p in sorted(faces.iterdir()):
        (src / p.name).write_bytes(p.read_bytes())
    (src / "broken.png").write_bytes(b"not an image")
    return src


def test_outputs_equal_translate_and_a_bad_file_is_an_error_row(
    faces: Path, bundle: Path, translator, tmp_path: Path
) -> None:
    """Two actors on 2 CPUs (0.5 CPU each, so the decode and encode tasks always have one)."""
    src, out = _src_with_bad_file(faces, tmp_path), tmp_path / "out"
    out.mkdir()
    summary = _drive({"case": "job", "src": str(src), "dst": str(out), "bundle": str(bundle), "concurrency": 2})
    assert (summary["rows"], summary["written"], summary["errors"]) == (7, 6, 1)
    assert summary["failed"] == [{"path": str(src / "broken.png"), "error": "not an image file PIL can read"}]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in faces.iterdir())  # no temp files
    for p in sorted(faces.iterdir()):
        got = np.asarray(Image.open(out / p.name))
        want = np.asarray(translator.translate(Image.open(p), CHANGES))
        assert got.shape == (218, 178, 3)
        np.testing.assert_array_equal(got, want)  # the same pixels as the SDK, whatever process edited them


def test_photo_mode_equals_translate_photo(bundle: Path, translator, tmp_path: Path) -> None:
    """Faces found and pasted back inside the actors, as Translator.translate_photo (a real photo, real detector)."""
    pytest.importorskip("cv2", reason="photo mode needs the `photo` extra (OpenCV)")
    skimage_data = pytest.importorskip("skimage.data")
    from stargan_sdk.images.imaging import image_bytes

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(src / "astronaut.jpg", quality=95)
    Image.new("RGB", (300, 200), (40, 90, 160)).save(src / "sky.png")  # no face: an error row, not a dead job
    summary = _drive({"case": "job", "src": str(src), "dst": str(out), "bundle": str(bundle), "mode": "photo"})
    assert (summary["written"], summary["errors"]) == (1, 1)
    assert "no face" in summary["failed"][0]["error"] and summary["failed"][0]["path"].endswith("sky.png")
    with Image.open(src / "astronaut.jpg") as photo:
        want = image_bytes(translator.translate_photo(photo, CHANGES), "astronaut.jpg")
    assert (out / "astronaut.jpg").read_bytes() == want  # the encoder the job and save_image share: equal files


def test_a_killed_actor_is_replaced_and_every_output_is_written_once(
    faces: Path, bundle: Path, translator, tmp_path: Path
) -> None:
    marker, out = tmp_path / "died", tmp_path / "out"
    out.mkdir()
    result = _drive(
        {
            "case": "kill",
            "src": str(faces),
            "dst": str(out),
            "bundle": str(bundle),
            "concurrency": 2,
            "marker": str(marker),
        }
    )
    assert marker.exists()  # an actor did die mid-job
    assert result["paths"] == sorted(str(p) for p in faces.iterdir())  # every input once: none lost, none twice
    assert result["errors"] == []
    for p in sorted(faces.iterdir()):
        want = translator.translate(Image.open(p), CHANGES)
        np.testing.assert_array_equal(np.asarray(Image.open(out / p.name)), np.asarray(want))


def test_cli_skip_existing_writes_only_what_is_missing(faces: Path, bundle: Path, tmp_path: Path) -> None:
    """End to end as a user runs it (its own local Ray, stopped at exit): an 'interrupted' run left two outputs."""
    out = tmp_path / "out"
    out.mkdir()
    done = sorted(faces.iterdir())[:2]
    for p in done:
        (out / p.name).write_bytes(b"kept")
    before = _ray_processes()
    result = _stargan(
        "translate-dataset",
        str(faces),
        str(out),
        "-b",
        str(bundle),
        "--set",
        "Blond_Hair=1",
        "--skip-existing",
        "--json",
        "--backend",
        "onnxruntime",
        "--batch-size",
        "2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["written"], summary["skipped"], summary["errors"]) == (4, 2, 0)
    assert all((out / p.name).read_bytes() == b"kept" for p in done)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in faces.iterdir())  # no temp files
    assert _ray_processes() - before == set()


def test_cli_errors_are_one_line(faces: Path, bundle: Path, tmp_path: Path) -> None:
    """Refused before Ray starts: DST = SRC, an unknown attribute, a missing folder, a bad mode."""
    cases = [
        ([str(faces), str(faces), "-b", str(bundle), "--set", "Blond_Hair=1"], "inputs are never overwritten"),
        ([str(faces), str(tmp_path / "o"), "-b", str(bundle), "--set", "Bald=1"], "Bald"),
        ([str(tmp_path / "nope"), str(tmp_path / "o"), "-b", str(bundle), "--set", "Blond_Hair=1"], "not a folder"),
        ([str(faces), str(tmp_path / "o"), "-b", str(bundle), "--set", "Blond_Hair=1", "--mode", "x"], "--mode"),
    ]
    for args, expected in cases:
        result = _stargan("translate-dataset", *args, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (args, result.stderr)


def test_file_uris_read_and_write_through_arrow(faces: Path, bundle: Path, tmp_path: Path) -> None:
    """SRC and DST as URIs go through Arrow's file systems (the path s3:// and gs:// take), here file://."""
    out = tmp_path / "out"
    out.mkdir()
    summary = _drive({"case": "job", "src": f"file://{faces}", "dst": f"file://{out}", "bundle": str(bundle)})
    assert summary["written"] == 6 and summary["errors"] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in faces.iterdir())
    assert all(Image.open(p).size == (178, 218) for p in out.iterdir())
