"""keybuzz's own HTTP calls to the services it deploys (jsonhttp, HAProxy stats, SeaweedFS, S3 through
boto3) go straight to the address asked: a proxy named by the environment gets no connection, and a
redirect is not followed, so no Authorization header reaches another address. Real sockets on
127.0.0.1: a listening "proxy" that counts connections and HTTP servers that record what they get."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from keybuzz import haproxy, jsonhttp
from keybuzz.modules.object_storage import s3, state

Answer = tuple[int, dict[str, str], bytes]
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
STATS_CSV = b"# pxname,svname,status\nbe_redis,redis-01,UP\nbe_redis,BACKEND,UP\n"
BUCKETS_XML = (b'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult '
               b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>o</ID></Owner><Buckets><Bucket>'
               b"<Name>keybuzz</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>"
               b"</ListAllMyBucketsResult>")


@contextmanager
def http_server(answer: Callable[[str], Answer]) -> Iterator[tuple[str, list[tuple[str, str, dict[str, str]]]]]:
    """An HTTP server on 127.0.0.1: its base URL and every request it got (method, path, headers)."""
    seen: list[tuple[str, str, dict[str, str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            seen.append((self.command, self.path, dict(self.headers)))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, headers, body = answer(self.path)
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _any

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A listening socket every proxy variable names; the list of peers that connected to it."""
    peers: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            peers.append(f"{peer[0]}:{peer[1]}")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, f"http://127.0.0.1:{listener.getsockname()[1]}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield peers
    finally:
        stop.set()
        thread.join()
        listener.close()


def _service(path: str) -> Answer:
    if path.startswith("/stats;csv"):
        return 200, {"Content-Type": "text/csv"}, STATS_CSV
    if path == "/":
        return 200, {"Content-Type": "application/xml"}, BUCKETS_XML
    return 200, {"Content-Type": "application/json"}, b'{"state": "running"}'


def test_no_internal_call_connects_to_the_proxy_the_environment_names(proxy: list[str]) -> None:
    with http_server(_service) as (base, seen):
        auth = jsonhttp.basic_auth("keybuzz-admin", "admin-password")
        assert asyncio.run(jsonhttp.request(f"{base}/patroni", auth=auth, timeout=2)) == (200, {"state": "running"})
        port = int(base.rsplit(":", 1)[1])
        assert haproxy.up_servers(asyncio.run(haproxy.read_stats("127.0.0.1", port)), "be_redis") == ["redis-01"]
        assert asyncio.run(state.get(f"{base}/cluster/status"))[0] == 200
        assert s3.bucket_names(s3.client(base, "access-key", "secret-key")) == ["keybuzz"]
    assert proxy == []
    assert [(method, path.split("?")[0]) for method, path, _ in seen] == [
        ("GET", "/patroni"), ("GET", "/stats;csv"), ("GET", "/cluster/status"), ("GET", "/")]
    assert seen[0][2]["Authorization"] == auth


def test_a_redirect_is_the_answer_and_authorization_never_reaches_its_target() -> None:
    with http_server(_service) as (elsewhere, reached):
        def redirect(path: str) -> Answer:
            return 307, {"Location": f"{elsewhere}{path}"}, b""

        with http_server(redirect) as (base, asked):
            auth = jsonhttp.basic_auth("keybuzz-admin", "admin-password")
            for method in ("GET", "POST"):
                status, _ = asyncio.run(jsonhttp.request(f"{base}/api/x", method=method, body={"a": 1} if
                                                         method == "POST" else None, auth=auth, timeout=2))
                assert status == 307
            port = int(base.rsplit(":", 1)[1])
            with pytest.raises(urllib.error.HTTPError, match="307"):
                asyncio.run(haproxy.read_stats("127.0.0.1", port))
            assert asyncio.run(state.get(f"{base}/dir/status"))[0] == 307
    assert len(asked) == 4
    assert reached == [], "a redirect was followed"
