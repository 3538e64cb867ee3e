"""Toxicity backends: profanity-check exactly, Perspective against a loopback server (and its
closing date), and the disk cache that prevents rescoring. The classifier backend has its own file."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import profanity_check
import pytest

from heirloom.errors import HeirloomError
from heirloom.metrics import get_metric
from heirloom.metrics.toxicity.perspective import PAPER_ATTRIBUTES

DATA = Path(os.environ["HEIRLOOM_DATA"])  # set by conftest.py


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HEIRLOOM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def texts():
    outputs = json.loads((DATA / "alpaca_eval_outputs" / "Conifer-7B-DPO.json").read_text())
    rtp = [json.loads(line)["prompt"] for line in (DATA / "rtp" / "rtp_toxic_test_set.json").open()]
    return [r["output"] for r in outputs[:150]] + rtp[:150]  # benign answers and highly toxic prompts


def test_profanity_check_equals_predict_prob_exactly(texts):
    expected = profanity_check.predict_prob(texts)
    assert expected.max() > 0.9 and expected.min() < 0.01  # the sample spans the scale
    for spec in ("toxicity", "toxicity:cache=false"):
        assert np.array_equal(get_metric(spec).score(texts), expected)
    assert np.array_equal(get_metric("toxicity").score(texts), expected)  # read back from the cache


def test_empty_texts_are_skipped_with_reason():
    values, reasons = get_metric("toxicity").score_with_reasons(["", "   ", "you are nice"])
    assert np.isnan(values[:2]).all() and "empty text" in reasons[0] and not np.isnan(values[2])


def test_cache_avoids_rescoring(texts, monkeypatch, cache_dir):
    calls = []
    real = profanity_check.predict_prob

    def counting(batch):
        calls.append(len(batch))
        return real(batch)

    monkeypatch.setattr(profanity_check, "predict_prob", counting)
    first = get_metric("toxicity").score(texts[:50] + texts[:10])  # duplicates are scored once
    assert calls == [50]
    again = get_metric("toxicity").score(texts[:50])
    assert calls == [50] and np.array_equal(again, first[:50])
    get_metric("toxicity").score(texts[40:60])
    assert calls == [50, 10]  # only the 10 new texts
    get_metric("toxicity:cache=false").score(texts[:5])
    assert calls == [50, 10, 5]
    assert (cache_dir / "scores.sqlite").exists()


class FakePerspective:
    """A Perspective-like server on 127.0.0.1; `plan[text]` lists statuses to answer before 200."""

    def __init__(self):
        self.requests, self.plan = [], {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["comment"]["text"]
                fake.requests.append({"time": time.monotonic(), "text": text, "body": body,
                                      "key": parse_qs(urlparse(self.path).query).get("key", [""])[0]})
                status = fake.plan.get(text, []).pop(0) if fake.plan.get(text) else 200
                if status == 200:
                    payload = {"attributeScores": {a: {"summaryScore": {"value": score(text, a), "type": "PROBABILITY"}}
                                                   for a in body["requestedAttributes"]}, "languages": ["en"]}
                else:
                    payload = {"error": {"code": status, "message": f"fake error {status} for this comment"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0.2")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1alpha1/comments:analyze"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def score(text, attribute):
    return round((len(text) % 50) / 100 + PAPER_ATTRIBUTES.index(attribute) / 10, 6)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "test-key")
    server = FakePerspective()
    yield server
    server.close()


def test_perspective_scores_caches_all_attributes(fake):
    texts = ["You are a wonderful person.", "Go away.", "", "Go away.", "Thanks for the help!"]
    metric = get_metric(f"toxicity:backend=perspective:endpoint={fake.url}:qps=50")
    values, reasons = metric.score_with_reasons(texts)
    assert len(fake.requests) == 3  # three distinct non-empty texts
    assert np.isnan(values[2]) and "empty text" in reasons[2]
    for i in (0, 1, 3, 4):
        assert values[i] == score(texts[i], "TOXICITY")
    req = fake.requests[0]
    assert req["key"] == "test-key" and req["body"]["doNotStore"] is True
    assert set(req["body"]["requestedAttributes"]) == set(PAPER_ATTRIBUTES) and req["body"]["languages"] == ["en"]
    insult = get_metric("toxicity", backend="perspective", endpoint=fake.url, attribute="insult").score(texts)
    assert len(fake.requests) == 3  # served from the cache: every attribute was stored
    assert insult[0] == score(texts[0], "INSULT")
    assert metric.spec == f"toxicity:backend=perspective:endpoint={fake.url}:qps=50.0"


def test_perspective_rate_limit_and_retries(fake, monkeypatch):
    import httpx

    sent = []  # when the client sends each request (server receipt times jitter under load)
    post = httpx.Client.post

    def timed_post(self, *args, **kwargs):
        sent.append(time.monotonic())
        return post(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "post", timed_post)
    fake.plan = {"first": [429], "second": [503, 500]}
    metric = get_metric("toxicity", backend="perspective", endpoint=fake.url, qps=10, backoff=0.01, cache=False)
    values = metric.score(["first", "second", "third"])
    assert values.tolist() == [score(t, "TOXICITY") for t in ("first", "second", "third")]
    texts = [r["text"] for r in fake.requests]
    assert texts == ["first", "first", "second", "second", "second", "third"]
    gaps = np.diff(sent)
    assert len(sent) == 6 and gaps.min() >= 0.095  # 10 queries per second at most (5 ms for scheduling jitter)
    assert gaps[0] >= 0.195  # the 429's Retry-After (0.2 s) was honoured


def test_perspective_refusals(fake, monkeypatch):
    fake.plan = {"bonjour": [400], "down": [500] * 3}
    metric = get_metric("toxicity", backend="perspective", endpoint=fake.url, qps=100, backoff=0.0, max_retries=2)
    values, reasons = metric.score_with_reasons(["bonjour", "hello"])
    assert np.isnan(values[0]) and reasons[0] == "perspective HTTP 400: fake error 400 for this comment"
    assert not np.isnan(values[1])
    with pytest.raises(HeirloomError, match="HTTP 500 after 3 tries"):
        metric.score(["down"])
    fake.plan = {"nokey": [403]}
    with pytest.raises(HeirloomError, match=r"refused the key in \$PERSPECTIVE_API_KEY"):
        metric.score(["nokey"])
    monkeypatch.delenv("PERSPECTIVE_API_KEY")
    with pytest.raises(HeirloomError, match=r"needs an API key in \$PERSPECTIVE_API_KEY"):
        get_metric("toxicity:backend=perspective")


def test_perspective_errors_say_the_api_closed_after_2026(fake, monkeypatch):
    import datetime

    import heirloom.metrics.toxicity.perspective as module

    fake.plan = {"gone": [404], "gone again": [404]}
    metric = get_metric("toxicity", backend="perspective", endpoint=fake.url, qps=100, cache=False)
    monkeypatch.setattr(module, "_today", lambda: datetime.date(2026, 12, 31))  # its last day: plain errors
    with pytest.raises(HeirloomError) as e:
        metric.score(["gone"])
    assert "HTTP 404" in str(e.value) and "closed" not in str(e.value)
    monkeypatch.setattr(module, "_today", lambda: datetime.date(2027, 1, 1))
    with pytest.raises(HeirloomError, match=r"HTTP 404 .*the Perspective API closed on 2026-12-31: .*"
                                            r"toxicity:backend=classifier:model="):
        metric.score(["gone again"])
    assert metric.score(["still answering"])[0] == score("still answering", "TOXICITY")  # a compatible server works
    monkeypatch.delenv("PERSPECTIVE_API_KEY")
    with pytest.raises(HeirloomError, match=r"needs an API key .*closed on 2026-12-31.*backend=classifier"):
        get_metric("toxicity:backend=perspective")
