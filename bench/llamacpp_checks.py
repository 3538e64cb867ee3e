"""What heirloom's `openai` backend relies on, asked of a real llama.cpp server (bench_llamacpp.py --checks).

For either server (llama-cpp-python's, or the C++ `llama-server` with N slots): the chat template
(greedy chat answer = greedy /completions answer on heirloom's own rendering), seeds (the same seed
after different preceding requests; and, new for parallel slots, the same requests sent one at a
time, N at a time, with and without the server's prompt cache), stop strings, `n` (and `n` beyond
the slots), how it refuses bad requests, prompt log-probabilities (echo) against the hf model's, and
heirloom's scorer (max_tokens=0) on one pair. Each finding is recorded as the server answered it,
errors included. Left out: timing (bench_llamacpp.py).
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from llamacpp_servers import ALIAS, Server


def _poster(url: str):
    import httpx

    def post(path: str, body: dict, check: bool = True):
        r = httpx.post(f"{url}{path}", json={"model": ALIAS, **body}, timeout=300)
        data = r.json()
        if check and r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code} for {path}: {str(data)[:300]}")
        return data if check else (r.status_code, data)
    return post


def seeds_under_batching(server: Server, prompts: list[str], k: int = 2, tokens: int = 32) -> dict:
    """The openai backend's own request bodies (one per sample, each with its seed), sent 1 at a
    time and `slots` at a time, with the prompt cache on (the default) and off; how many texts
    equal those of the first sequential run."""
    from heirloom.generation import SamplingParams, make_backend
    from heirloom.generation.base import sample_seed

    post = _poster(server.url)
    client = make_backend(f"openai:{ALIAS}@{server.url}", n_per_request="never", max_concurrency=1)
    sp = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=tokens, seed=11)
    bodies = [client._body("/chat/completions", p, 1, sample_seed(sp.seed, p, j), sp) for p in prompts for j in range(k)]
    wide = max(server.slots, 2)

    def run(in_flight: int, cache: bool) -> list[str]:
        extra = {} if cache else {"cache_prompt": False}  # a llama-server field; the Python server ignores it
        with ThreadPoolExecutor(in_flight) as pool:
            return list(pool.map(lambda b: post("/chat/completions", {**b, **extra})["choices"][0]["message"]["content"],
                                 bodies))

    plan = [("1 in flight", 1, True), ("1 in flight again", 1, True), (f"{wide} in flight", wide, True),
            (f"{wide} in flight again", wide, True), ("1 in flight, cache_prompt=false", 1, False),
            (f"{wide} in flight, cache_prompt=false", wide, False),
            (f"{wide} in flight, cache_prompt=false, again", wide, False)]
    texts = {name: run(n, cache) for name, n, cache in plan}
    ref, nocache = texts[plan[0][0]], texts[plan[4][0]]
    return {"samples": len(bodies), "max_new_tokens": tokens, "slots": server.slots,
            "equal_to_first_sequential_run": {n: sum(a == b for a, b in zip(t, ref)) for n, t in texts.items()},
            "equal_to_sequential_without_cache": {n: sum(a == b for a, b in zip(t, nocache)) for n, t in texts.items()},
            "example_differing": next(({"prompt": bodies[i]["messages"][0]["content"], "seed": bodies[i]["seed"],
                                        "texts": [t[i] for t in texts.values()]}
                                       for i in range(len(bodies)) if len({t[i] for t in texts.values()}) > 1), None)}


def checks(server: Server, hf, prompts: list[str]) -> dict:
    import torch

    from heirloom.generation import SamplingParams, make_backend
    from heirloom.generation.formatting import format_prompt

    url, post, out = server.url, _poster(server.url), {}
    neutral = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}  # what the openai backend sends
    other = {"messages": [{"role": "user", "content": "What is 2+2?"}], "max_tokens": 2, "seed": 3}
    p = prompts[0]
    # Chat template: the server's rendering = heirloom's (tokenizer.apply_chat_template) when the greedy
    # answers and prompt token counts agree. Each request follows the same other request, so the
    # server's prompt cache is in the same state for both (see the seed check).
    post("/chat/completions", other)
    chat = post("/chat/completions", {"messages": [{"role": "user", "content": p}], "temperature": 0, "max_tokens": 24})
    post("/chat/completions", other)
    raw = post("/completions", {"prompt": format_prompt(hf.tokenizer, p, None), "temperature": 0, "max_tokens": 24})
    out["chat_template"] = {"same_as_heirloom": chat["choices"][0]["message"]["content"] == raw["choices"][0]["text"]
                            and chat["usage"]["prompt_tokens"] == raw["usage"]["prompt_tokens"],
                            "prompt_tokens": [chat["usage"]["prompt_tokens"], raw["usage"]["prompt_tokens"]],
                            "greedy_answer": chat["choices"][0]["message"]["content"]}
    # Seeds: the same seed after the same preceding request, and after a request for the same prompt
    # (the prompt cache then holds the whole prompt: other numerics for its last token).
    seeds = []
    for q in [*prompts[:3], "Give three tips for staying healthy."]:
        body = {"messages": [{"role": "user", "content": q}], "temperature": 1.0, "top_p": 0.9, "max_tokens": 32,
                **neutral}
        for seed in (1, 7):
            texts = []
            for after_other in (True, False, True, False):
                if after_other:
                    post("/chat/completions", other)
                texts.append(post("/chat/completions", {**body, "seed": seed})["choices"][0]["message"]["content"])
            seeds.append({"prompt": q, "seed": seed, "after_other_request_equal": texts[0] == texts[2],
                          "after_same_prompt_equal": texts[1] == texts[3],
                          "cache_state_changes_sample": texts[0] != texts[1], "texts": texts[:2]})
    out["seeds"] = seeds
    out["seeds_under_batching"] = seeds_under_batching(server, prompts[:8])
    # n: the auto probe (k=2), what comes back, and n beyond the server's slots.
    client = make_backend(f"openai:{ALIAS}@{url}", n_per_request="auto", max_concurrency=1)
    sp = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=24, seed=5)
    a = client.generate(prompts[:1], k=2, params=sp, progress=False)[0]
    status, data = post("/chat/completions", {**other, "n": server.slots + 1}, check=False)
    out["n"] = {"honoured": client.n_supported, "num_tokens": [c.num_tokens for c in a],
                "texts_differ": a[0].text != a[1].text, "requests": client.stats.get("requests", None),
                f"n={server.slots + 1} (slots + 1)": {"status": status, "choices": len(data.get("choices") or []),
                                                      "error": str(data.get("error"))[:200] if "error" in data else None}}
    words = a[0].text.split()
    stop_word = words[min(3, len(words) - 1)] if words else "the"
    c = client.generate(prompts[:1], k=1, params=sp.model_copy(update={"stop": (stop_word,)}), progress=False)[0][0]
    out["stop"] = {"stop": stop_word, "text_contains_stop": stop_word in c.text, "finish_reason": c.finish_reason,
                   "num_tokens": c.num_tokens, "text": c.text}
    # Bad requests: top_k=-1 (vLLM's "off"), and a field of the wrong type: with which status?
    out["refusals"] = {}
    for name, bad in {"top_k=-1": {"top_k": -1}, "max_tokens='many'": {"max_tokens": "many"}}.items():
        status, data = post("/chat/completions", {**other, **bad}, check=False)
        out["refusals"][name] = {"status": status, "answer": str(data.get("error") or data.get("choices"))[:200]}
    # Prompt log-probabilities: the server's echo (max_tokens=1) against the hf model's own, token by
    # token: log p(t_i | t_<i) (right) and log p(t_i | t_<=i) (one position late).
    text = "The capital of France is Paris, and the capital of Italy is Rome."
    status, r = post("/completions", {"prompt": text, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0},
                     check=False)
    lp = (r.get("choices") or [{}])[0].get("logprobs") if status == 200 else None
    if not lp or not lp.get("token_logprobs"):
        out["echo"] = {"status": status, "answer": str(r)[:300]}
    else:
        ids = hf.tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = hf.model(input_ids=torch.tensor([ids], device=hf.device)).logits[0].float()
        table = torch.log_softmax(logits, dim=-1)
        right = [None] + [table[i - 1, ids[i]].item() for i in range(1, len(ids))]
        late = [table[i, ids[i]].item() for i in range(len(ids))]
        served = lp["token_logprobs"][:len(ids)]
        pairs_right = [(s_, r_) for s_, r_ in zip(served, right) if s_ is not None and r_ is not None]
        pairs_late = [(s_, l_) for s_, l_ in zip(served, late) if s_ is not None]
        out["echo"] = {"status": status, "text": text, "server_tokens": lp["tokens"][:len(ids)], "hf_tokens": len(ids),
                       "mean_abs_diff_vs_right": statistics.mean(abs(a - b) for a, b in pairs_right),
                       "mean_abs_diff_vs_one_late": statistics.mean(abs(a - b) for a, b in pairs_late),
                       "server": served, "hf_right": right, "hf_one_late": late}
    # max_tokens=0 without echo: how many tokens come back (OpenAI's API: none).
    status, r = post("/completions", {"prompt": text, "max_tokens": 0, "temperature": 0}, check=False)
    out["max_tokens_0"] = {"status": status, "completion_tokens": (r.get("usage") or {}).get("completion_tokens"),
                           "answer": str(r.get("error") or (r.get("choices") or [{}])[0].get("text"))[:200]}
    # heirloom's scorer on one pair, as a profile would run it (max_tokens=0), timed.
    scorer = make_backend(f"openai:{ALIAS}@{url}", supports_loglikelihood=True, max_concurrency=1, timeout=300,
                          max_retries=0)
    pair = ("The capital of France is", " Paris")
    t = time.perf_counter()
    try:
        served_ll = scorer.loglikelihood([pair], progress=False)[0].logprob
    except Exception as e:  # noqa: BLE001 - what the server does is the finding
        served_ll = f"{type(e).__name__}: {e}"[:300]
    out["loglikelihood"] = {"pair": list(pair), "server": served_ll, "seconds": time.perf_counter() - t,
                            "hf": hf.loglikelihood([pair], progress=False)[0].logprob}
    return out


__all__ = ["checks", "seeds_under_batching"]
