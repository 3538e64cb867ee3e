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
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N prompts")
@click.option("--k", type=click.IntRange(min=1), default=4, help="candidates per prompt per teacher")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="candidate pool (.jsonl or .parquet)")
@click.option("--chat/--raw", default=None, help="force the chat template / raw continuation (default: chat template if the model has one)")
@click.option("--batch-size", type=int, default=None, help="rows decoded together (hf backend; default: sized to the device)")
@click.option("--device", default="auto", help="cpu, cuda, cuda:1, ... (hf backend)")
@click.option("--option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="backend option, e.g. max_concurrency=16 (openai) or gpu_memory_utilization=0.8 (vllm); repeatable")
@click.option("--overwrite", is_flag=True,
              help="start OUT afresh even when it exists and was not made by `heirloom generate` "
                   "(an interrupted generation is then redone, not resumed)")
@click.option("--progress/--quiet", default=True, help="show progress bars")
@pydantic_options(SamplingParams)
def command(models, prompts, column, split, limit, k, out, chat, batch_size, device, backend_options, overwrite,
            progress, **sampling):
    """Write a candidate pool: one row per (prompt, teacher, sample).

    Resumable: run the same command again after an interruption and it continues
    where it stopped, without duplicates. OUT is only replaced when an earlier
    `heirloom generate` made it, or with --overwrite.
    """
    from ..generation import check_options, common_options
    from ..models import check_model
    from ..models.refs import ModelRef
    from ..outputs import check_output, meta_path
    from ..prompts import load_prompts
    from ..runs.config import TeacherConfig
    from ..runs.stages import generate_pool
    from ..tables import table_format
    from ..validation import validate

    params = collect(SamplingParams, sampling)
    table_format(out)  # a bad suffix fails before any model is loaded
    out = Path(out)
    work = out if out.suffix == ".jsonl" else out.with_name(out.name + ".partial.jsonl")
    # The prompt file, a scored pool or any file of the user's is never written over by accident;
    # a work file of an interrupted `heirloom generate` is resumed.
    inputs = [prompts] if Path(prompts).exists() else []
    for path in dict.fromkeys([out, work]):
        check_output(path, "generate", inputs, overwrite)
    prompt_set = load_prompts(prompts, column=column, split=split, limit=limit)
    for text in models:  # every reference and its options are checked before the first model loads
        ref = ModelRef.parse(text)
        options = common_options(ref, {"device": device, "batch_size": batch_size})
        options.update(parse_options(backend_options))
        check_model(ref)
        check_options(ref, options)
    if overwrite:
        for path in {out, work}:
            path.unlink(missing_ok=True)
            meta_path(path).unlink(missing_ok=True)
    teachers = [validate(TeacherConfig, {"model": text, "device": device, "batch_size": batch_size,
                                         "options": parse_options(backend_options)}, "generate") for text in models]
    pool = generate_pool(prompt_set, teachers, k, params, out, chat=chat, progress=progress, log=lambda message: None)
    click.echo(f"wrote {len(pool)} candidates ({len(prompt_set)} prompts x {len(teachers)} teacher(s) x k={k}) to {out}")
