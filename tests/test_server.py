"""The OpenAI-compatible server: routes, request validation, errors, the backend lock, the CLI.

Also home of the test doubles the OpenAIBackend tests reuse: `FakeBackend`
(deterministic text from prompt + seed) and `FaultyHandler` (injects 429, 500,
stalls and dropped connections, and counts requests in flight).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from click.testing import CliRunner

from heirloom.generation.base import Backend, Completion, SamplingParams, sample_seed
from heirloom.generation.server import Handler, PromptToken, serve_in_thread


# --- test doubles ----------------------------------------------------------------------
def fake_completion(prompt, params: SamplingParams, j: int, model: str) -> Completion:
    """Words derived from (prompt, per-sample seed); 1..7 words, cut by max_new_tokens and stop strings."""
    key = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)
    seed = sample_seed(params.seed, key, j)
    digest = hashlib.sha256(f"{key}|{seed}".encode()).digest()
    words = [f"w{b % 50}" for b in digest[: 1 + seed % 7]]
    finish = "stop"
    if len(words) > params.max_new_tokens:
        words, finish = words[: params.max_new_tokens], "length"
    text = " ".join(words)
    for s in params.stop:
        if s in text:
            text, finish = text[: text.index(s)], "stop"
    return Completion(text=text, num_tokens=len(words), finish_reason=finish, model=model, seed=seed, sample_index=j)


def fake_prompt_tokens(text: str) -> list[PromptToken]:
    """Whitespace tokens; logprob -0.1 x letters; a token starting with 'x' is not the argmax."""
    out = []
    for n, m in enumerate(re.finditer(r"\s*\S+", text)):
        lp = None if n == 0 else -0.1 * len(m.group().strip())
        top = ("the", lp + 0.5) if lp is not None and m.group().strip().startswith("x") else (m.group(), lp)
        out.append(PromptToken(m.group(), m.start(), lp, *top))
    return out


class FakeBackend(Backend):
    name = "fake"
    supports_loglikelihood = True
    supports_prompt_logprobs = True

    def __init__(self, model_id: str = "fake-model", delay: float = 0.0, messages: bool = False):
        super().__init__(model_id)
        self.delay, self.supports_messages = delay, messages
        self.calls: list[dict] = []
        self.active = self.max_active = 0

    def generate(self, prompts, k=1, params=None, chat=None, progress=True, seeds=None):
        params = params or SamplingParams()
        self.calls.append({"prompts": list(prompts), "k": k, "params": params, "chat": chat})
        self.active += 1  # not thread-safe on purpose: the server's lock must serialise calls
        self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        self.active -= 1
        return [[fake_completion(p, params, j, self.model_id) for j in range(k)] for p in prompts]

    def prompt_logprobs(self, texts):
        return [fake_prompt_tokens(t) for t in texts]


class FaultyHandler(Handler):
    """Answers the next requests with injected faults (an HTTP status, a stall, a dropped connection,
    or `reply`: a given JSON body); records bodies, headers and concurrency."""

    def do_POST(self):
        srv = self.server
        with srv.stats_lock:
            srv.stats["requests"] += 1
            srv.stats["in_flight"] += 1
            srv.stats["max_in_flight"] = max(srv.stats["max_in_flight"], srv.stats["in_flight"])
            fault = srv.faults.pop(0) if srv.faults else None
        try:
            if fault is None:
                return super().do_POST()
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if fault["kind"] == "reply":  # a recorded answer of another server, sent as it is
                srv.bodies.append({"path": self.path, "body": json.loads(raw), "auth": self.headers.get("Authorization")})
                return self.send_json(200, fault["body"])
            if fault["kind"] in ("stall", "drop"):
                if fault["kind"] == "stall":
                    srv.stopping.wait(fault.get("seconds", 30))
                self.close_connection = True  # hang up without an answer
                return
            status = int(fault["kind"])
            headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else None
            self.send_json(status, {"error": {"message": f"injected {status}", "type": "server_error"}}, headers)
        finally:
            with srv.stats_lock:
                srv.stats["in_flight"] -= 1

    def read_json(self):
        body = super().read_json()
        self.server.bodies.append({"path": self.path, "body": dict(body), "auth": self.headers.get("Authorization")})
        if self.server.n_mode == "ignore":
            body.pop("n", None)
        elif self.server.n_mode == "reject" and body.get("n", 1) > 1:
            from heirloom.generation.server import ApiError

            raise ApiError(400, "n must be 1")
        return body


@contextmanager
def fake_server(backend: Backend | None = None):
    with serve_in_thread(backend or FakeBackend(), handler=FaultyHandler) as srv:
        srv.faults, srv.bodies, srv.n_mode = [], [], None
        srv.stats = {"requests": 0, "in_flight": 0, "max_in_flight": 0}
        srv.stats_lock, srv.stopping = threading.Lock(), threading.Event()
        try:
            yield srv
        finally:
            srv.stopping.set()  # release stalled handlers before shutdown


# --- server tests ----------------------------------------------------------------------
@pytest.fixture
def server():
    with fake_server() as srv:
        yield srv


def post(srv, path, body):
    return httpx.post(srv.url + path, json=body, timeout=10)


def test_models_lists_the_served_model(server):
    r = httpx.get(server.url + "/models")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == ["fake-model"]


def test_chat_completion_passes_sampling_params_and_returns_n_choices(server):
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi there"}], "n": 3,
            "temperature": 0.7, "top_p": 0.9, "max_tokens": 5, "stop": ["w4"], "seed": 11, "top_k": 20}
    r = post(server, "/chat/completions", body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "chat.completion"
    call = server.backend.calls[-1]
    assert call["prompts"] == ["hi there"] and call["k"] == 3 and call["chat"] is None
    assert call["params"] == SamplingParams(temperature=0.7, top_p=0.9, top_k=20, max_new_tokens=5, stop=("w4",), seed=11)
    expected = [fake_completion("hi there", call["params"], j, "fake-model") for j in range(3)]
    assert [c["message"]["content"] for c in data["choices"]] == [e.text for e in expected]
    assert [c["finish_reason"] for c in data["choices"]] == [e.finish_reason for e in expected]
    assert data["usage"]["completion_tokens"] == sum(e.num_tokens for e in expected)


def test_same_seed_same_text_and_no_seed_draws_fresh(server):
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "q"}], "seed": 5}
    first, again = (post(server, "/chat/completions", body).json() for _ in range(2))
    assert first["choices"] == again["choices"]
    del body["seed"]
    post(server, "/chat/completions", body)
    post(server, "/chat/completions", body)
    seeds = [c["params"].seed for c in server.backend.calls[-2:]]
    assert seeds[0] != seeds[1]


def test_completions_order_echo_and_raw_mode(server):
    r = post(server, "/completions", {"model": "fake-model", "prompt": ["a", "b"], "n": 2, "seed": 1, "echo": True})
    assert r.status_code == 200, r.text
    call = server.backend.calls[-1]
    assert call["chat"] is False and call["params"].max_new_tokens == 16  # OpenAI's legacy default
    texts = [c["text"] for c in sorted(r.json()["choices"], key=lambda c: c["index"])]
    expected = [p + fake_completion(p, call["params"], j, "x").text for p in "ab" for j in range(2)]
    assert texts == expected


def test_prompt_scoring_returns_token_logprobs(server):
    text = "The cat xsat"
    r = post(server, "/completions", {"model": "fake-model", "prompt": text, "echo": True, "logprobs": 1, "max_tokens": 0})
    assert r.status_code == 200, r.text
    lp = r.json()["choices"][0]["logprobs"]
    assert lp["tokens"] == ["The", " cat", " xsat"] and lp["text_offset"] == [0, 3, 7]
    assert lp["token_logprobs"] == pytest.approx([None, -0.3, -0.4])
    assert lp["top_logprobs"][2] == pytest.approx({" xsat": -0.4, "the": 0.1})


@pytest.mark.parametrize("path,body,status,needle", [
    ("/chat/completions", {"model": "other", "messages": [{"role": "user", "content": "q"}]}, 404, "model 'other' not found"),
    ("/nope", {"model": "fake-model"}, 404, "no route POST /v1/nope"),
    ("/chat/completions", {"model": "fake-model"}, 400, "messages"),
    ("/chat/completions", {"model": "fake-model", "messages": [{"role": "user", "content": "q"}], "n": 0}, 400, "n:"),
    ("/chat/completions", {"model": "fake-model", "messages": [{"role": "user", "content": "q"}], "stream": True}, 400, "streaming"),
    ("/chat/completions", {"model": "fake-model", "messages": [{"role": "system", "content": "be nice"},
                                                               {"role": "user", "content": "q"}]}, 400, "one user message"),
    ("/completions", {"model": "fake-model", "prompt": [1, 2, 3]}, 400, "prompt"),
    ("/completions", {"model": "fake-model", "prompt": "x", "logprobs": 1}, 400, "logprobs"),
    ("/completions", {"model": "fake-model", "prompt": "x", "echo": True, "logprobs": 1}, 400, "max_tokens=0"),
])
def test_bad_requests_get_openai_shaped_errors(server, path, body, status, needle):
    r = post(server, path, body)
    assert r.status_code == status
    error = r.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"
    assert not server.backend.calls  # nothing reached the model


def test_invalid_json_and_unknown_get_route(server):
    r = httpx.post(server.url + "/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]
    assert httpx.get(server.url + "/nothing").status_code == 404


def test_scoring_refused_when_backend_has_no_prompt_logprobs():
    backend = FakeBackend()
    backend.supports_prompt_logprobs = False
    with fake_server(backend) as srv:
        r = post(srv, "/completions", {"model": "fake-model", "prompt": "a b", "echo": True, "logprobs": 1, "max_tokens": 0})
    assert r.status_code == 400 and "prompt scoring" in r.json()["error"]["message"]


def test_message_lists_reach_backends_that_take_them():
    with fake_server(FakeBackend(messages=True)) as srv:
        msgs = [{"role": "system", "content": "be nice"}, {"role": "user", "content": [{"type": "text", "text": "q"}]}]
        r = post(srv, "/chat/completions", {"model": "fake-model", "messages": msgs})
        assert r.status_code == 200, r.text
        assert srv.backend.calls[-1]["prompts"] == [[{"role": "system", "content": "be nice"}, {"role": "user", "content": "q"}]]


def test_backend_errors_become_400_and_bugs_500(server):
    from heirloom.errors import HeirloomError

    def fail(exc):
        def generate(*a, **k):
            raise exc
        return generate

    body = {"model": "fake-model", "messages": [{"role": "user", "content": "q"}]}
    server.backend.generate = fail(HeirloomError("prompt 0 is too long"))
    r = post(server, "/chat/completions", body)
    assert r.status_code == 400 and r.json()["error"]["message"] == "prompt 0 is too long"
    server.backend.generate = fail(RuntimeError("boom"))
    r = post(server, "/chat/completions", body)
    assert r.status_code == 500 and "RuntimeError: boom" in r.json()["error"]["message"]


def test_concurrent_requests_never_overlap_in_the_backend():
    with fake_server(FakeBackend(delay=0.02)) as srv:
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "q"}]}
        threads = [threading.Thread(target=post, args=(srv, "/chat/completions", body)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(srv.backend.calls) == 6
        assert srv.stats["max_in_flight"] > 1  # requests did arrive together...
        assert srv.backend.max_active == 1  # ...and the lock kept the model to one at a time


# --- CLI ---------------------------------------------------------------------------------
def test_serve_help_shows_defaults():
    from heirloom.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output and "8000" in result.output and "smollm2-135m" in result.output


def test_serve_on_a_busy_port_is_a_one_line_error(capsys):
    from heirloom.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", "--model", "smollm2-135m", "--port", str(port)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot listen on 127.0.0.1:") and "\n" not in err


def test_serve_rejects_options_the_backend_does_not_declare(capsys):
    from heirloom.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", "vllm:some/model", "--batch-size", "4", "--port", "0"])
    assert exit_info.value.code == 2
    assert "--batch-size: not an option of the vllm backend" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # a mistyped --option fails before the model loads
        main(["serve", "--model", "smollm2-135m", "--option", "batch_sise=4", "--port", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: hf backend option batch_sise: unknown option; did you mean 'batch_size'?"


# --- integration: the real embedded model ---------------------------------------------
@pytest.mark.integration
def test_serve_smollm2_and_chat_through_openai_backend():
    hf = pytest.importorskip("heirloom.generation.hf")
    from heirloom.generation.openai import OpenAIBackend

    backend = hf.HFBackend("smollm2-135m", device="cpu")
    with serve_in_thread(backend, model_name="smollm2-135m") as srv:
        client = OpenAIBackend("smollm2-135m", base_url=srv.url, max_retries=0)
        params = SamplingParams(temperature=0.0, max_new_tokens=8)
        [[comp]] = client.generate(["What is the capital of France?"], k=1, params=params, progress=False)
        client.close()
    assert comp.text.strip() and comp.finish_reason in ("stop", "length")
    assert 1 <= comp.num_tokens <= 8
    # Same model, same greedy decoding, locally: the server adds nothing and loses nothing.
    [[local]] = backend.generate(["What is the capital of France?"], k=1, params=params, progress=False)
    assert comp.text == local.text and comp.num_tokens == local.num_tokens


def test_a_real_model_behind_the_server_answers_as_it_does_locally(tiny_model_dir):
    """hf backend served over HTTP: greedy answers and log-likelihoods equal the local ones."""
    from heirloom.generation.hf import HFBackend
    from heirloom.generation.openai import OpenAIBackend

    local = HFBackend(str(tiny_model_dir))
    prompts = ["Name a colour.", "Say something about rivers and the sea."]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    pairs = [("The cat sat on the", " mat"), ("Question: 2+2? Answer:", " four")]
    with serve_in_thread(local, model_name="tiny") as srv:
        client = OpenAIBackend("tiny", base_url=srv.url, supports_loglikelihood=True, n_per_request="never")
        served = client.generate(prompts, k=1, params=greedy, progress=False)
        scored = client.loglikelihood(pairs, progress=False)
    here = local.generate(prompts, k=1, params=greedy, progress=False)
    assert [c.text for [c] in served] == [c.text for [c] in here]
    direct = local.loglikelihood(pairs, progress=False)
    assert [r.num_tokens for r in scored] == [r.num_tokens for r in direct]
    assert [r.logprob for r in scored] == pytest.approx([r.logprob for r in direct], abs=1e-3)
    assert [r.is_greedy for r in scored] == [r.is_greedy for r in direct]


def test_concurrent_requests_share_model_calls_and_get_the_answers_they_get_alone(tiny_model_dir):
    """Micro-batching: 8 clients at once, each with its own seed, fewer model calls than requests,
    and every answer equal to the one the same request gets from a server that does not batch.
    In float64: in float32 a batch's shape moves logits by rounding, and a random model's near-ties
    can then flip a sampled token (real models rarely sit on such ties, but they can)."""
    from concurrent.futures import ThreadPoolExecutor

    from heirloom.generation.hf import HFBackend

    backend = HFBackend(str(tiny_model_dir), dtype="float64")
    bodies = [{"model": "tiny", "messages": [{"role": "user", "content": f"Tell me about {topic}."}],
               "n": 2, "temperature": 1.0, "top_p": 0.9, "max_tokens": 6, "seed": 100 + i}
              for i, topic in enumerate(["rivers", "cats", "bread", "stars", "rain", "maps", "tea", "bees"])]

    def texts(srv):
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda b: post(srv, "/chat/completions", b), bodies))
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        return [[c["message"]["content"] for c in r.json()["choices"]] for r in answers]

    with serve_in_thread(backend, model_name="tiny", batching=False) as alone:
        expected = texts(alone)
    with serve_in_thread(backend, model_name="tiny") as batched:
        got = texts(batched)
        calls = batched._batcher.calls
    assert got == expected
    assert calls < len(bodies)


def test_a_bad_request_in_a_shared_call_fails_alone(tiny_model_dir):
    from concurrent.futures import ThreadPoolExecutor

    from heirloom.generation.hf import HFBackend

    backend = HFBackend(str(tiny_model_dir))
    good = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "seed": 1}
    too_long = {**good, "messages": [{"role": "user", "content": "word " * 600}]}  # past the 512 positions
    with serve_in_thread(backend, model_name="tiny") as srv:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda b: post(srv, "/chat/completions", b), [good, too_long, good, good]))
    assert [r.status_code for r in answers] == [200, 400, 200, 200]
    assert "exceeds the model's 512 positions" in answers[1].json()["error"]["message"]
