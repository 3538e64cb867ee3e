"""heirloom's GPU path in one call: environment, offline install, generation, scoring, training.

On the device (one H200; under 8 minutes; writes $OUT/gpu_check.json):
    python3 bench/gpu_check.py --assets .gpu_assets --wheels .whl
On a CPU, the same path with tiny sizes (1-2 minutes):
    python bench/gpu_check.py --tiny
Prepare the assets once where the embedded model is installed (its wheel is too large to carry):
    python bench/gpu_check.py --export-assets .gpu_assets

For two random-weight models with SmolLM2's tokenizer, the embedded model's architecture
(SmolLM2-135M's LlamaConfig as its GGUF declares it, checked against the GGUF where the
embedded model is installed) and a ~1B Llama-style one (Llama-3.2-1B's shape, SmolLM2's
vocabulary), after recording the environment and installing heirloom offline (carried wheels
into a site dir, then `pip install --no-index --no-deps --no-build-isolation -e .`):
1. generation: k=8 samples of 256 prompts, hf backend (`make_backend`), bf16, 128 new tokens,
   temperature 1, top-p 0.9: tokens/s; the same seed twice gives the same samples, another
   seed others (a smaller batch is only reported: bf16 may flip near-ties when shapes change);
2. scoring: 2,000 BBQ-shaped log-likelihood requests (4 questions x 3 options a passage):
   requests/s, tokens/s, and the batched sums against one plain forward pass per request;
3. training: 20 LoRA and 5 full fine-tuning steps through `train_student` (batch 8, up to
   256 tokens): trained tokens/s (approximate: tokenized pair lengths) and loss.
Random weights never emit EOS: every sample runs to max_new_tokens. Each stage is timed after
a warm-up; a failed stage is recorded and the next still runs; the JSON is rewritten after
each stage (a timeout keeps what finished). Exit 1 when a stage or check failed.
Left out: vLLM (its wheel cannot be carried), `ray:` over GPUs, multi-GPU training.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# SmolLM2-135M-Instruct's config, as `transformers` reads it from the embedded GGUF.
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                    rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
                    bos_token_id=1, eos_token_id=2, pad_token_id=2)
LLAMA_1B = dict(SMOLLM2_135M, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=32, num_key_value_heads=8, head_dim=64, rope_theta=500000.0)
TINY = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
SIZES = {"gpu": dict(prompts=256, k=8, new_tokens=128, requests=2000, lora_steps=20, full_steps=5, batch=8,
                     max_length=256, layers={"smollm2-135m-shape": 30, "llama-1b-shape": 16}),
         "tiny": dict(prompts=8, k=2, new_tokens=8, requests=60, lora_steps=2, full_steps=1, batch=2,
                      max_length=64, layers={"smollm2-135m-shape": 2, "llama-1b-shape": 3})}
TOPICS = ("the water cycle|binary search|a healthy breakfast|the French revolution|compound interest|photosynthesis|"
          "how vaccines work|a job interview|the rules of chess|recycling plastic|black holes|learning a language|"
          "the stock market|writing a poem|climate change|a trip to Japan|machine learning|sleep hygiene|the Roman "
          "empire|baking bread|public speaking|electric cars|time management|the immune system|a birthday party|"
          "volcanoes|saving money|the internet|team sports|ocean tides|a rainy day|gardening").split("|")
FORMS = ["Explain {t} to a ten-year-old.", "Write a short story about {t}.", "List five facts about {t}.",
         "What are the pros and cons of {t}?", "Give me three tips about {t}.", "Summarize {t} in two sentences.",
         "Write a haiku about {t}.", "Describe a common misconception about {t}."]
PROMPT = "### Context: {context} \n### Question: {question} \n### Answer: "


def prompts(n: int) -> list[str]:
    return [FORMS[i % len(FORMS)].format(t=TOPICS[(i // len(FORMS)) % len(TOPICS)]) for i in range(n)]


def bbq_requests(n: int) -> list[tuple[str, str]]:
    """BBQ-shaped (prompt, " " + option) requests: passages of 4 questions with 3 options each."""
    people = ["grandfather", "grandson", "nurse", "engineer", "teenager", "retiree", "student", "farmer"]
    out, s = [], 0
    while len(out) < n:
        a, b, place = people[s % 8], people[(s * 3 + 1) % 8], TOPICS[s % len(TOPICS)]
        ambig = f"I saw a {a} and a {b} last week at an event about {place}, set {s}."
        for context in (ambig, ambig + f" The {b} was struggling and the {a} was helping out."):
            for question in ("Who was not comfortable?", "Who was comfortable?"):
                for option in (f"The {a}", f"The {b}", "Can't be determined"):
                    out.append((PROMPT.format(context=context, question=question), " " + option))
        s += 1
    return out[:n]


def pairs(n: int, seed: int = 0):
    import random

    import pandas as pd

    rng, words = random.Random(seed), " ".join(TOPICS).split()
    ps = prompts(n)
    return pd.DataFrame({"prompt": ps, "completion": [" ".join(rng.choice(words) for _ in range(160)) for _ in ps]})


def pip(*args: str) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *args],
                       capture_output=True, text=True, cwd=ROOT)
    return p.returncode, (p.stdout + p.stderr)[-1500:]


def install(wheels: str | None) -> dict:
    """Carried wheels into a site dir, then heirloom editable, all offline; `src/` on the path."""
    out: dict = {}
    if wheels and list(Path(wheels).glob("*.whl")):
        site = Path(tempfile.gettempdir()) / "gpu_check_site"
        out["wheels"] = sorted(p.name for p in Path(wheels).glob("*.whl"))
        out["wheels_rc"], log = pip("--upgrade", "--target", str(site), *map(str, Path(wheels).glob("*.whl")))
        if out["wheels_rc"]:
            out["wheels_log"] = log
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    try:
        import heirloom  # noqa: F401  already installed (e.g. the project's venv): leave it

        out["heirloom"] = "already importable"
    except ImportError:
        out["pip_rc"], log = pip("--no-build-isolation", "-e", str(ROOT))
        out["heirloom"] = "pip install -e . " + ("ok" if out["pip_rc"] == 0 else "failed: " + log)
        sys.path.insert(0, str(ROOT / "src"))  # this process started before the editable install
    import heirloom

    out["heirloom_file"] = heirloom.__file__
    return out


def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        env.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                   bf16=torch.cuda.is_bf16_supported(), gpu_memory_gib=round(torch.cuda.mem_get_info()[1] / 2**30, 1))
    for name in ("transformers", "peft", "accelerate", "trl", "datasets", "pydantic", "numpy", "pandas"):
        try:
            env[name] = __import__(name).__version__
        except Exception as e:  # missing or broken: recorded, the stage that needs it will fail
            env[name] = f"unavailable ({type(e).__name__})"
    return env


def tokenizer_from(assets: str | None):
    from transformers import AutoTokenizer

    if assets:
        return AutoTokenizer.from_pretrained(assets), assets
    from heirloom.models.loader import load_tokenizer

    return load_tokenizer("smollm2-135m"), "embedded smollm2-135m"


def gguf_config_check() -> str:
    """Whether SMOLLM2_135M matches the config transformers reads from the embedded GGUF."""
    try:
        from heirloom.models.loader import local_path

        cfg = json.loads((Path(local_path("smollm2-135m")) / "config.json").read_text())
    except Exception as e:  # the embedded package is absent (the device): nothing to compare with
        return f"not checked ({type(e).__name__})"
    cfg["rope_theta"] = cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta"))
    diff = {k: (v, cfg.get(k)) for k, v in SMOLLM2_135M.items() if round(float(cfg.get(k) or 0), 9) != round(v, 9)}
    return "matches the GGUF" if not diff else f"differs: {diff}"


def build(name: str, base: dict, layers: int, tiny: bool, tokenizer, where: Path, device: str) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(base, num_hidden_layers=layers, **(TINY if tiny else {}))
    torch.manual_seed(0)
    with torch.device(device):  # initialize where it runs: a 1B init on the CPU is slow
        model = LlamaForCausalLM(LlamaConfig(**cfg)).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(where / name)
    tokenizer.save_pretrained(where / name)
    return {"ok": True, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1), "config": cfg}


def free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def generation(path: Path, size: dict, device: str, dtype: str) -> dict:
    from heirloom.generation import SamplingParams, make_backend

    backend = make_backend(str(path), device=device, dtype=dtype)
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=size["new_tokens"], seed=0)
    ps = prompts(size["prompts"])
    backend.generate(ps[:4], k=2, params=params, progress=False)  # warm-up: kernels, allocator
    start = time.perf_counter()
    out = backend.generate(ps, k=size["k"], params=params, progress=False)
    seconds = time.perf_counter() - start
    tokens = sum(c.num_tokens for row in out for c in row)
    sub, texts = ps[:8], lambda res: [[c.text for c in row] for row in res]
    first = texts(backend.generate(sub, k=4, params=params, progress=False))
    again = texts(backend.generate(sub, k=4, params=params, progress=False))
    other = texts(backend.generate(sub, k=4, params=params.model_copy(update={"seed": 1}), progress=False))
    smaller = texts(backend.generate(sub[:3], k=4, params=params, progress=False))
    same_batch = sum(a == b for ra, rb in zip(smaller, first) for a, b in zip(ra, rb))
    res = {"backend_batch_size": getattr(backend, "batch_size", None), "prompts": len(ps), "k": size["k"],
           "samples": len(ps) * size["k"], "generated_tokens": tokens, "seconds": round(seconds, 2),
           "tokens_per_s": round(tokens / seconds, 1), "samples_per_s": round(len(ps) * size["k"] / seconds, 2),
           "seed_reproduces": first == again, "other_seed_differs": first != other,
           "smaller_batch_same_samples": f"{same_batch} of {3 * 4}"}
    res["ok"] = res["seed_reproduces"] and res["other_seed_differs"] and tokens > 0
    backend.close()
    return res


def scoring(path: Path, size: dict, device: str, dtype: str) -> dict:
    import torch

    from heirloom.generation import make_backend

    backend = make_backend(str(path), device=device, dtype=dtype)
    reqs = bbq_requests(size["requests"])
    backend.loglikelihood(reqs[:24], progress=False)  # warm-up
    start = time.perf_counter()
    out = backend.loglikelihood(reqs, progress=False)
    seconds = time.perf_counter() - start
    tok, model = backend.tokenizer, backend.model
    seq_tokens = sum(len(tok(c + x)["input_ids"]) for c, x in reqs)
    worst = 0.0  # |batched - plain| per scored token on a sample of requests (a plain forward pass each)
    with torch.inference_mode():
        for i in range(0, len(reqs), max(1, len(reqs) // 12)):
            ctx, whole = tok(reqs[i][0])["input_ids"], tok(reqs[i][0] + reqs[i][1])["input_ids"]
            if whole[:len(ctx)] != ctx or out[i].num_tokens != len(whole) - len(ctx):
                continue  # a token straddles the boundary: the scorer's fallback split, not compared
            logp = torch.log_softmax(model(input_ids=torch.tensor([whole], device=model.device)).logits[0].float(), -1)
            plain = sum(logp[p - 1, whole[p]].item() for p in range(len(ctx), len(whole)))
            worst = max(worst, abs(plain - out[i].logprob) / out[i].num_tokens)
    res = {"requests": len(reqs), "seconds": round(seconds, 2), "requests_per_s": round(len(reqs) / seconds, 1),
           "sequence_tokens_per_s": round(seq_tokens / seconds, 1),
           "scored_tokens": sum(r.num_tokens for r in out), "max_abs_diff_per_token_vs_plain": round(worst, 5),
           "all_finite": all(r.logprob == r.logprob and abs(r.logprob) < float("inf") for r in out)}
    res["ok"] = res["all_finite"] and len(out) == len(reqs)
    backend.close()
    return res


def training(path: Path, method: str, steps: int, size: dict, device: str, tokenizer, where: Path) -> dict:
    from heirloom.training import TrainConfig, train_student

    data = pairs(steps * size["batch"])
    cfg = TrainConfig(method=method, max_steps=steps, batch_size=size["batch"], max_length=size["max_length"],
                      logging_steps=1, save_steps=10_000, resume=False, device=device)
    result = train_student(data, str(path), where / f"{path.name}-{method}", cfg, progress=False)
    lengths = [len(tokenizer(p + c)["input_ids"]) for p, c in zip(data.prompt, data.completion)]
    tokens = sum(min(size["max_length"], n) for n in lengths)
    res = {"steps": result.steps, "examples": result.n_examples, "approx_tokens": tokens,
           "seconds": round(result.seconds, 2), "tokens_per_s_approx": round(tokens / result.seconds, 1),
           "final_loss": round(result.final_loss, 4), "mean_loss": round(result.mean_loss, 4)}
    res["ok"] = result.steps == steps and result.final_loss == result.final_loss
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models and sizes, on the CPU unless CUDA is there")
    ap.add_argument("--assets", help="directory with SmolLM2's tokenizer (--export-assets); default: the embedded")
    ap.add_argument("--wheels", help="directory of carried wheels to install first (offline)")
    ap.add_argument("--export-assets", metavar="DIR", help="write the tokenizer the device needs into DIR and exit")
    ap.add_argument("--out", help="JSON results (default: $OUT/gpu_check.json when $OUT is set)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="skip stages that would start after this")
    args = ap.parse_args()
    t0, results = time.perf_counter(), {"mode": "tiny" if args.tiny else "gpu", "stages": {}}
    out = Path(args.out) if args.out else Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else None

    def save() -> None:
        results["total_seconds"] = round(time.perf_counter() - t0, 1)
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2, default=str))

    def stage(name: str, fn, *a):
        if time.perf_counter() - t0 > args.budget_s:
            results["stages"][name] = {"ok": False, "skipped": f"time budget of {args.budget_s:.0f} s spent"}
        else:
            start = time.perf_counter()
            try:
                results["stages"][name] = fn(*a)
            except Exception as e:  # recorded; the next stage still runs
                results["stages"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:800],
                                           "traceback": traceback.format_exc()[-2000:]}
            results["stages"][name]["stage_seconds"] = round(time.perf_counter() - start, 1)
            free()
        print(f"[{time.perf_counter() - t0:6.1f}s] {name}: {json.dumps(results['stages'][name], default=str)[:400]}",
              flush=True)
        save()

    results["install"] = install(args.wheels)
    if args.export_assets:
        tok, _ = tokenizer_from(None)
        tok.save_pretrained(args.export_assets)
        print(f"wrote {args.export_assets}: the smollm2-135m tokenizer; carry it with --assets")
        return 0
    results["environment"] = env = environment()
    print(json.dumps({"install": results["install"], "environment": env}, indent=1), flush=True)
    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("error: no CUDA device (use --tiny on a CPU)", file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = "bfloat16" if device == "cuda" else "float32"
    size = SIZES["tiny" if args.tiny else "gpu"]
    results.update(device=device, dtype=dtype, sizes=size, smollm2_config=gguf_config_check())
    tokenizer, results["tokenizer"] = tokenizer_from(args.assets)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name, base in (("smollm2-135m-shape", SMOLLM2_135M), ("llama-1b-shape", LLAMA_1B)):
            path = Path(tmp) / name
            stage(f"{name}/build", build, name, base, size["layers"][name], args.tiny, tokenizer, Path(tmp), device)
            if not path.exists():
                continue
            stage(f"{name}/generate", generation, path, size, device, dtype)
            stage(f"{name}/loglikelihood", scoring, path, size, device, dtype)
            stage(f"{name}/train_lora", training, path, "lora", size["lora_steps"], size, device, tokenizer, Path(tmp))
            stage(f"{name}/train_full", training, path, "full", size["full_steps"], size, device, tokenizer, Path(tmp))
    failed = [k for k, v in results["stages"].items() if not v.get("ok")]
    failed += [f"install ({k})" for k in ("wheels_rc", "pip_rc") if results["install"].get(k)]
    results["failed"] = failed
    save()
    print(f"done in {time.perf_counter() - t0:.0f} s; " + (f"FAILED: {', '.join(failed)}" if failed else "all ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
