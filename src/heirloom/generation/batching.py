"""Concurrent generation requests gathered into shared backend calls (used by `heirloom serve`).

A model is not thread-safe, so the server runs one backend call at a time; without
batching, eight clients wait in line for eight calls. `MicroBatcher` instead
collects the requests that arrive while the model is busy (plus those of a short
window after the first) and hands the compatible ones to one `generate` call:
same k, same sampling settings apart from the seed, same prompt mode. Each
request keeps its own seed through the backend's `seeds=` argument
(`supports_prompt_seeds`), and a sample's random draws do not depend on what
else is in the batch, so a batched answer is the answer the request would have
got alone (tested in float64; in float32 the batch's shape can move logits by
rounding, which flips a token only where two sit on a near-tie).

If a shared call fails, its requests are run again one by one, so a bad prompt
fails its own request only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .base import Backend, Completion, SamplingParams


@dataclass(eq=False)
class _Job:
    prompt: Any  # a prompt string or a message list
    k: int
    params: SamplingParams
    chat: bool | None
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Completion] | None = None
    error: BaseException | None = None
    group: tuple = ()  # jobs that can share one call: everything but the prompt and the seed agrees

    def __post_init__(self):
        self.group = (self.k, self.params.model_copy(update={"seed": 0}), self.chat, isinstance(self.prompt, str))


class MicroBatcher:
    def __init__(self, backend: Backend, lock: threading.Lock, window: float = 0.005, max_prompts: int = 64):
        self.backend, self.lock = backend, lock
        self.window, self.max_prompts = window, max_prompts
        self.calls = 0  # backend calls made, for logs and tests
        self._queue: list[_Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="heirloom-batcher", daemon=True)
        self._thread.start()

    def generate(self, prompts: list, k: int, params: SamplingParams, chat: bool | None) -> list[list[Completion]]:
        """Like `backend.generate(prompts, k, params, chat)`, sharing calls with concurrent requests."""
        jobs = [_Job(p, k, params, chat) for p in prompts]
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queue.extend(jobs)
            self._cond.notify()
        for job in jobs:
            job.done.wait()
        for job in jobs:
            if job.error is not None:
                raise job.error
        return [job.result for job in jobs]  # type: ignore[misc]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
            time.sleep(self.window)  # let a burst of concurrent requests arrive
            with self._cond:
                key = self._queue[0].group
                batch = [j for j in self._queue if j.group == key][: self.max_prompts]
                taken = {id(j) for j in batch}
                self._queue = [j for j in self._queue if id(j) not in taken]
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        first = batch[0]
        try:
            with self.lock:
                self.calls += 1
                outs = self.backend.generate([j.prompt for j in batch], k=first.k, params=first.params,
                                             chat=first.chat, progress=False, seeds=[j.params.seed for j in batch])
        except Exception as e:
            if len(batch) == 1:
                first.error = e
                first.done.set()
                return
            for job in batch:  # find the request that failed; the others still get their answers
                self._run([job])
            return
        for job, comps in zip(batch, outs):
            job.result = comps
            job.done.set()
