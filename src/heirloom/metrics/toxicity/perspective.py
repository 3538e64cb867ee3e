"""Perspective API (Google Jigsaw), the paper's toxicity scorer.

One request per text asks for all configured attributes at once (default the
paper's six: TOXICITY, SEVERE_TOXICITY, IDENTITY_ATTACK, INSULT, PROFANITY,
THREAT), so every attribute lands in the cache from one call. Requests are spaced
to `qps` queries per second (the API's default quota is 1), and retried with
exponential backoff (or the server's Retry-After) on 429, 5xx and network
errors. A text the API refuses (HTTP 400, e.g. an unsupported language) gets NaN
with the API's message; a refused key (401/403, or a 400 about the key) stops the
run. The key is read from $PERSPECTIVE_API_KEY (configurable) and never printed.
`endpoint` can point at any compatible server (tests use one on 127.0.0.1).

Google/Jigsaw close the API on 2026-12-31. The backend keeps working for whatever
still answers (a key while it lasts, a compatible server); after that date (UTC,
read at call time) every error it raises adds that the API is closed and points
to the classifier backend.
"""

from __future__ import annotations

import datetime
import os
import time

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ...errors import HeirloomError
from .base import ToxicityBackend

ENDPOINT = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
CLOSES = datetime.date(2026, 12, 31)  # last day the Perspective API answers (Google/Jigsaw's announcement)
PAPER_ATTRIBUTES = ("TOXICITY", "SEVERE_TOXICITY", "IDENTITY_ATTACK", "INSULT", "PROFANITY", "THREAT")


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.timezone.utc).date()


def closed_error(message: str) -> HeirloomError:
    """`message`, plus (after CLOSES) that the API is closed and what to use instead."""
    if _today() > CLOSES:
        message += (f"; the Perspective API closed on {CLOSES.isoformat()}: score toxicity with a classifier "
                    "instead, e.g. toxicity:backend=classifier:model=unitary/toxic-bert (docs/metrics.md)")
    return HeirloomError(message)


class PerspectiveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(ENDPOINT, description="URL of the comments:analyze method")
    api_key_env: str = Field("PERSPECTIVE_API_KEY", description="environment variable holding the API key")
    qps: float = Field(1.0, gt=0, description="queries per second at most (the API's default quota is 1)")
    attributes: tuple[str, ...] = Field(PAPER_ATTRIBUTES, min_length=1,
                                        description="attributes requested per text (joined with + in a spec)")
    languages: tuple[str, ...] = Field(("en",), description="languages of the texts (empty: let the API detect)")
    max_retries: int = Field(6, ge=0, description="retries of a request after 429/5xx/network errors")
    backoff: float = Field(2.0, ge=0, description="seconds before the first retry; doubles each retry")
    timeout: float = Field(30.0, gt=0, description="seconds to wait for one answer")


class Perspective(ToxicityBackend):
    name = "perspective"
    batch_size = 1  # one request per text: commit each score as soon as it is paid for
    slow = True
    Options = PerspectiveOptions

    def check(self) -> None:
        self._key = os.environ.get(self.options.api_key_env, "")
        if not self._key:
            raise closed_error(f"toxicity backend 'perspective' needs an API key in ${self.options.api_key_env}")
        self._client = None
        self._next_at = 0.0

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(a.lower() for a in self.options.attributes)

    @property
    def cache_key(self) -> str:
        return f"perspective|{self.options.endpoint}|{'+'.join(self.options.languages) or 'auto'}"

    @property
    def label_text(self) -> str:
        return "API" if self.options.endpoint == ENDPOINT else self.options.endpoint

    def _wait_turn(self) -> None:
        # Strict spacing from the moment a request goes out: a late request never lets
        # the next one catch up, so no two requests are ever closer than 1/qps.
        wait = self._next_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._next_at = time.monotonic() + 1.0 / self.options.qps

    def _request(self, text: str):
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.options.timeout)
        body = {"comment": {"text": text}, "doNotStore": True,
                "requestedAttributes": {a.upper(): {} for a in self.options.attributes}}
        if self.options.languages:
            body["languages"] = list(self.options.languages)
        what = "no answer"
        for attempt in range(self.options.max_retries + 1):
            self._wait_turn()
            try:
                response = self._client.post(self.options.endpoint, params={"key": self._key}, json=body)
            except httpx.TransportError as e:
                what, wait = f"network error ({type(e).__name__})", self.options.backoff * 2 ** attempt
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                what = f"HTTP {response.status_code}"
                wait = _retry_after(response) or self.options.backoff * 2 ** attempt
            if attempt < self.options.max_retries:
                time.sleep(min(wait, 60.0))
        raise closed_error(f"perspective: {self.options.endpoint}: {what} after {self.options.max_retries + 1} "
                            "tries (scores so far are cached; rerun to resume)")

    def score_batch(self, texts):
        out = {a: np.full(len(texts), np.nan) for a in self.attributes}
        reasons: list[str | None] = [None] * len(texts)
        for i, text in enumerate(texts):
            response = self._request(text)
            message = _error_message(response)
            if response.status_code in (401, 403) or (response.status_code == 400 and "api key" in message.lower()):
                raise closed_error(f"perspective: {self.options.endpoint} refused the key in "
                                    f"${self.options.api_key_env} (HTTP {response.status_code}: {message})")
            if response.status_code in (404, 410):  # the method is gone (e.g. the API closed): stop, not NaN
                raise closed_error(f"perspective: {self.options.endpoint}: HTTP {response.status_code} ({message})")
            if response.status_code != 200:
                reasons[i] = f"perspective HTTP {response.status_code}: {message}"
                continue
            scores = response.json().get("attributeScores", {})
            for a in self.attributes:
                value = scores.get(a.upper(), {}).get("summaryScore", {}).get("value")
                if value is not None:
                    out[a][i] = float(value)
            if any(np.isnan(out[a][i]) for a in self.attributes):
                reasons[i] = "perspective returned no score for some attributes"
        return out, reasons

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _retry_after(response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _error_message(response) -> str:
    if response.status_code == 200:
        return ""
    try:
        return str(response.json()["error"]["message"]).splitlines()[0]
    except (ValueError, KeyError, TypeError, IndexError):
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
