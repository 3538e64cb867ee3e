"""`heirloom train`: fine-tune a student on selected (prompt, completion) pairs.

Options given on the command line override the `--config` file, which overrides
the defaults of `heirloom.training.TrainConfig` (shown in `--help`).
"""

from __future__ import annotations

import click

from ..training.config import TrainConfig

_F = TrainConfig.model_fields
TRAIN_MARKERS = ("train.meta.json", "checkpoints/run.json")  # what an earlier (or interrupted) training leaves


def _help(name: str) -> str:
    return _F[name].description


def _default(name: str):
    return _F[name].default


@click.command("train")
@click.option("--data", "data", required=True, help="selected pairs: a table with prompt and completion columns")
@click.option("--student", default="smollm2-135m", help="model to fine-tune: embedded alias, local dir, GGUF or hub id")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="output directory (adapter/, merged/, checkpoints/, train_log.jsonl, train.meta.json)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML file of training options (TrainConfig fields, or a run config's train: section)")
@click.option("--method", type=click.Choice(["lora", "full"]), default=None, show_default=_default("method"),
              help=_help("method"))
@click.option("--epochs", type=float, default=None, show_default=str(_default("epochs")), help=_help("epochs"))
@click.option("--max-steps", type=int, default=None, help=_help("max_steps"))
@click.option("--lr", type=float, default=None, show_default="2e-4 (lora) / 2e-5 (full)", help="peak learning rate")
@click.option("--batch-size", type=int, default=None, show_default=str(_default("batch_size")),
              help=_help("batch_size"))
@click.option("--grad-accum", type=int, default=None, show_default=str(_default("grad_accum")),
              help=_help("grad_accum"))
@click.option("--max-length", type=int, default=None, show_default=str(_default("max_length")),
              help=_help("max_length"))
@click.option("--cut-off-completions", type=click.Choice(["end", "open"]), default=None,
              show_default=_default("cut_off_completions"), help=_help("cut_off_completions"))
@click.option("--seed", type=int, default=None, show_default=str(_default("seed")), help=_help("seed"))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              show_default=_default("device"), help=_help("device"))
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]), default=None,
              show_default=_default("dtype"), help=_help("dtype"))
@click.option("--resume/--no-resume", default=None, show_default="resume",
              help="continue from the latest checkpoint in OUT/checkpoints, or start over (deleting them)")
@click.option("--quiet", is_flag=True, help="no progress bar or per-step logs")
@click.option("--overwrite", is_flag=True,
              help="write into OUT even when it holds files `heirloom train` did not make")
def command(data, student, out_dir, config_path, method, epochs, max_steps, lr, batch_size, grad_accum,
            max_length, cut_off_completions, seed, device, dtype, resume, quiet, overwrite):
    """Fine-tune STUDENT on the selected pairs in DATA (LoRA by default, loss on the completion only).

    Writes OUT/merged (a model `--student OUT/merged` loads), OUT/adapter for LoRA,
    OUT/train_log.jsonl and OUT/train.meta.json. Several GPUs:
    `accelerate launch $(which heirloom) train ...`.
    """
    from ..models import check_model
    from ..outputs import check_output_dir
    from ..training import load_train_config, train_student

    # OUT gets merged/, adapter/, checkpoints/ (deleted on a fresh start): never a folder of the user's files.
    check_output_dir(out_dir, TRAIN_MARKERS, overwrite, what="`heirloom train`")
    config = load_train_config(
        config_path, method=method, epochs=epochs, max_steps=max_steps, learning_rate=lr, batch_size=batch_size,
        grad_accum=grad_accum, max_length=max_length, cut_off_completions=cut_off_completions, seed=seed,
        device=device, dtype=dtype, resume=resume,
    )
    check_model(student)  # a typo or a non-model directory fails before the data is tokenized
    result = train_student(data, student, out_dir, config, progress=not quiet)
    click.echo(
        f"trained {student} ({config.method}) on {result.n_examples} pairs: {result.steps} steps in "
        f"{result.seconds:.1f} s, final loss {result.final_loss:.4f}"
        + (f", {result.n_truncated} completions truncated to max_length" if result.n_truncated else "")
        + (f", {result.n_skipped} pairs skipped (prompt too long)" if result.n_skipped else "")
    )
    click.echo(f"model: {result.merged_dir}")
