"""One chat request through the proxy: check it, fetch each video, select its frames, rewrite the request.

Kept apart from the web framework (:mod:`._app` wires it to FastAPI) so the steps read in order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ._errors import BadRequestError
from ._media import MediaRules, load_video
from ._options import ServeOptions
from ._rewrite import find_videos, frame_parts, rewrite_request
from ._selector import Selector
from ._settings import request_settings

__all__ = ["Prepared", "Proxy"]

_MiB = 1 << 20


@dataclass
class Prepared:
    """A request ready to forward: the body the upstream gets, the ``tspo`` object the client gets back, and
    what the log line says."""

    body: dict[str, Any]
    tspo: dict[str, Any]
    questions: list[str] = field(default_factory=list)

    @property
    def videos(self) -> list[dict[str, Any]]:
        return self.tspo["videos"]


class Proxy:
    """The selection side of the server: the sampler, the media rules and the selection pool."""

    def __init__(self, sampler: Any, options: ServeOptions) -> None:
        self.sampler = sampler
        self.options = options
        self.rules = MediaRules.build(
            options.allow_local, allow_private_urls=options.allow_private_urls,
            max_bytes=int(options.max_video_mb * _MiB), fetch_timeout=options.fetch_timeout,
        )
        self.selector = Selector(sampler, max_concurrency=options.max_concurrency, max_queue=options.max_queue)

    @property
    def max_body_bytes(self) -> int:
        """Largest request body read: one video at the size limit as base64, plus 16 MiB for the rest."""
        return self.rules.max_bytes * 4 // 3 + 16 * _MiB

    async def prepare(self, body: Any) -> Prepared:
        """Check the request, select the frames of each ``video_url`` part, and build the forwarded body."""
        if not isinstance(body, dict):
            raise BadRequestError("the request body must be a JSON object")
        settings = request_settings(body.get("tspo"), self.options.selection)
        videos = find_videos(body, settings.question)
        if self.options.upstream_format == "vllm" and len(videos) > 1:
            raise BadRequestError(
                f"this server forwards videos in vLLM's form, one video per request (media_io_kwargs is per "
                f"request), and the request has {len(videos)}", param=videos[1].param, code="too_many_videos")
        replacements, infos = [], []
        chosen = settings.selection
        for video in videos:
            source = await load_video(video.url, self.rules, param=f"{video.param}.video_url.url")
            selection, seconds = await self.selector.select(source, video.question, chosen, param=video.param)
            replacements.append(await asyncio.to_thread(
                frame_parts, selection, self.options.upstream_format, self.options.jpeg_quality))
            infos.append({
                "message": video.message,
                "part": video.part,
                "indices": [int(i) for i in selection.indices],
                "timestamps": [round(float(t), 6) for t in selection.timestamps],
                "k": chosen.k,
                "method": selection.method,
                "search": chosen.search,
                "seconds": round(seconds, 4),
            })
        forwarded = {key: value for key, value in body.items() if key != "tspo"}
        if videos:
            forwarded = rewrite_request(forwarded, videos, replacements)
        return Prepared(forwarded, {"videos": infos}, [v.question for v in videos])

    def close(self) -> None:
        self.selector.close()
