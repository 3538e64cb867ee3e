"""OpenAIBackend against a real HTTP server on 127.0.0.1 (heirloom's own, over a fake model).

Faults (429 with Retry-After, 500, stalls past the client timeout, dropped
connections) are injected by the server-side handler; the checks count the
requests the server saw and the requests it held at once.
"""

from __future__ import annotations

import importlib.util
import math
import socket
import time
from pathlib import Path

import pytest

from heirloom.errors import HeirloomError
from heirloom.generation import make_backend
from heirloom.generation.base import SamplingParams, sample_seed
from heirloom.generation.openai import OpenAIBackend

# The fake model and the fault-injecting handler live with the server tests; loaded by path
# so this works under any pytest import mode.
_spec = importlib.util.spec_from_file_location("_server_doubles", Path(__file__).with_name("test_server.py"))
doubles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(doubles)
FakeBackend, fake_completion, fake_prompt_tokens, fake_server = (
    doubles.FakeBackend, doubles.fake_completion, doubles.fake_prompt_tokens, doubles.fake_server)

FAST = {"backoff_base": 0.01, "backoff_max": 5.0}  # keep retry waits short unless a test is about them


@pytest.fixture
def server():
    with fake_server() as srv:
        yield srv


def client(srv, **options) -> OpenAIBackend:
    return OpenAIBackend("fake-model", base_url=srv.url, **{**FAST, **options})


def posts(srv):
    return [b for b in srv.bodies]


