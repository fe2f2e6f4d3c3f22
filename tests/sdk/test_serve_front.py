"""The HTTP front over a stand-in upstream (a plain HTTP server on loopback that echoes what it received): bodies in
every framing reach it whole, refusals never do, keep-alive, limits, 503 while the upstream is down, the drain,
and the supervisor's restart limit."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from procs import free_ports
from stargan_sdk.serve.front import HttpFront
from stargan_sdk.serve.guard import Guard, ModelLimits

CONFIG = {"max_batch_size": 4, "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [2]}]}


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[bytes] = []
    delay = 0.0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Echo.seen.append(body)
        time.sleep(Echo.delay)
        reply = json.dumps(
            {"len": len(body), "encoding": self.headers.get("Content-Encoding"), "path": self.path}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path.endswith("chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(reply), reply))
        else:
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def front():
    Echo.seen, Echo.delay = [], 0.0
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    [port] = free_ports(1)
    f = HttpFront(
        "127.0.0.1", port, upstream.server_address, Guard({"m": ModelLimits.from_config(CONFIG)}), max_body=1 << 20
    ).start()
    f.upstream_server = upstream
    try:
        yield f
    finally:
        f.stop()
        upstream.shutdown()
        upstream.server_close()


def _infer(n: int = 1) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "shape": [n, 2], "datatype": "FP32", "data": [0.5] * 2 * n}]}).encode()


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_keep_alive_forwarding_in_every_body_framing(front: HttpFront) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    body = _infer(2)
    for path, extra in (
        ("/v2/models/m/infer", {}),
        ("/v2/models/m/infer?chunked", {}),
        ("/v2/models/m/infer", {"Content-Encoding": "gzip"}),
    ):
        data = gzip.compress(body) if extra else body
        conn.request("POST", path, body=data, headers=extra)
        reply = conn.getresponse()
        assert reply.status == 200 and not reply.will_close
        assert json.loads(reply.read()) == {"len": len(body), "encoding": None, "path": path}
    conn.request("POST", "/v2/models/m/infer", body=iter([body[:10], body[10:]]), encode_chunked=True)
    assert json.loads(conn.getresponse().read())["len"] == len(body)  # a chunked request arrives whole
    conn.close()
    assert Echo.seen == [body] * 4 and front.counts["forwarded"] == 4
    expect = (
        b"POST /v2/models/m/infer HTTP/1.1\r\nContent-Length: %d\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\n\r\n%s" % (len(body), body)
    )
    reply = _raw(front.port, expect)
    assert reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_refusals_never_reach_the_upstream(front: HttpFront) -> None:
    cases = [
        (b"[" * 200_000, 400, b"nested too deep"),
        (_infer(5), 400, b"outside 1..4"),
        (gzip.compress(b" " * (2 << 20)), 413, b"decoded body exceeds"),
    ]
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    for body, status, message in cases:
        headers = {"Content-Encoding": "gzip"} if status == 413 else {}
        conn.request("POST", "/v2/models/m/infer", body=body, headers=headers)
        reply = conn.getresponse()
        assert reply.status == status and message in reply.read()
    conn.close()
    big = _raw(front.port, b"POST /v2/models/m/infer HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n" + b"x" * 200_000)
    assert big.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in big  # read by the client, not reset
    assert _raw(front.port, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20_000 + b"\r\n").startswith(b"HTTP/1.1 431 ")
    assert _raw(front.port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert Echo.seen == [] and front.counts["refused"] == 6 and front.counts["forwarded"] == 0


def test_a_down_upstream_gets_503_and_the_port_stays_open(front: HttpFront) -> None:
    front.upstream_server.shutdown()
    front.upstream_server.server_close()
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    conn.request("POST", "/v2/models/m/infer", body=_infer())
    reply = conn.getresponse()
    assert reply.status == 503 and b"restarting" in reply.read()
    assert front.counts["unavailable"] == front.counts["upstream_failed"] == 1


def test_drain_answers_requests_in_flight_and_refuses_new_connections(front: HttpFront) -> None:
    Echo.delay = 1.5
    replies: list[int] = []

    def slow() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
        conn.request("POST", "/v2/models/m/infer", body=_infer())
        reply = conn.getresponse()
        reply.read()
        replies.append(reply.status)
        assert reply.will_close  # answered with Connection: close once the drain began

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    start = time.monotonic()
    assert front.drain(10) == 0
    took = time.monotonic() - start
    for t in threads:
        t.join()
    assert replies == [200, 200, 200] and took < 5
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", front.port), timeout=2)


def test_supervisor_gives_up_after_too_many_deaths(tmp_path) -> None:
    from stargan_sdk.serve import stack as serve_stack
    from stargan_sdk.serve.triton_server import ServeError

    class Dying:
        restarts = 0

        def wait(self) -> int:
            return 3

        def stop(self, grace: float) -> None:
            assert grace == 0

        def start(self, timeout: float) -> None:
            Dying.restarts += 1

        def last_error(self) -> str:
            return "Segmentation fault"

    lines: list[str] = []
    http, grpc, metrics = free_ports(3)
    stack = serve_stack.ServeStack(tmp_path, http_port=http, grpc_port=grpc, metrics_port=metrics, log=lines.append)
    stack.server = Dying()
    with pytest.raises(ServeError, match=r"status 3\): Segmentation fault; it died 6 times in 60 s, giving up"):
        stack.run()
    assert Dying.restarts == serve_stack.MAX_RESTARTS == len(stack.restarts)
    assert lines[0] == "tritonserver stopped unexpectedly (status 3): Segmentation fault; restarting (restart 1)"
    assert lines[1].startswith("tritonserver restarted in ") and lines[1].endswith("(restart 1)")


class _Handing:
    """A stand-in socket module whose sockets get the listed ports in turn (as a port-reusing kernel did)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = iter(ports)

    def socket(self, *args: object):
        ports = self.ports

        class Sock:
            port = 0

            def __enter__(self):
                return self

            def __exit__(self, *exc: object) -> None:
                pass

            def bind(self, address: tuple[str, int]) -> None:
                self.port = next(ports)

            def listen(self, backlog: int) -> None:
                pass

            def getsockname(self) -> tuple[str, int]:
                return ("127.0.0.1", self.port)

            def close(self) -> None:
                pass

        return Sock()


def test_tritons_private_port_is_never_a_public_one(monkeypatch) -> None:
    from stargan_sdk.serve import stack as serve_stack
    from stargan_sdk.serve.triton_server import ServeError

    monkeypatch.setattr(serve_stack, "socket", _Handing([8001, 8002, 41000]))
    assert serve_stack._private_port({8000, 8001, 8002}) == 41000
    monkeypatch.setattr(serve_stack, "socket", _Handing([8001] * 20))
    with pytest.raises(ServeError, match=r"no free loopback port outside \[8000, 8001, 8002\]"):
        serve_stack._private_port({8000, 8001, 8002})


def test_free_ports_are_distinct_even_when_the_kernel_repeats_one(monkeypatch) -> None:
    import procs

    monkeypatch.setattr(procs, "socket", _Handing([40375, 53199, 53199, 40375, 53199, 53200]))
    assert procs.free_ports(3) == [40375, 53199, 53200]
