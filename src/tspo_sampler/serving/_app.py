"""The ASGI app of ``tspo serve``: routes, authentication, error responses and the request log.

* ``POST /v1/chat/completions``: each ``video_url`` part becomes the frames TSPO picks for its question; the
  rest of the request is forwarded unchanged. The client gets the upstream's answer plus a top-level
  ``"tspo"`` object (in the first event when streaming; events are relayed as they arrive).
* ``GET /v1/models``: passed through.
* ``GET /health``: whether the sampler is loaded and the upstream answers (200 when both, else 503).

FastAPI is imported when an app is built, never at ``import tspo_sampler``. No ``from __future__ import
annotations`` here: FastAPI reads the routes' annotations (``Request``, imported in :func:`build_app`) at runtime.
"""

import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

from ..scoring._settings import SelectionSettings
from ._errors import AuthenticationError, BadRequestError, ServeError, error_body
from ._options import UPSTREAM_KEY_ENV, ServeOptions
from ._proxy import Prepared, Proxy
from ._upstream import Upstream, relay_events

__all__ = ["create_app"]

logger = logging.getLogger("tspo_sampler.serving")

_PASSED_HEADERS = ("content-type", "cache-control")


def create_app(
    sampler: Any,
    *,
    upstream: str,
    selection: SelectionSettings | None = None,
    upstream_format: str = "images",
    allow_local: Sequence[str | os.PathLike[str]] = (),
    allow_private_urls: bool = False,
    max_concurrency: int = 4,
    max_queue: int = 16,
    max_video_mb: float = 2048.0,
    api_key: str | None = None,
    upstream_api_key: str | None = None,
    upstream_timeout: float = 600.0,
    fetch_timeout: float = 60.0,
    jpeg_quality: int = 90,
    log_content: bool = False,
) -> Any:
    """An OpenAI-compatible proxy (a FastAPI app) that puts ``sampler``'s frame selection in front of
    ``upstream``, a video-LLM server (vLLM, SGLang, ``transformers serve``): clients keep their code and
    point ``base_url`` here. Run it with any ASGI server (``uvicorn.run(app, port=8100)``).

    The arguments are :class:`~tspo_sampler.serving.ServeOptions`' fields. ``upstream_api_key`` defaults to
    ``$TSPO_UPSTREAM_API_KEY``. ``selection`` holds the default ``k``, ``method``, ``fps``, ``search``...
    (default ``SelectionSettings()``); a request's ``"tspo"`` field overrides ``k``, ``method``, ``search``
    and the question.
    """
    if upstream_api_key is None:
        upstream_api_key = os.environ.get(UPSTREAM_KEY_ENV) or None
    options = ServeOptions(
        upstream=upstream, selection=selection if selection is not None else SelectionSettings(),
        upstream_format=upstream_format, allow_local=tuple(allow_local), allow_private_urls=allow_private_urls,
        max_concurrency=max_concurrency, max_queue=max_queue, max_video_mb=max_video_mb, api_key=api_key,
        upstream_api_key=upstream_api_key,
        upstream_timeout=upstream_timeout, fetch_timeout=fetch_timeout, jpeg_quality=jpeg_quality,
        log_content=log_content,
    )
    return build_app(sampler, options)


def build_app(sampler: Any, options: ServeOptions) -> Any:
    """The app for already-checked :class:`ServeOptions`."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException

    proxy = Proxy(sampler, options)
    upstream = Upstream(options.upstream, api_key=options.upstream_api_key,
                        pass_client_key=options.api_key is None, timeout=options.upstream_timeout)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        try:
            yield
        finally:
            await upstream.aclose()
            proxy.close()

    app = FastAPI(title="tspo serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.proxy = proxy

    def check_key(request: Request) -> None:
        if options.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), options.api_key.encode()):
            raise AuthenticationError("missing or wrong API key (send Authorization: Bearer <key>)",
                                      code="invalid_api_key")

    def passed(response: Any) -> Any:
        """The upstream's response as it was: status, body and content type."""
        headers = {k: v for k, v in response.headers.items() if k.lower() in _PASSED_HEADERS}
        return Response(content=response.content, status_code=response.status_code, headers=headers)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> Any:
        return JSONResponse(error_body(exc), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:  # unknown path or method
        body = {"error": {"message": str(exc.detail), "type": "invalid_request_error", "param": None,
                          "code": None}}
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Any:
        logger.error("request failed: %s", type(exc).__name__, exc_info=exc)
        body = {"error": {"message": "internal server error (see the server's log)", "type": "server_error",
                          "param": None, "code": None}}
        return JSONResponse(body, status_code=500)

    async def read_body(request: Request) -> Any:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > proxy.max_body_bytes:
            raise BadRequestError("the request body is larger than --max-video-mb allows", code="video_too_large")
        raw = await request.body()
        try:
            return json.loads(raw)
        except ValueError:
            raise BadRequestError("the request body is not valid JSON") from None

    def log_line(rid: str, prepared: Prepared | None, status: int | str, started: float) -> None:
        videos = prepared.videos if prepared is not None else []
        text = (f"request {rid} videos={len(videos)} k={[v['k'] for v in videos]} "
                f"select_s={sum(v['seconds'] for v in videos):.3f} upstream={status} "
                f"total_s={time.perf_counter() - started:.3f}")
        if options.log_content and prepared is not None:
            text += f" questions={json.dumps(prepared.questions)}"
        logger.info(text)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        started, rid = time.perf_counter(), uuid.uuid4().hex[:12]
        prepared: Prepared | None = None
        status: int | str = "-"
        try:
            check_key(request)
            prepared = await proxy.prepare(await read_body(request))
            if prepared.body.get("stream") is True:
                response = await upstream.open_stream("/chat/completions", prepared.body, request.headers)
                status = response.status_code
                if response.status_code != 200:
                    await response.aread()
                    await response.aclose()
                    return passed(response)
                headers = {k: v for k, v in response.headers.items() if k.lower() in _PASSED_HEADERS}
                headers["x-request-id"] = rid
                return StreamingResponse(relay_events(response, prepared.tspo), status_code=200, headers=headers)
            response = await upstream.post("/chat/completions", prepared.body, request.headers)
            status = response.status_code
            if response.status_code != 200:
                return passed(response)
            try:
                answer = response.json()
            except ValueError:
                return passed(response)
            if isinstance(answer, dict):
                answer["tspo"] = prepared.tspo
            return JSONResponse(answer, headers={"x-request-id": rid})
        except ServeError as exc:
            status = status if status != "-" else f"error-{exc.status}"
            raise
        finally:
            log_line(rid, prepared, status, started)

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        check_key(request)
        return passed(await upstream.get("/models", request.headers))

    @app.get("/health")
    async def health(request: Request) -> Any:
        try:
            reply = await upstream.get("/models", request.headers, timeout=5.0)
            answers = reply.status_code < 500
        except ServeError:
            answers = False
        body = {"status": "ok" if answers else "upstream unavailable", "sampler": "loaded",
                "upstream": "answers" if answers else "unavailable"}
        return JSONResponse(body, status_code=200 if answers else 503)

    return app
