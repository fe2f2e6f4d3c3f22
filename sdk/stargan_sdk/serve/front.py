"""The public HTTP port of `stargan serve`: a small HTTP/1.1 front that checks each request, then forwards it to
tritonserver on a private loopback port.

Usage: front = HttpFront("127.0.0.1", 8000, ("127.0.0.1", private_port), guard).start(); ...
       front.drain(10); front.stop()

Why: single requests crash the tritonserver binary (see `serve.guard`); here they get a 4xx and never reach it.
Bodies are bounded (`max_body`), read whole (Content-Length or chunked, gzip/deflate decoded within the bound),
checked, and forwarded on one keep-alive upstream connection per client connection. Until a guard is set (the
models' configs are known) and while tritonserver restarts, requests get 503. `drain` is the graceful stop: the port
stops accepting, requests already started are answered
(with `Connection: close`), idle keep-alive connections get `IDLE_GRACE` seconds to send one, then close.
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections import Counter

from stargan_sdk.errors import StarGANError
from stargan_sdk.serve.guard import Guard

HEAD_LIMIT = 64 * 1024  # request line + headers
LINGER_S = 2.0  # after a refusal that closes the connection, unread request bytes are discarded this long
IDLE_GRACE = 1.0  # seconds an idle keep-alive connection may still start a request once a drain began
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "content-length",
    "host",
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class _Refused(Exception):
    def __init__(self, status: int, message: str, close: bool = True) -> None:
        super().__init__(message)
        self.status, self.close = status, close


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer, self.busy, self.upstream = writer, False, None


class HttpFront:
    """See the module docstring. `counts`: requests forwarded, refused (4xx), unavailable (5xx from here) and
    upstream_failed (tritonserver unreachable or gone mid-request)."""

    def __init__(
        self, host: str, port: int, upstream: tuple[str, int], guard: Guard | None = None, max_body: int = 128 << 20
    ) -> None:
        self.host, self.port, self.upstream, self.guard, self.max_body = host, port, upstream, guard, max_body
        self.counts: Counter[str] = Counter()
        self._conns: set[_Conn] = set()
        self._draining = False
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HttpFront:
        server = asyncio.start_server(self._handle, self.host, self.port, limit=HEAD_LIMIT, reuse_address=True)
        try:
            self._server = self._loop.run_until_complete(server)
        except OSError as e:
            self._loop.close()
            raise StarGANError(f"cannot listen on {self.host}:{self.port} (--http-port): {e.strerror or e}") from None
        self._thread = threading.Thread(target=self._loop.run_forever, name="stargan-http-front", daemon=True)
        self._thread.start()
        return self

    def drain(self, timeout: float) -> int:
        """Stop accepting, answer the requests in flight, close; returns the connections cut at `timeout`."""
        if self._thread is None:
            return 0
        return asyncio.run_coroutine_threadsafe(self._drain(timeout), self._loop).result()

    def stop(self) -> None:
        if self._thread is None:
            return
        self.drain(0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._loop.close()

    async def _drain(self, timeout: float) -> int:
        self._draining = True
        if self._server is not None:
            self._server.close()  # no new connections; the open ones finish below
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await asyncio.sleep(min(IDLE_GRACE, timeout))
        while loop.time() < deadline and any(c.busy for c in self._conns):
            await asyncio.sleep(0.02)
        cut = sum(c.busy for c in self._conns)
        for conn in list(self._conns):
            conn.writer.close()
        return cut

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            while not self._draining:
                try:
                    first = await reader.readexactly(1)  # idle until a request starts
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                conn.busy = True
                keep = await self._serve_one(first, reader, conn)
                conn.busy = False
                if not keep:
                    return
        finally:
            self._conns.discard(conn)
            for w in (writer, conn.upstream[1] if conn.upstream else None):
                if w is not None:
                    w.close()

    async def _serve_one(self, first: bytes, reader: asyncio.StreamReader, conn: _Conn) -> bool:
        """One request: refuse it or forward it, answer; whether the connection stays open."""
        try:
            method, target, version, headers, raw = await self._read_request(first, reader, conn)
            keep = _keep_alive(version, headers) and not self._draining
            if self.guard is None:  # tritonserver is still loading: nothing is checked yet, so nothing passes
                raise _Refused(503, "the server is starting; retry", close=not keep)
            refusal = self.guard.check(method, target, headers, raw[1])
            if refusal:
                raise _Refused(*refusal, close=not keep)
            status, reply_headers, body = await self._forward(conn, method, target, raw)
        except _Refused as e:
            self.counts["refused" if e.status < 500 else "unavailable"] += 1
            await self._reply(
                conn.writer,
                e.status,
                [("Content-Type", "application/json")],
                json.dumps({"error": str(e)}).encode(),
                close=e.close or self._draining,
            )
            if e.close:
                await _linger(reader, conn.writer)
            return not (e.close or self._draining)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return False
        keep = keep and not self._draining
        await self._reply(conn.writer, status, reply_headers, body, close=not keep)
        return keep

    async def _read_request(self, first: bytes, reader: asyncio.StreamReader, conn: _Conn):
        try:
            head = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Refused(431, f"request line and headers exceed {HEAD_LIMIT} bytes") from None
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Refused(400, "malformed request line")
        headers: dict[str, str] = {}
        kept: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _Refused(400, "malformed header line")
            headers[name.lower()] = value.strip()
            if name.lower() not in _HOP:
                kept.append((name, value.strip()))
        body = await self._read_body(headers, reader, conn)
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate"):
            body = self._inflate(body, encoding)
            kept = [(n, v) for n, v in kept if n.lower() != "content-encoding"]
            headers.pop("content-encoding")
        elif encoding != "identity":
            raise _Refused(415, f"Content-Encoding {encoding[:20]!r} is not supported (gzip, deflate)", close=False)
        return parts[0], parts[1], parts[2], headers, (kept, body)

    async def _read_body(self, headers: dict[str, str], reader: asyncio.StreamReader, conn: _Conn) -> bytes:
        expects = headers.get("expect", "").lower() == "100-continue"
        if "transfer-encoding" in headers:
            if headers["transfer-encoding"].lower() != "chunked":
                raise _Refused(501, "only chunked Transfer-Encoding is supported")
            if expects:
                conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return await self._read_chunked(reader)
        length = headers.get("content-length", "0")
        if not (length.isascii() and length.isdigit()):
            raise _Refused(400, "Content-Length must be a number")
        if int(length) > self.max_body:
            raise _Refused(413, f"the body is {length} bytes; this server accepts at most {self.max_body}")
        if expects and int(length):
            conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return await reader.readexactly(int(length))

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        chunks, total = [], 0
        while True:
            size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _Refused(400, "malformed chunk size") from None
            total += size
            if total > self.max_body:
                raise _Refused(413, f"the body exceeds {self.max_body} bytes")
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            out = inflater.decompress(body, self.max_body + 1)
        except zlib.error as e:
            raise _Refused(400, f"the {encoding} body cannot be decoded: {e}", close=False) from None
        if len(out) > self.max_body or inflater.unconsumed_tail:
            raise _Refused(413, f"the decoded body exceeds {self.max_body} bytes", close=False)
        return out

    async def _forward(self, conn: _Conn, method: str, target: str, raw) -> tuple[int, list, bytes]:
        kept, body = raw
        head = [
            f"{method} {target} HTTP/1.1",
            f"Host: {self.upstream[0]}:{self.upstream[1]}",
            *(f"{n}: {v}" for n, v in kept),
            f"Content-Length: {len(body)}",
        ]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (0, 1):  # a reused upstream connection may have been closed meanwhile: one fresh retry
            reused = conn.upstream is not None
            try:
                if conn.upstream is None:
                    conn.upstream = await asyncio.open_connection(*self.upstream, limit=HEAD_LIMIT)
                up_reader, up_writer = conn.upstream
                up_writer.write(request)
                await up_writer.drain()
                reply = await _read_response(up_reader, method)
                self.counts["forwarded"] += 1
                return reply
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                if conn.upstream is not None:
                    conn.upstream[1].close()
                    conn.upstream = None
                if attempt == 0 and reused and isinstance(e, asyncio.IncompleteReadError) and not e.partial:
                    continue
                self.counts["upstream_failed"] += 1
                raise _Refused(
                    503 if not reused and isinstance(e, ConnectionRefusedError) else 502,
                    "the inference server is restarting or failed on this request; retry",
                ) from None
        raise AssertionError("unreachable")

    async def _reply(self, writer: asyncio.StreamWriter, status: int, headers: list, body: bytes, close: bool) -> None:
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            *(f"{n}: {v}" for n, v in headers),
            f"Content-Length: {len(body)}",
            f"Connection: {'close' if close else 'keep-alive'}",
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float = LINGER_S) -> None:
    """Close after a refusal the way a client can read it: end our side, then discard what the client still
    sends (the rest of a refused body) for a moment; closing at once would reset the connection under it."""
    try:
        writer.write_eof()
        deadline = asyncio.get_running_loop().time() + seconds
        while await asyncio.wait_for(reader.read(1 << 16), max(deadline - asyncio.get_running_loop().time(), 0)):
            pass
    except (asyncio.TimeoutError, OSError, RuntimeError):
        pass


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    token = headers.get("connection", "").lower()
    return token != "close" if version == "HTTP/1.1" else token == "keep-alive"


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[int, list, bytes]:
    """tritonserver's reply: status, end-to-end headers, the whole body (Content-Length, chunked or to EOF)."""
    lines = (await reader.readuntil(b"\r\n\r\n"))[:-4].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
    lookup = {n.lower(): v for n, v in headers}
    kept = [(n, v) for n, v in headers if n.lower() not in _HOP]
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, kept, b""
    if lookup.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while (await reader.readuntil(b"\r\n")) != b"\r\n":
            pass
        return status, kept, b"".join(parts)
    if "content-length" in lookup:
        return status, kept, await reader.readexactly(int(lookup["content-length"]))
    return status, kept, await reader.read()
