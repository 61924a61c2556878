"""JSON over HTTP to a service's own API (Patroni's REST API, RabbitMQ's management API), from the
control machine, with basic auth built in memory: a password never goes into an argv (curl -u would
put it there) nor into a log line.

`open_url` is the one way keybuzz speaks HTTP to the services it deploys. It goes straight to the
address: no proxy, whatever `http_proxy`, `https_proxy` or `all_proxy` the operator's shell sets
(urllib's default opener would send the request, its Authorization header with it, to that proxy).
It follows no redirect: a 3xx is the answer (urllib would send the same header to wherever the
Location points)."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from http.client import HTTPResponse
from typing import Any


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def open_url(request: urllib.request.Request | str, *, timeout: float) -> HTTPResponse:
    """urlopen without proxies and without redirects; an HTTP error status raises HTTPError."""
    return _OPENER.open(request, timeout=timeout)


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _request(url: str, method: str, body: Any, auth: str | None, timeout: float) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", auth)
    try:
        with open_url(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    try:
        return status, json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return status, text


async def request(url: str, *, method: str = "GET", body: Any = None, auth: str | None = None,
                  timeout: float) -> tuple[int, Any]:
    """(status, parsed JSON body, or the raw text when it is not JSON); HTTP errors are statuses,
    connection failures raise OSError/TimeoutError."""
    return await asyncio.to_thread(_request, url, method, body, auth, timeout)
