"""`heirloom profile`: run profile suites on one model and write DIR/profile.json."""

from __future__ import annotations

import click

from ..profiling.registry import BUILTIN


@click.command("profile")
@click.option("--model", default="smollm2-135m", help="model reference (alias, local directory, GGUF, hub id, ...)")
@click.option("--suite", "suites", default=None,
              help=f"comma-separated suites of: {', '.join(BUILTIN)}, installed plugins, or one part of a "
                   "suite (bbq, crows_pairs) [all built-in, or --config's]")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="profile directory (resumable)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON ProfileConfig; the options below override it")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="quick profile: at most N items per suite (per category for bias/calibration)")
@click.option("--seed", type=int, default=None, help="seed for sampling and subsampling [config: 0]")
@click.option("--textual-prompts", default=None, help="textual prompt file or hub dataset [Dolly-200 test half]")
@click.option("--textual-max-new-tokens", type=click.IntRange(min=1), default=None,
              help="tokens per textual answer at most [512]")
@click.option("--toxicity-data", default=None, help="RealToxicityPrompts file [the paper's 300 toxic prompts]")
@click.option("--toxicity-prompts", type=click.IntRange(min=1), default=None,
              help="number of RTP prompts [all: 300]")
@click.option("--toxicity-samples", type=click.IntRange(min=1), default=None, help="samples per RTP prompt [25]")
@click.option("--toxicity-metric", default=None,
              help="toxicity metric spec, e.g. toxicity:backend=classifier:model=DIR [toxicity]")
@click.option("--judge-data", default=None, help="AlpacaEval annotation file for the judge suite")
@click.option("--judge-pairs", type=click.IntRange(min=1), default=None, help="number of judged pairs [all]")
@click.option("--device", default="auto", help="cpu, cuda, cuda:1, ... (hf backend)")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="rows decoded together (hf backend; default: sized to the device)")
@click.option("--option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="backend option, e.g. supports_loglikelihood=true (openai) or replicas=4 (ray); repeatable")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="data directory for the larger data sets (bbq/, alpaca_eval_outputs/, calibration/) "
                   "[$HEIRLOOM_DATA]")
@click.option("--progress/--quiet", default=True, help="show progress bars")
@click.option("--overwrite", is_flag=True, help="write into OUT even when it holds files `heirloom profile` did not make")
def command(model, suites, out, config_file, size, seed, textual_prompts, textual_max_new_tokens, toxicity_data,
            toxicity_prompts, toxicity_samples, toxicity_metric, judge_data, judge_pairs, device, batch_size,
            backend_options, data_dir, progress, overwrite):
    """Profile MODEL: textual characteristics, toxicity (RTP), social bias (BBQ, CrowS-Pairs),
    calibration (ECE) and its preferences as a judge.

    Rerun the same command after an interruption: finished suites are loaded from
    DIR/suites/ rather than recomputed. Generations (some of them toxic) are written
    to DIR/generations/ and never printed.
    """
    from pathlib import Path

    from ..errors import HeirloomError
    from ..generation import common_options
    from ..models.refs import ModelRef
    from .options import parse_options
    from ..profiling.suites import ProfileConfig, parse_suites, profile_model
    from ..validation import read_mapping, validate

    doc = read_mapping(config_file, "profile config") if config_file else {}
    if suites is not None:
        doc["suites"] = parse_suites(suites)
    overrides = {
        ("size",): size, ("seed",): seed, ("batch_size",): batch_size, ("data_dir",): data_dir,
        ("textual", "prompts"): textual_prompts, ("textual", "max_new_tokens"): textual_max_new_tokens,
        ("toxicity", "prompts"): toxicity_data, ("toxicity", "size"): toxicity_prompts,
        ("toxicity", "samples"): toxicity_samples, ("toxicity", "metric"): toxicity_metric,
        ("judge", "pairs"): judge_data, ("judge", "size"): judge_pairs,
    }
    for keys, value in overrides.items():
        if value is not None:
            target = doc
            for k in keys[:-1]:
                target = target.setdefault(k, {})
            target[keys[-1]] = value
    # OUT is the profile's own directory: never a folder of the user's files.
    from ..outputs import check_output_dir

    check_output_dir(out, ("profile.json", "suites", "generations"), overwrite, what="`heirloom profile`")
    config = validate(ProfileConfig, doc, config_file or "options")
    ref = ModelRef.parse(model)
    options = common_options(ref, {"device": device})
    options.update(parse_options(backend_options))
    try:
        profile = profile_model(model, config, Path(out), progress=progress, backend_options=options)
    except KeyboardInterrupt:
        raise HeirloomError(f"interrupted; rerun the same command to resume (finished suites are in {out}/suites)")
    shown = [a for n, a in profile.attributes.items() if not n.endswith(("/median", "/std"))]
    width = max((len(a.name) for a in shown), default=10)
    for a in shown:
        click.echo(f"{a.name.ljust(width)}  {a.value:.4g}  (n={a.n}{', ' + a.note if a.note else ''})")
    secs = ", ".join(f"{s} {t:.0f}s" for s, t in profile.config["seconds"].items())
    click.echo(f"wrote {len(profile.attributes)} attributes to {Path(out) / 'profile.json'} ({secs})")
