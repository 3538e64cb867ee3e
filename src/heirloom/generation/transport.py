"""JSON POSTs to one or more replicas of an HTTP service, with bounded concurrency and retries.

Several endpoints (the same model served by several vLLM or llama.cpp
processes) are one pool: each request goes to the reachable endpoint with the
fewest requests in flight, and no endpoint ever holds more than
`max_concurrency` at once. A request that fails on one endpoint is retried on
another at once when one is free of trouble; an endpoint that signals trouble
of its own (429, 503, timeouts, connection failures) rests for its Retry-After
(or the backoff) before it gets new work, so a dead or overloaded replica slows
the run down instead of stopping it.

`post` retries 429, 408, 5xx, timeouts and dropped connections with exponential
backoff and jitter, waiting at least what `Retry-After` asks; any other 4xx is
final (`Rejected`, with the server's message). A refused connection on an
endpoint that never answered takes it out of the pool; when that leaves none,
the error names them all at once (nothing listens there, and retrying would
only delay the error). `map` fans work out over a thread pool sized to the
pool's capacity; the first error cancels the rest.

Left out: streaming, HTTP/2, rate limiting by tokens per minute.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import HeirloomError


class Rejected(HeirloomError):
    """The server refused the request itself (a 4xx other than 408/429): retrying cannot help."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Endpoint:
    url: str
    in_flight: int = 0
    reached: bool = False  # answered at least once (any HTTP status)
    refused: bool = False  # refused a connection before ever answering: out of the pool
    rest_until: float = 0.0  # monotonic time before which it gets no new work (after a failure)


