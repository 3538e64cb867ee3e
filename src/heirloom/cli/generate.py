"""`heirloom generate`: k candidates per prompt from one or more teachers."""

from __future__ import annotations

from pathlib import Path

import click

from ..generation.base import SamplingParams
from .options import collect, parse_options, pydantic_options


@click.command("generate")
@click.option("--model", "models", multiple=True, default=["smollm2-135m"],
              help="teacher model reference (repeat for a multi-source pool); see `heirloom models`")
@click.option("--prompts", required=True, help="prompt file (JSONL/JSON/CSV/Parquet), built-in set name, or hub dataset id")
@click.option("--column", default=None, help="prompt column (default: the first of prompt, instruction, inputs, question, text)")
@click.option("--split", default="train", help="split, for a hub dataset")
@click.option("--limit", type=int, default=None, help="use only the first N prompts")
@click.option("--k", type=click.IntRange(min=1), default=4, help="candidates per prompt per teacher")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="candidate pool (.jsonl or .parquet)")
@click.option("--chat/--raw", default=None, help="force the chat template / raw continuation (default: chat template if the model has one)")
@click.option("--batch-size", type=int, default=None, help="rows decoded together (hf backend; default: sized to the device)")
@click.option("--device", default="auto", help="cpu, cuda, cuda:1, ... (hf backend)")
@click.option("--option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="backend option, e.g. max_concurrency=16 (openai) or gpu_memory_utilization=0.8 (vllm); repeatable")
@pydantic_options(SamplingParams)
def command(models, prompts, column, split, limit, k, out, chat, batch_size, device, backend_options, **sampling):
    """Write a candidate pool: one row per (prompt, teacher, sample).

    Resumable: run the same command again after an interruption and it continues
    where it stopped, without duplicates.
    """
    from ..candidates import finalize_pool, generate_candidates
    from ..generation import make_backend
    from ..models.refs import ModelRef
    from ..prompts import load_prompts
    from ..tables import table_format

    params = collect(SamplingParams, sampling)
    table_format(out)  # a bad suffix fails before any model is loaded
    prompt_set = load_prompts(prompts, column=column, split=split, limit=limit)
    out = Path(out)
    work = out if out.suffix == ".jsonl" else out.with_name(out.name + ".partial.jsonl")
    teachers = []
    for text in models:
        ref = ModelRef.parse(text)
        options = {"device": device, "batch_size": batch_size} if ref.backend == "hf" else {}
        options.update(parse_options(backend_options))
        backend = make_backend(ref, **options)
        teachers.append(ref.identity)
        generate_candidates(backend, prompt_set, k, params, work, teacher=ref.identity, chat=chat)
        backend.close()
    pool = finalize_pool(work, prompt_set, teachers, k, out=out)
    if work != out:
        work.unlink()
        Path(str(work) + ".meta.json").replace(str(out) + ".meta.json")
    click.echo(f"wrote {len(pool)} candidates ({len(prompt_set)} prompts x {len(teachers)} teacher(s) x k={k}) to {out}")