def test_chat_samples_match_the_model_in_order_with_per_sample_seeds(server):
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=6, seed=3)
    prompts = ["alpha", "beta", "gamma"]
    out = client(server, n_per_request="never").generate(prompts, k=2, params=params, progress=False)
    for prompt, comps in zip(prompts, out):
        for j, comp in enumerate(comps):
            seed = sample_seed(3, prompt, j)
            # The server's model sees seed `seed` for its sample 0: that is what it generates.
            expected = fake_completion(prompt, params.model_copy(update={"seed": seed}), 0, "fake-model")
            assert (comp.text, comp.num_tokens, comp.finish_reason) == (expected.text, expected.num_tokens, expected.finish_reason)
            assert (comp.seed, comp.sample_index, comp.model) == (seed, j, "fake-model")
    bodies = posts(server)
    assert len(bodies) == 6 and all(b["path"] == "/v1/chat/completions" for b in bodies)
    first = next(b["body"] for b in bodies if b["body"]["messages"][0]["content"] == "alpha" and b["body"]["seed"] == sample_seed(3, "alpha", 0))
    assert first == {"model": "fake-model", "temperature": 0.8, "top_p": 0.95, "max_tokens": 6,
                     "seed": sample_seed(3, "alpha", 0), "messages": [{"role": "user", "content": "alpha"}],
                     "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}


@pytest.mark.filterwarnings("ignore:.*no per-choice token counts")  # n>1 responses: NaN counts, tested elsewhere
@pytest.mark.parametrize("n_per_request", ["never", "always"])
def test_per_prompt_seeds_replace_the_params_seed(server, n_per_request):
    params = SamplingParams(temperature=0.8, max_new_tokens=6, seed=3)
    backend = client(server, n_per_request=n_per_request)
    got = backend.generate(["alpha", "beta"], k=2, params=params, progress=False, seeds=[11, 12])
    alone = [backend.generate([p], k=2, params=params.model_copy(update={"seed": s}), progress=False)[0]
             for p, s in [("alpha", 11), ("beta", 12)]]
    def key(out):  # num_tokens is NaN for n>1 responses, and NaN != NaN
        return [[(c.text, c.seed, c.sample_index, c.finish_reason) for c in comps] for comps in out]

    assert key(got) == key(alone) and got[0][0].seed == sample_seed(11, "alpha", 0)
    with pytest.raises(HeirloomError, match="seeds: 1 for 2 prompts"):
        backend.generate(["alpha", "beta"], k=1, params=params, progress=False, seeds=[1])


def test_raw_continuation_uses_completions_and_sends_stop_and_top_k(server):
    params = SamplingParams(max_new_tokens=4, stop=("w1",), top_k=7)
    client(server).generate(["once upon"], k=1, params=params, chat=False, progress=False)
    [body] = posts(server)
    assert body["path"] == "/v1/completions" and body["body"]["prompt"] == "once upon"
    assert body["body"]["stop"] == ["w1"] and body["body"]["top_k"] == 7
    assert server.backend.calls[-1]["chat"] is False
    client(server).generate(["x"], k=1, progress=False)
    assert posts(server)[-1]["body"]["top_k"] == 0  # off, said explicitly (unsent, llama.cpp would use 40)


def test_server_side_sampling_defaults_are_neutralised(server):
    # llama.cpp's servers filter with top_k 40 and min_p 0.05 (llama-cpp-python also penalises
    # repeats by 1.1) unless told otherwise: the request says what SamplingParams mean.
    for path, chat in (("/v1/chat/completions", None), ("/v1/completions", False)):
        client(server, n_per_request="never").generate(["x"], k=1, params=SamplingParams(top_p=0.9), chat=chat,
                                                       progress=False)
        body = posts(server)[-1]
        assert body["path"] == path
        assert (body["body"]["top_k"], body["body"]["min_p"], body["body"]["repeat_penalty"]) == (0, 0.0, 1.0)
        assert body["body"]["top_p"] == 0.9
    assert server.backend.calls[-1]["params"].top_k == 0  # heirloom serve reads 0 as off


def test_top_k_refused_without_extra_params(server):
    with pytest.raises(HeirloomError, match="top_k=5"):
        client(server, extra_params=False).generate(["x"], params=SamplingParams(top_k=5), progress=False)
    client(server, extra_params=False).generate(["x"], params=SamplingParams(top_k=0), progress=False)
    assert not {"top_k", "min_p", "repeat_penalty"} & set(posts(server)[-1]["body"])  # OpenAI's own fields only


def test_auto_uses_n_when_the_server_honours_it(server):
    backend = client(server)
    with pytest.warns(UserWarning, match="num_tokens is NaN"):
        out = backend.generate(["p1", "p2", "p3"], k=3, params=SamplingParams(seed=9), progress=False)
    assert backend.n_supported is True
    bodies = posts(server)
    assert len(bodies) == 3 and all(b["body"]["n"] == 3 for b in bodies)
    assert {b["body"]["seed"] for b in bodies} == {sample_seed(9, p, 0) for p in ("p1", "p2", "p3")}
    for prompt, comps in zip(["p1", "p2", "p3"], out):
        seed = sample_seed(9, prompt, 0)
        expected = [fake_completion(prompt, SamplingParams(seed=seed), j, "x").text for j in range(3)]
        assert [c.text for c in comps] == expected and [c.sample_index for c in comps] == [0, 1, 2]
        assert all(c.seed == seed for c in comps)
        assert all(math.isnan(c.num_tokens) for c in comps)  # usage is a total over choices: not split


@pytest.mark.parametrize("n_mode", ["ignore", "reject"])
def test_auto_falls_back_to_one_request_per_sample(server, n_mode):
    server.n_mode = n_mode
    backend = client(server)
    out = backend.generate(["p1", "p2"], k=2, params=SamplingParams(seed=1), progress=False)
    assert backend.n_supported is False
    bodies = posts(server)
    assert len(bodies) == 1 + 4  # the probe with n=2, then one request per sample
    assert [c.seed for comps in out for c in comps] == [sample_seed(1, p, j) for p in ("p1", "p2") for j in range(2)]
    assert all(isinstance(c.num_tokens, int) for comps in out for c in comps)


def test_500s_are_retried_then_succeed(server):
    server.faults = [{"kind": "500"}, {"kind": "500"}]
    backend = client(server, max_retries=3)
    [[comp]] = backend.generate(["q"], progress=False)
    assert comp.text == fake_completion("q", SamplingParams(seed=sample_seed(0, "q", 0)), 0, "x").text
    assert server.stats["requests"] == 3
    assert backend.stats == {"requests": 3, "retries": 2, "by_endpoint": {server.url: 3}}


def test_429_waits_for_retry_after(server):
    server.faults = [{"kind": "429", "retry_after": 1}]
    start = time.monotonic()
    client(server, backoff_base=0.01).generate(["q"], progress=False)
    assert time.monotonic() - start >= 1.0
    assert server.stats["requests"] == 2


def test_stalled_response_times_out_and_is_retried(server):
    server.faults = [{"kind": "stall", "seconds": 10}]
    start = time.monotonic()
    [[comp]] = client(server, timeout=0.3).generate(["q"], progress=False)
    assert 0.3 <= time.monotonic() - start < 5 and comp.text
    assert server.stats["requests"] == 2


def test_dropped_connection_is_retried(server):
    server.faults = [{"kind": "drop"}]
    [[comp]] = client(server).generate(["q"], progress=False)
    assert comp.text and server.stats["requests"] == 2


def test_persistent_failure_raises_after_max_retries(server):
    server.faults = [{"kind": "500"}] * 10
    with pytest.raises(HeirloomError) as info:
        client(server, max_retries=2).generate(["q"], progress=False)
    message = str(info.value)
    assert server.url + "/chat/completions" in message and "fake-model" in message
    assert "3 attempt(s)" in message and "HTTP 500: injected 500" in message
    assert server.stats["requests"] == 3


def test_client_errors_are_not_retried(server):
    backend = OpenAIBackend("no-such-model", base_url=server.url, **FAST)
    with pytest.raises(HeirloomError, match="HTTP 404: model 'no-such-model' not found"):
        backend.generate(["q"], progress=False)
    assert server.stats["requests"] == 1


def test_connection_refused_is_a_clear_error_naming_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    start = time.monotonic()
    with pytest.raises(HeirloomError, match=f"cannot connect to {url}.*is the server running"):
        OpenAIBackend("m", base_url=url, **FAST).generate(["q"], progress=False)
    assert time.monotonic() - start < 2  # fails at once, no retry loop


def test_concurrency_stays_within_the_bound_and_order_is_kept():
    with fake_server(FakeBackend(delay=0.03)) as srv:
        prompts = [f"prompt {i}" for i in range(12)]
        out = client(srv, max_concurrency=3).generate(prompts, k=1, progress=False)
        assert 2 <= srv.stats["max_in_flight"] <= 3
    assert [c.seed for [c] in out] == [sample_seed(0, p, 0) for p in prompts]


def test_api_key_from_the_named_environment_variable(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sekret")
    OpenAIBackend("fake-model", base_url=server.url, api_key_env="MY_KEY", **FAST).generate(["q"], progress=False)
    monkeypatch.delenv("MY_KEY")
    OpenAIBackend("fake-model", base_url=server.url, api_key_env="MY_KEY", **FAST).generate(["q"], progress=False)
    assert [b["auth"] for b in posts(server)] == ["Bearer sekret", None]


def test_loglikelihood_sums_the_continuation_tokens(server):
    backend = client(server, supports_loglikelihood=True)
    pairs = [("The cat", " sat on"), ("The cat", " xsat"), ("The ca", "t sat")]
    results = backend.loglikelihood(pairs, progress=False)
    for (context, continuation), result in zip(pairs, results):
        tokens = fake_prompt_tokens(context + continuation)
        mine = [t for t in tokens if t.offset + len(t.text) > len(context)]  # tokens touching the continuation
        assert result.logprob == pytest.approx(sum(t.logprob for t in mine))
        assert result.num_tokens == len(mine)
        assert result.is_greedy == all(t.top_text == t.text for t in mine)
    assert [r.is_greedy for r in results] == [True, False, True]
    # "The ca" + "t sat": the token " cat" straddles the boundary and counts for the continuation.
    assert results[2].num_tokens == 2
    assert all(b["body"]["echo"] is True and b["body"]["max_tokens"] == 0 for b in posts(server))


class GeneratesAfterEcho(FakeBackend):
    """Echoes the prompt's logprobs and goes on generating, as llama-cpp-python's server does for
    max_tokens=0 (it reads 0 as "no limit")."""

    def prompt_logprobs(self, texts):
        return [fake_prompt_tokens(t) + fake_prompt_tokens(t + " more words")[-2:] for t in texts]


def test_loglikelihood_refuses_a_server_that_generates_for_max_tokens_0():
    with fake_server(GeneratesAfterEcho()) as srv:
        with pytest.raises(HeirloomError, match=r"generated 2 token\(s\) after the prompt although max_tokens=0"):
            client(srv, supports_loglikelihood=True, max_retries=0).loglikelihood([("The cat", " sat")],
                                                                                  progress=False)


def test_loglikelihood_refuses_a_server_that_ignores_echo(server):
    """llama.cpp's llama-server (commit 0c1e570) ignores `echo` and, for max_tokens=0, still generates
    one token; its logprobs cover that token only, in the chat-style `content` list. This is its
    answer, as recorded by bench/bench_llamacpp.py --checks."""
    answer = {"choices": [{"text": "\n", "index": 0, "finish_reason": "length", "logprobs": {"content": [
        {"id": 198, "token": "\n", "bytes": [10], "logprob": -1.5085,
         "top_logprobs": [{"id": 198, "token": "\n", "bytes": [10], "logprob": -1.5085}]}]}}],
        "object": "text_completion", "usage": {"completion_tokens": 1, "prompt_tokens": 15, "total_tokens": 16}}
    server.faults.append({"kind": "reply", "body": answer})
    with pytest.raises(HeirloomError, match="no prompt logprobs .*set supports_loglikelihood=False"):
        client(server, supports_loglikelihood=True, max_retries=0).loglikelihood(
            [("The capital of France is", " Paris")], progress=False)
    bodies = posts(server)
    assert len(bodies) == 1  # asked once, not retried
    assert bodies[0]["body"]["echo"] is True and bodies[0]["body"]["max_tokens"] == 0


def test_loglikelihood_needs_the_option(server):
    with pytest.raises(HeirloomError, match="supports_loglikelihood"):
        client(server).loglikelihood([("a", " b")], progress=False)


def test_make_backend_and_bad_options(server):
    backend = make_backend(f"openai:fake-model@{server.url}", max_retries=0)
    assert isinstance(backend, OpenAIBackend) and backend.base_url == server.url
    with pytest.raises(HeirloomError, match="openai backend option max_concurency"):
        make_backend(f"openai:fake-model@{server.url}", max_concurency=2)


# --- several endpoints: replicas of one model as one pool ---------------------------------
def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # closed again: nothing listens there


def test_replicas_share_the_work_within_the_bound_and_give_the_same_samples():
    prompts = [f"prompt {i}" for i in range(24)]
    params = SamplingParams(temperature=0.7, seed=4)
    with fake_server(FakeBackend(delay=0.02)) as one:
        alone = client(one, n_per_request="never").generate(prompts, k=2, params=params, progress=False)
    with fake_server(FakeBackend(delay=0.02)) as a, fake_server(FakeBackend(delay=0.02)) as b:
        backend = OpenAIBackend("fake-model", base_url=[a.url, b.url], n_per_request="never", max_concurrency=3, **FAST)
        assert backend.preferred_batch >= 2 * 2 * 3
        pooled = backend.generate(prompts, k=2, params=params, progress=False)
        for srv in (a, b):
            assert 10 <= srv.stats["requests"] <= 38  # 48 requests, spread over both
            assert srv.stats["max_in_flight"] <= 3
        assert backend.stats["by_endpoint"] == {a.url: a.stats["requests"], b.url: b.stats["requests"]}
    assert [[(c.text, c.seed, c.sample_index) for c in cs] for cs in pooled] == \
           [[(c.text, c.seed, c.sample_index) for c in cs] for cs in alone]


def test_a_dead_replica_is_dropped_and_the_live_one_does_the_work():
    dead = closed_port_url()
    with fake_server() as live:
        backend = make_backend(f"openai:fake-model@{dead},{live.url}", **FAST)
        with pytest.warns(UserWarning, match=f"cannot connect to {dead}.*other 1 endpoint"):
            out = backend.generate([f"q{i}" for i in range(10)], k=1, progress=False)
        # Only the tries already in flight when the first refusal came back went to the dead one.
        assert live.stats["requests"] == 10 and backend.stats["by_endpoint"][dead] <= backend.options.max_concurrency
    assert all(c.text for [c] in out)


def test_no_live_replica_names_every_url_at_once():
    urls = [closed_port_url(), closed_port_url()]
    start = time.monotonic()
    with pytest.raises(HeirloomError, match=f"cannot connect to {urls[0]}, {urls[1]}.*is the server running"), \
            pytest.warns(UserWarning, match="going on with the other 1"):
        OpenAIBackend("m", base_url=urls, **FAST).generate(["q", "r"], progress=False)
    assert time.monotonic() - start < 2


def test_a_failing_replica_hands_its_retries_to_another_without_waiting():
    with fake_server() as sick, fake_server() as healthy:
        sick.faults = [{"kind": "503"}] * 50
        backend = OpenAIBackend("fake-model", base_url=[sick.url, healthy.url], max_concurrency=1,
                                backoff_base=5.0, backoff_max=10.0)
        start = time.monotonic()
        out = backend.generate([f"q{i}" for i in range(6)], k=1, progress=False)
        assert time.monotonic() - start < 3  # a 5 s backoff was never waited for
        assert sick.stats["requests"] == 1 and healthy.stats["requests"] == 6  # resting after its failure
    assert all(c.text for [c] in out)


def test_a_pool_that_keeps_failing_says_so_once_for_all_endpoints():
    with fake_server() as a, fake_server() as b:
        a.faults = b.faults = [{"kind": "500"}] * 10
        backend = OpenAIBackend("fake-model", base_url=[a.url, b.url], max_retries=3, **FAST)
        with pytest.raises(HeirloomError, match=r"/chat/completions on 2 endpoints \(model fake-model\): failed "
                                                r"after 4 attempt\(s\); last error: http://.*HTTP 500"):
            backend.generate(["q"], progress=False)
        assert a.stats["requests"] == b.stats["requests"] == 2  # retries alternate: the other one first


def test_model_refs_with_several_urls():
    from heirloom.models.refs import ModelRef

    ref = ModelRef.parse("openai:m@http://a:1/v1/, http://b:2/v1")
    assert ref.base_url == "http://a:1/v1,http://b:2/v1" and str(ref) == "openai:m@http://a:1/v1,http://b:2/v1"
    with pytest.raises(HeirloomError, match="listed twice"):
        ModelRef.parse("openai:m@http://a/v1,http://a/v1")
    with pytest.raises(HeirloomError, match="comma-separated"):
        ModelRef.parse("openai:m@http://a/v1,b")


def test_retry_after_reads_both_forms():
    import email.utils

    from heirloom.generation.transport import _retry_after

    assert _retry_after("3") == 3.0 and _retry_after("0.5") == 0.5 and _retry_after(None) is None
    assert 8 < _retry_after(email.utils.formatdate(time.time() + 10, usegmt=True)) <= 10
    assert _retry_after("soon") is None


def test_a_base_model_gets_instructions_in_the_qa_template_with_the_same_seeds(server):
    from heirloom.generation.formatting import QA_TEMPLATE

    chat_model, base_model = client(server), client(server, chat_template=False)
    assert chat_model.chat is True and base_model.chat is False
    [[comp]] = base_model.generate(["Name a colour."], params=SamplingParams(seed=2), progress=False)
    body = posts(server)[-1]
    assert body["path"] == "/v1/completions" and body["body"]["prompt"] == QA_TEMPLATE.format(prompt="Name a colour.")
    assert comp.seed == sample_seed(2, "Name a colour.", 0)  # keyed by the prompt, as every backend does
    with pytest.raises(HeirloomError, match="chat_template=False"):
        base_model.generate(["q"], chat=True, progress=False)