class RetryingClient:
    def __init__(self, base_urls: str | Sequence[str], label: str, headers: dict, max_concurrency: int,
                 max_retries: int, timeout: float, backoff_base: float, backoff_max: float):
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls or len(set(urls)) != len(urls):
            raise HeirloomError(f"endpoints {urls}: give one or more distinct URLs")
        self.endpoints = [Endpoint(u) for u in urls]
        self.label, self.headers = label, headers
        self.max_concurrency, self.max_retries, self.timeout = max_concurrency, max_retries, timeout
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.stats = {"requests": 0, "retries": 0, "by_endpoint": {u: 0 for u in urls}}
        self._client = None
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)  # signalled when a request ends
        self._turn = 0  # round robin among equally loaded endpoints

    @property
    def capacity(self) -> int:
        """Requests the pool can hold in flight at once."""
        return self.max_concurrency * len(self.endpoints)

    def map(self, fn: Callable, items: list, on_done: Callable, total: int, initial: int = 0,
            progress: bool = True, desc: str = "", unit: str = "it") -> None:
        """Run fn(item, cancel) over items, calling on_done(index, result) as each finishes
        (it returns whether to advance the progress bar)."""
        from tqdm.auto import tqdm

        cancel = threading.Event()
        bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not progress, leave=False)
        pool = ThreadPoolExecutor(max_workers=self.capacity)
        try:
            futures = {pool.submit(fn, item, cancel): index for index, item in enumerate(items)}
            for future in as_completed(futures):
                if on_done(futures[future], future.result()):
                    bar.update(1)
        except BaseException:
            cancel.set()  # sleeping retries wake up and stop; queued work never starts
            with self._free:
                self._free.notify_all()  # and so do requests waiting for an endpoint
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()

    def post(self, path: str, body: dict, cancel: threading.Event | None = None) -> dict:
        cancel = cancel or threading.Event()
        last, attempts, failed = "", self.max_retries + 1, None
        for attempt in range(attempts):
            endpoint = self._acquire(cancel, avoid=failed)
            try:
                outcome = self._try(endpoint, path, body)
            finally:
                self._release(endpoint)
            if isinstance(outcome, dict):
                return outcome
            last, wait, overloaded = outcome
            failed = endpoint
            if attempt + 1 == attempts:
                break
            backoff = min(self.backoff_max, self.backoff_base * 2 ** attempt)
            backoff *= 0.5 + random.random() / 2  # jitter: concurrent retries do not hit the server in step
            pause = min(self.backoff_max, max(wait or 0.0, backoff))
            with self._lock:
                self.stats["retries"] += 1
                now = time.monotonic()
                if overloaded:  # the whole endpoint is in trouble, not just this request: no new work for a while
                    endpoint.rest_until = max(endpoint.rest_until, now + pause)
                elsewhere = any(e is not endpoint and not e.refused and e.rest_until <= now for e in self.endpoints)
            if not elsewhere:  # another endpoint takes the retry at once; otherwise wait out the backoff
                cancel.wait(pause)
        where = self.endpoints[0].url + path if len(self.endpoints) == 1 else f"{path} on {len(self.endpoints)} endpoints"
        raise HeirloomError(f"{where} {self.label}: failed after {attempts} attempt(s); last error: {last}")

    def _try(self, endpoint: Endpoint, path: str, body: dict) -> dict | tuple[str, float | None, bool]:
        """One request: the JSON on success; when worth retrying, (what went wrong, Retry-After,
        whether the endpoint itself is in trouble: 429, 503, timeouts, connection failures); raises
        when it is not."""
        import httpx

        url = f"{endpoint.url}{path}"
        try:
            response = self._http().post(url, json=body)
        except httpx.ConnectError as e:
            self._refused(endpoint, e)
            return f"{endpoint.url}: connection failed ({_reason(e)})", None, True
        except httpx.TimeoutException:
            return f"{endpoint.url}: no response within {self.timeout:g} s", None, True
        except httpx.TransportError as e:  # the server dropped the connection mid-request
            return f"{endpoint.url}: connection dropped ({type(e).__name__}: {_reason(e)})", None, True
        endpoint.reached = True
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                raise HeirloomError(f"{url} {self.label}: response is not JSON: {response.text[:120]!r}") from None
        message = _error_message(response)
        if response.status_code not in (408, 429) and response.status_code < 500:
            raise Rejected(response.status_code, f"{url} {self.label}: HTTP {response.status_code}: {message}")
        status = response.status_code
        return (f"{endpoint.url}: HTTP {status}: {message}", _retry_after(response.headers.get("retry-after")),
                status in (429, 503))

    # --- the endpoint pool ---------------------------------------------------------------
    def _acquire(self, cancel: threading.Event, avoid: Endpoint | None) -> Endpoint:
        """The endpoint for the next try: fewest in flight among those under capacity and not
        resting, preferring one other than `avoid` (where the last try failed); waits otherwise."""
        with self._free:
            while True:
                if cancel.is_set():
                    raise HeirloomError(f"{self._name()}: cancelled after another request failed")
                live = [e for e in self.endpoints if not e.refused]
                if not live:
                    raise HeirloomError(f"cannot connect to {self._name()}; is the server running?")
                now = time.monotonic()
                ready = [e for e in live if e.in_flight < self.max_concurrency and e.rest_until <= now]
                choice = [e for e in ready if e is not avoid] or ready
                if choice:
                    self._turn += 1
                    n = len(self.endpoints)
                    endpoint = min(choice, key=lambda e: (e.in_flight, (self.endpoints.index(e) - self._turn) % n))
                    endpoint.in_flight += 1
                    self.stats["requests"] += 1
                    self.stats["by_endpoint"][endpoint.url] += 1
                    return endpoint
                resting = [e.rest_until - now for e in live if e.rest_until > now]
                self._free.wait(min(resting) if resting else None)  # a release notifies

    def _release(self, endpoint: Endpoint) -> None:
        with self._free:
            endpoint.in_flight -= 1
            self._free.notify_all()

    def _refused(self, endpoint: Endpoint, error: Exception) -> None:
        """A refused connection on an endpoint that never answered: nothing listens there."""
        with self._free:
            if endpoint.reached:
                return  # it was up: a restart or a hiccup, retried like any transient failure
            endpoint.refused = True
            self._free.notify_all()
            live = [e for e in self.endpoints if not e.refused]
            if not live:
                raise HeirloomError(f"cannot connect to {self._name()} ({_reason(error)}); is the server running?")
        warnings.warn(f"cannot connect to {endpoint.url} ({_reason(error)}); going on with the other "
                      f"{len(live)} endpoint(s) {self.label}", stacklevel=2)

    def _name(self) -> str:
        return ", ".join(e.url for e in self.endpoints)

    def _http(self):
        import httpx

        with self._lock:
            if self._client is None:
                n = self.capacity
                self._client = httpx.Client(headers=self.headers, timeout=self.timeout,
                                            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _error_message(response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return " ".join(str(message or response.text or response.reason_phrase).split())[:300]


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
