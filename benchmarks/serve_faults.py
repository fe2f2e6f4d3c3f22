"""Fault rows of `serve_load.py`: good clients with hostile ones mixed in, and SIGTERM under keep-alive load.

Usage: rows = [bad_clients_row(stack, ...), sigterm_row(bundle, ...)]  (serve_load.py calls both)

`http+bad`: good clients (`RemoteTranslator` over the HTTP front) run while bad clients keep sending the audit's
requests (the 200,000-bracket body, shapes [2^40 | 2^63-1, 3, S, S], poisoned edits 100,000 levels deep or with a
5,000-digit integer). Reported: good requests failed (must be 0), bad answers by status, tritonserver restarts.
`sigterm`: the real `stargan serve` CLI under keep-alive clients posting without pause gets SIGTERM; reported:
requests answered after the signal, requests dropped (sent, connection closed without an answer: must be 0),
clients refused at reconnect, exit status and seconds to exit.
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _infer_body(s: int, c: int, batch: int | None = None, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [batch or 1, 3, s, s],
                    "datatype": "FP32",
                    "data": rng.uniform(-1, 1, 3 * s * s).round(4).tolist(),
                },
                {"name": "label", "shape": [batch or 1, c], "datatype": "FP32", "data": [1.0] + [0.0] * (c - 1)},
            ]
        }
    ).encode()


def _edit_body(changes: str, original: str | None = None) -> bytes:
    png = base64.b64encode((ROOT / "docs" / "example-face.png").read_bytes()).decode()
    inputs = [
        {"name": "image", "shape": [1, 1], "datatype": "BYTES", "data": [png]},
        {"name": "changes", "shape": [1, 1], "datatype": "BYTES", "data": [changes]},
    ]
    if original is not None:
        inputs.append({"name": "original", "shape": [1, 1], "datatype": "BYTES", "data": [original]})
    return json.dumps({"inputs": inputs}).encode()


def bad_requests(s: int, c: int) -> list[tuple[str, bytes]]:
    deep, digits = "[" * 100_000 + "]" * 100_000, "9" * 5000
    infer, edit = "/v2/models/stargan/infer", "/v2/models/stargan_edit/infer"
    return [
        (infer, b"[" * 200_000),
        (infer, _infer_body(s, c, batch=2**40)),
        (infer, _infer_body(s, c, batch=2**63 - 1)),
        (edit, _edit_body(deep)),
        (edit, _edit_body(f'{{"Blond_Hair": {digits}}}')),
        (edit, _edit_body('{"Male": 1}', deep)),
        (edit, _edit_body('{"Blond": 1}')),
    ]


def _post(url: str, body: bytes | None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except OSError:
        return 0  # no answer at all


def bad_clients_row(stack, remote, good_clients: int, bad_clients: int, requests: int, inputs, s: int, c: int) -> dict:
    """`requests` good calls over `good_clients` threads while `bad_clients` threads send bad requests."""
    bad = bad_requests(s, c)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    done = threading.Event()
    counter, lock = iter(range(requests)), threading.Lock()
    restarts = len(stack.restarts)

    def good() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                remote.infer(*inputs[i % len(inputs)])
            except Exception as e:  # noqa: BLE001 - every failure of a good request is what this row counts
                failures.append(repr(e)[:200])

    def hostile(k: int) -> None:
        i = k
        while not done.is_set():
            path, body = bad[i % len(bad)]
            status = _post(f"{stack.http_url}{path}", body)
            with lock:
                statuses[status] += 1
            i += 1

    goods = [threading.Thread(target=good) for _ in range(good_clients)]
    bads = [threading.Thread(target=hostile, args=(k,)) for k in range(bad_clients)]
    start = time.perf_counter()
    for t in goods + bads:
        t.start()
    for t in goods:
        t.join()
    wall = time.perf_counter() - start
    done.set()
    for t in bads:
        t.join()
    return {
        "mode": "http+bad",
        "clients": good_clients,
        "bad_clients": bad_clients,
        "good_requests": requests,
        "good_failed": len(failures),
        "failures": failures[:5],
        "throughput_rps": requests / wall,
        "bad_requests": sum(statuses.values()),
        "bad_statuses": dict(sorted(statuses.items())),
        "restarts": len(stack.restarts) - restarts,
    }


def sigterm_row(
    bundle: Path,
    backend: str,
    clients: int,
    seconds: float,
    max_batch: int,
    workdir: Path,
    ports: list[int],
    s: int,
    c: int,
) -> dict:
    """The `stargan serve` CLI under `clients` keep-alive clients; SIGTERM after `seconds` of load."""
    cmd = [
        sys.executable,
        "-m",
        "stargan_sdk.cli",
        "serve",
        str(bundle),
        "--backend",
        backend,
        "--max-batch",
        str(max_batch),
        "--http-port",
        str(ports[0]),
        "--grpc-port",
        str(ports[1]),
        "--metrics-port",
        str(ports[2]),
        "--workdir",
        str(workdir),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while _post(f"http://127.0.0.1:{ports[0]}/v2/health/ready", None) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"stargan serve did not start (status {proc.poll()})")
            time.sleep(0.2)
        body, signalled = _infer_body(s, c), threading.Event()
        answered, after, dropped, refused = [], [], [], []

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=60)
            while True:
                try:
                    conn.request("POST", "/v2/models/stargan/infer", body=body)
                    late = signalled.is_set()
                except ConnectionRefusedError:
                    refused.append(1)
                    return
                except OSError as e:
                    dropped.append(repr(e))
                    return
                try:
                    response = conn.getresponse()
                    response.read()
                except (http.client.HTTPException, OSError) as e:
                    dropped.append(repr(e))
                    return
                (after if signalled.is_set() else answered).append(response.status)
                if late and response.status != 200:
                    dropped.append(f"status {response.status}")
                if response.will_close:
                    conn.close()

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        sent = time.monotonic()
        signalled.set()
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(120)
        stop_s = time.monotonic() - sent
        for t in threads:
            t.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {
        "mode": "sigterm",
        "clients": clients,
        "load_s": seconds,
        "answered_before": len(answered),
        "answered_after_sigterm": len(after),
        "dropped": len(dropped),
        "drops": dropped[:5],
        "refused_at_reconnect": len(refused),
        "exit_status": status,
        "stop_s": stop_s,
        "workdir_left": sorted(p.name for p in workdir.iterdir()),
    }


def fault_table(rows: list[dict]) -> str:
    lines = ["| row | clients | requests | failed / dropped | other answers | notes |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        if r["mode"] == "http+bad":
            bad = ", ".join(f"{k}: {v}" for k, v in r["bad_statuses"].items())
            lines.append(
                f"| good + bad clients (HTTP) | {r['clients']} good + {r['bad_clients']} bad | "
                f"{r['good_requests']} good | {r['good_failed']} good failed | bad answered {bad} "
                f"({r['bad_requests']}) | {r['throughput_rps']:.1f} good req/s; {r['restarts']} restarts |"
            )
        else:
            lines.append(
                f"| SIGTERM under keep-alive load | {r['clients']} | {r['answered_before']} before, "
                f"{r['answered_after_sigterm']} answered after SIGTERM | {r['dropped']} dropped | "
                f"{r['refused_at_reconnect']} refused at reconnect | exit {r['exit_status']} in "
                f"{r['stop_s']:.1f} s; {len(r['workdir_left'])} files left |"
            )
    return "\n".join(lines) + "\n"
