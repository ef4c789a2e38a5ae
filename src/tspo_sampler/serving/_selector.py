"""Run selections off the event loop: a bounded pool, a bounded queue, and one encoding per video at a time.

The sampler is synchronous (torch), so each selection runs in a worker thread. At most ``max_concurrency``
run at once; up to ``max_queue`` more wait for a slot, and a request beyond that is answered 429 at once
instead of piling up.

Concurrent requests about a video whose features are not cached yet would each decode and encode it. Instead
the first one encodes while the others with the same video (same identity and candidate settings) wait for
it; they then run against the shared feature cache, which costs each of them one text encoding. Without a
feature cache there is nothing to share and every request encodes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .._errors import VideoReadError
from .._result import Selection
from ..scoring._settings import SelectionSettings
from ._errors import BadRequestError, ServerBusyError, scrub
from ._media import VideoSource

__all__ = ["Selector", "SingleFlight"]

T = TypeVar("T")


class SingleFlight:
    """Per-key gate: the first caller of a key not yet known to be warm runs alone; callers that waited on it
    run after it, freely (the feature cache then holds what they need)."""

    def __init__(self, remember: int = 4096) -> None:
        self._mu = threading.Lock()
        self._gates: dict[Hashable, tuple[threading.Lock, int]] = {}
        self._warm: OrderedDict[Hashable, None] = OrderedDict()
        self._remember = remember

    def _is_warm(self, key: Hashable) -> bool:
        with self._mu:
            if key in self._warm:
                self._warm.move_to_end(key)
                return True
            return False

    def _enter(self, key: Hashable) -> threading.Lock:
        with self._mu:
            gate, users = self._gates.get(key, (None, 0))
            gate = gate or threading.Lock()
            self._gates[key] = (gate, users + 1)
            return gate

    def _leave(self, key: Hashable, *, warm: bool) -> None:
        with self._mu:
            gate, users = self._gates[key]
            if users <= 1:
                del self._gates[key]
            else:
                self._gates[key] = (gate, users - 1)
            if warm:
                self._warm[key] = None
                self._warm.move_to_end(key)
                while len(self._warm) > self._remember:
                    self._warm.popitem(last=False)

    def run(self, key: Hashable, work: Callable[[], T]) -> T:
        if self._is_warm(key):
            return work()
        gate = self._enter(key)
        warm = False
        try:
            with gate:
                if not self._is_warm(key):
                    result = work()
                    warm = True
                    return result
        finally:
            self._leave(key, warm=warm)
        return work()


class Selector:
    """Selections for the proxy: ``await selector.select(source, question, settings)``."""

    def __init__(self, sampler: Any, *, max_concurrency: int, max_queue: int) -> None:
        self.sampler = sampler
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="tspo-select")
        self._pending = 0  # running + waiting; only touched on the event loop's thread
        self._flights = SingleFlight() if getattr(sampler, "cache", None) is not None else None

    async def select(self, source: VideoSource, question: str, settings: SelectionSettings,
                     *, param: str) -> tuple[Selection, float]:
        """The selection and the seconds it took (waiting for a slot not counted)."""
        if self._pending >= self.max_concurrency + self.max_queue:
            raise ServerBusyError(
                f"the server is busy: {self.max_concurrency} selections running and {self.max_queue} waiting; "
                "retry later", code="queue_full")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._run, source, question, settings, param)
        finally:
            self._pending -= 1

    def _run(self, source: VideoSource, question: str, settings: SelectionSettings,
             param: str) -> tuple[Selection, float]:
        start = time.perf_counter()
        options = dataclasses.asdict(settings)

        def work() -> Selection:
            return self.sampler.select_frames(source.video, question, return_frames=True, **options)

        try:
            if self._flights is None:
                selection = work()
            else:
                key = (source.key, settings.fps, settings.max_candidates, settings.candidate_mode,
                       settings.decoder, settings.search)
                selection = self._flights.run(key, work)
        except VideoReadError as exc:
            raise BadRequestError(f"cannot read the video ({source.label}): {scrub(exc.reason)}", param=param,
                                  code="unreadable_video") from None
        except (ValueError, TypeError) as exc:
            raise BadRequestError(scrub(str(exc)), param=param) from None
        return selection, time.perf_counter() - start

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
