"""A llama.cpp server behind heirloom's `openai` backend, against the hf backend, side by side.

Usage:  python bench/bench_llamacpp.py [--prompts 12] [--k 4] [--max-new-tokens 128] [--repeats 2]
            [--server-binary /tmp/llamaserver/build/bin/llama-server --parallel 1,4,8 [--compare-python]
             [--gguf OTHER.gguf]]
            [--concurrency 1,4] [--server-python /tmp/llamavenv/bin/python | --url http://127.0.0.1:8077/v1]
            [--threads 1] [--checks] [--server-defaults] [--out FILE]

Servers on the embedded model's GGUF (SmolLM2-135M-Instruct, Q4_1: llama.cpp computes with the
quantized weights, the hf backend with weights dequantized to bf16), started by llamacpp_servers.py:
- `--server-binary`: llama.cpp's C++ `llama-server`, one per `--parallel` value N (`-np N` slots,
  continuous batching, `-c N x --ctx-per-slot`), each driven with `max_concurrency=N`;
  `--compare-python` adds llama-cpp-python's server at `max_concurrency=1`; `--gguf` serves another
  GGUF (e.g. the same weights in BF16, by `llama-quantize --allow-requantize`; hf keeps its model);
- otherwise llama-cpp-python's server (`python -m llama_cpp.server`: one request at a time) at each
  `--concurrency`; or a running server at `--url`.
In one process, on the first N quickstart prompts x k samples (temperature 1, top-p 0.9,
`--max-new-tokens`, one request per sample with its own seed), interleaved repeat by repeat with
hf: `make_backend("smollm2-135m")` (`dtype: auto`), `--threads` torch threads. The servers' logs
say how busy their slots were (slot-seconds per second) and their decode time per token.
`--server-defaults`: also the first llama.cpp server with its own sampling defaults (top_k 40,
min_p 0.05, ...: what a client that sends only OpenAI's fields gets), for the speed they buy.
`--checks` (llamacpp_checks.py) asks the server with the most slots what the backend relies on.
Left out: the naive-loop baseline (bench_generation.py; its number is context only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from llamacpp_checks import checks
from llamacpp_servers import ALIAS, Server, find_gguf, log_size, start_cpp, start_python, timings


def load_prompts(n: int) -> list[str]:
    from importlib import resources

    path = resources.files("heirloom") / "data" / "quickstart_prompts.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["instruction"] for r in rows[:n]]


def start_servers(args, gguf: Path) -> list[Server]:
    if args.url:
        return [Server("external", args.url.rstrip("/"), [], Path(os.devnull), max(args.levels))]
    servers = []
    args.log.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not args.server_binary or args.compare_python:
            servers.append(start_python(args.server_python, gguf, args.threads,
                                        args.log.with_suffix(".python.log")))
        for n in args.slots if args.server_binary else []:
            servers.append(start_cpp(args.server_binary, gguf, args.threads, n,
                                     args.ctx_per_slot or args.max_new_tokens + 512, args.log.with_suffix(f".np{n}.log")))
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers


def clients(args, servers: list[Server]) -> dict[str, tuple[object, Server | None]]:
    from heirloom.generation import make_backend

    def openai(server: Server, c: int, **extra):
        return make_backend(f"openai:{ALIAS}@{server.url}", n_per_request="never", max_concurrency=c, timeout=600,
                            **extra), server

    out = {}
    for s in servers:
        if s.kind == "cpp":
            out[f"llama-server -np {s.slots} (max_concurrency={s.slots})"] = openai(s, s.slots)
        elif s.kind == "python" and args.server_binary:
            out["llama-cpp-python server (max_concurrency=1)"] = openai(s, 1)
        else:
            out.update({f"llama.cpp c={c}": openai(s, c) for c in args.levels})
    if args.server_defaults:
        out["llama.cpp c=1, server's sampling defaults"] = openai(servers[0], 1, extra_params=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads and llama.cpp threads")
    ap.add_argument("--server-binary", default=None, help="llama.cpp's llama-server: start one per --parallel value")
    ap.add_argument("--parallel", default="1,4,8", help="llama-server slot counts (-np), comma-separated; "
                    "each is driven with max_concurrency = its slots")
    ap.add_argument("--ctx-per-slot", type=int, default=None, help="KV cache per slot (default max-new-tokens + 512)")
    ap.add_argument("--gguf", type=Path, default=None, help="serve this GGUF instead of the embedded model's Q4_1 "
                    "(e.g. one requantized by llama-quantize; the hf backend keeps the embedded model)")
    ap.add_argument("--compare-python", action="store_true", help="with --server-binary: also llama-cpp-python's server")
    ap.add_argument("--concurrency", default="1,4", help="llama-cpp-python server (or --url): max_concurrency "
                    "values of the openai backend, comma-separated")
    ap.add_argument("--server-python", default="/tmp/llamavenv/bin/python", help="a Python with llama-cpp-python[server]")
    ap.add_argument("--url", default=None, help="use a running server instead of starting one")
    ap.add_argument("--log", type=Path, default=Path("/tmp/bench_llamacpp_server.log"), help="server logs: "
                    "FILE.python.log, FILE.npN.log")
    ap.add_argument("--checks", action="store_true", help="also check seeds, stop, n, chat template, echo logprobs")
    ap.add_argument("--server-defaults", action="store_true",
                    help="also time the first llama.cpp server at concurrency 1 with its own sampling defaults "
                         "(extra_params=False: top_k 40, min_p 0.05, ... instead of the asked-for distribution)")
    ap.add_argument("--out", type=Path, default=None, help="write the measurements as JSON (with provenance)")
    args = ap.parse_args()
    args.levels = [int(c) for c in args.concurrency.split(",")]
    args.slots = [int(n) for n in args.parallel.split(",")]

    import torch

    from heirloom.generation import SamplingParams, make_backend
    from heirloom.provenance import record

    torch.set_num_threads(args.threads)
    gguf = args.gguf or find_gguf()
    servers = start_servers(args, gguf)
    try:
        hf = make_backend("smollm2-135m")
        prompts = load_prompts(args.prompts)
        params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=args.max_new_tokens, seed=0)
        methods = {"hf": (hf, None), **clients(args, servers)}
        # Warm-up (not timed): a server's first request maps the model; the hf backend's first call
        # builds its kernels.
        for b, _ in methods.values():
            b.generate(prompts[:1], k=1, params=params.model_copy(update={"max_new_tokens": 8}), progress=False)
        load_before = os.getloadavg()[0]
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for r in range(args.repeats):
            for name, (backend, server) in methods.items():
                mark = log_size(server.log) if server else 0
                t = time.perf_counter()
                out = backend.generate(prompts, args.k, params.model_copy(update={"seed": r}), progress=False)
                sec = time.perf_counter() - t
                tokens = sum(c.num_tokens for cs in out for c in cs)
                logged = timings(server.log, mark) if server and server.kind != "external" else {}
                runs[name].append({"seconds": sec, "tokens": tokens, "server": logged,
                                   "stopped": sum(c.finish_reason == "stop" for cs in out for c in cs)})
                print(f"repeat {r}: {name} {sec:.1f} s, {tokens} tokens"
                      + (f", server: {logged['busy_s']:.1f} slot-s over {logged['requests']} requests, "
                         f"{logged['ms_per_token'] or float('nan'):.1f} ms/token" if logged else ""), file=sys.stderr)
        load_after = os.getloadavg()[0]
        n_cand = len(prompts) * args.k
        table = []
        for name, rs in runs.items() if args.repeats else ():  # --repeats 0: the checks alone
            sec = statistics.median(x["seconds"] for x in rs)
            row = {"method": name, "seconds": sec, "candidates_per_s": n_cand / sec,
                   "tokens_per_s": statistics.median(x["tokens"] / x["seconds"] for x in rs),
                   "tokens_per_candidate": statistics.mean(x["tokens"] for x in rs) / n_cand, "runs": rs}
            if all(x["server"].get("requests") for x in rs):
                row["slot_s_per_s"] = statistics.median(x["server"]["busy_s"] / x["seconds"] for x in rs)
                row["server_ms_per_token"] = statistics.median(x["server"]["ms_per_token"] for x in rs)
            table.append(row)
        for row in table:
            row["x_hf"] = row["tokens_per_s"] / table[0]["tokens_per_s"]
        found = checks(max(servers, key=lambda s: s.slots), hf, prompts) if args.checks else None
        head = (f"# {args.prompts} prompts x k={args.k} x {args.max_new_tokens} new tokens; hf: smollm2-135m "
                f"{hf.dtype}, {torch.get_num_threads()} torch thread(s); llama.cpp: {gguf.name}, {args.threads} "
                f"thread(s); {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"load {load_before:.1f} -> {load_after:.1f}, medians of {args.repeats}")
        print(head)
        print("| method | s (median) | candidates/s | tokens/s | tokens/candidate | x hf (tok/s) | slot-s per s "
              "| server ms/token |")
        print("|---|---|---|---|---|---|---|---|")
        for row in table:
            busy = f"{row['slot_s_per_s']:.2f}" if "slot_s_per_s" in row else ""
            ms = f"{row['server_ms_per_token']:.1f}" if "server_ms_per_token" in row else ""
            print(f"| {row['method']} | {row['seconds']:.1f} | {row['candidates_per_s']:.2f} | "
                  f"{row['tokens_per_s']:.0f} | {row['tokens_per_candidate']:.0f} | {row['x_hf']:.2f}x | {busy} | {ms} |")
        if found:
            print(json.dumps(found, indent=1, default=str))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            doc = {"table": table, "checks": found, "threads": args.threads, "hf": hf.describe(),
                   "servers": [{"kind": s.kind, "url": s.url, "slots": s.slots, "command": s.cmd, "version": s.version,
                                "log": str(s.log)} for s in servers],
                   "loadavg_before": load_before, "loadavg_after": load_after, "cores": os.cpu_count(),
                   "provenance": record(command=" ".join(sys.argv), model="smollm2-135m")}
            args.out.write_text(json.dumps(doc, indent=1, default=str))
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()
