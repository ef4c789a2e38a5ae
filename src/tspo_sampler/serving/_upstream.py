"""Talking to the upstream server: forwarding, error mapping, and relaying server-sent events as they arrive.

An upstream that cannot be reached is a 502, one that does not answer in time a 504; an upstream that answers
with its own 4xx/5xx is passed through unchanged (status, body and content type).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ._errors import ServeError, UpstreamTimeoutError, UpstreamUnreachableError, error_body

__all__ = ["Upstream", "relay_events"]

_MAX_FIRST_EVENT = 1 << 20  # bytes buffered while looking for the end of the first event


@contextmanager
def upstream_errors() -> Iterator[None]:
    """httpx's timeouts as 504 and its transport errors as 502 (no URL or address in the message)."""
    import httpx

    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeoutError(f"the upstream server did not answer in time ({type(exc).__name__})",
                                   code="upstream_timeout") from None
    except httpx.TransportError as exc:
        raise UpstreamUnreachableError(f"the upstream server is unreachable ({type(exc).__name__})",
                                       code="upstream_unreachable") from None


class Upstream:
    """The upstream's base URL, its key, and one shared ``httpx.AsyncClient``."""

    def __init__(self, base_url: str, *, api_key: str | None, pass_client_key: bool, timeout: float) -> None:
        import httpx

        self.base_url = base_url
        self.api_key = api_key
        self.pass_client_key = pass_client_key
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), follow_redirects=False, trust_env=False
        )

    def headers(self, incoming: Mapping[str, str], *, stream: bool = False) -> dict[str, str]:
        out = {"Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key is not None:
            out["Authorization"] = f"Bearer {self.api_key}"
        elif self.pass_client_key and incoming.get("authorization"):
            out["Authorization"] = incoming["authorization"]
        return out

    async def post(self, path: str, body: dict[str, Any], incoming: Mapping[str, str]) -> Any:
        with upstream_errors():
            return await self.client.post(self.base_url + path, json=body, headers=self.headers(incoming))

    async def open_stream(self, path: str, body: dict[str, Any], incoming: Mapping[str, str]) -> Any:
        """The upstream's response with its body not read yet (the caller relays or reads it, then closes)."""
        request = self.client.build_request("POST", self.base_url + path, json=body,
                                            headers=self.headers(incoming, stream=True))
        with upstream_errors():
            return await self.client.send(request, stream=True)

    async def get(self, path: str, incoming: Mapping[str, str], *, timeout: float | None = None) -> Any:
        extra = {} if timeout is None else {"timeout": timeout}
        with upstream_errors():
            return await self.client.get(self.base_url + path, headers=self.headers(incoming), **extra)

    async def aclose(self) -> None:
        await self.client.aclose()


def _event_end(buffer: bytes) -> int:
    """Where the first event of ``buffer`` ends (after its blank line), or -1."""
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep)) >= 0]
    return min(ends) if ends else -1


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def with_tspo(event: bytes, tspo: dict[str, Any]) -> bytes:
    """The first event with ``"tspo"`` added to its JSON data; an event of another kind gets one of ours first."""
    lines = event.decode("utf-8", "replace").splitlines()
    data = "\n".join(line[5:].lstrip(" ") for line in lines if line.startswith("data:"))
    try:
        payload = json.loads(data)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return _event({"tspo": tspo}) + event
    payload["tspo"] = tspo
    others = [line for line in lines if line and not line.startswith("data:")]
    head = "".join(line + "\n" for line in others).encode()
    return head + _event(payload)


async def relay_events(response: Any, tspo: dict[str, Any]) -> AsyncIterator[bytes]:
    """The upstream's event stream as it arrives, with ``tspo`` in the first event. A failure mid-stream
    (the status is already sent) ends the stream with an ``error`` event in OpenAI's shape."""
    buffer, started = b"", False
    try:
        with upstream_errors():
            async for chunk in response.aiter_bytes():
                if started:
                    yield chunk
                    continue
                buffer += chunk
                end = _event_end(buffer)
                if end < 0 and len(buffer) < _MAX_FIRST_EVENT:
                    continue
                started = True
                yield (with_tspo(buffer[:end], tspo) + buffer[end:]) if end >= 0 else _event({"tspo": tspo}) + buffer
        if not started:
            yield _event({"tspo": tspo}) + buffer
    except ServeError as exc:
        yield _event(error_body(exc))
    finally:
        await response.aclose()
