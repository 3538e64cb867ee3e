"""A kill -9 while a checkpoint is being written: the rerun resumes from the previous one.

The kill is real: a subprocess trains a tiny student and sends itself SIGKILL halfway
through writing one file of its last checkpoint (the adapter weights, the first file
written, or `trainer_state.json`, the last), leaving exactly what a kill
leaves on disk. The rerun must not fail: the half-written checkpoint is moved aside
(kept, and named in a warning), training resumes from the checkpoint before it, and
the student equals one trained without interruption.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from heirloom.training import TrainConfig, train_student
from heirloom.training.checkpoints import checkpoint_problem

PAIRS = pd.DataFrame({
    "prompt": ["What is 2+2?", "Name a colour.", "Say hi", "Capital of France?"],
    "completion": ["4", "Blue, like the sky.", "Hi!", "Paris is the capital of France."],
})
CONFIG = dict(max_steps=4, save_steps=2, batch_size=2, learning_rate=1e-2, warmup_ratio=0.0, logging_steps=1,
              max_length=64, prompt_format="qa", device="cpu")

# Runs in the subprocess: patch one writer to stop halfway through checkpoint-4 and SIGKILL the process.
KILLER = textwrap.dedent('''
    import json, os, signal, sys
    student, data, out, where = sys.argv[1:5]

    def die(path, blob):
        with open(path, "wb") as f:
            f.write(blob[: len(blob) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    import safetensors.torch as st  # patched before peft/transformers import it by name
    save_file = st.save_file
    def patched_save_file(tensors, filename, metadata=None):
        if where == "weights" and "checkpoint-4" in str(filename):
            die(filename, st.save(tensors, metadata=metadata))
        return save_file(tensors, filename, metadata=metadata)
    st.save_file = patched_save_file

    import torch
    torch.set_num_threads(1)

    from transformers.trainer_callback import TrainerState
    save_to_json = TrainerState.save_to_json
    def patched_save_to_json(self, path):
        if where == "state" and self.global_step == 4:
            save_to_json(self, path)
            with open(path, "rb") as fh:
                die(path, fh.read())
        return save_to_json(self, path)
    TrainerState.save_to_json = patched_save_to_json

    from heirloom.training import TrainConfig, train_student
    train_student(data, student, out, TrainConfig(**json.loads(os.environ["KILL_CONFIG"])), progress=False)
''')

# The file cut in half, and what `checkpoint_problem` says (the Trainer writes trainer_state.json last).
CUT = {"weights": ("adapter_model.safetensors", "trainer_state.json is missing"),
       "state": ("trainer_state.json", "trainer_state.json is cut short or unreadable")}


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    train_student(PAIRS, str(tiny_model_dir), out, TrainConfig(**CONFIG), progress=False)
    return out


@pytest.mark.parametrize("where", ["weights", "state"])  # the first file written, and the last
def test_kill_during_checkpoint_save_then_rerun_resumes_from_previous(tiny_model_dir, uninterrupted, tmp_path,
                                                                      capsys, where):
    from safetensors.torch import load_file

    data, out = tmp_path / "selected.jsonl", tmp_path / "student"
    PAIRS.to_json(data, orient="records", lines=True)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "KILL_CONFIG": json.dumps(CONFIG), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(tiny_model_dir), str(data), str(out), where],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed, not failed
    ckpts = out / "checkpoints"
    half = ckpts / "checkpoint-4"
    assert checkpoint_problem(ckpts / "checkpoint-2") is None
    cut, problem = CUT[where]
    assert checkpoint_problem(half) == problem
    written = {p.name: p.read_bytes() for p in half.iterdir()}
    assert cut in written and (where != "state" or "optimizer.pt" in written)

    result = train_student(data, str(tiny_model_dir), out, TrainConfig(**CONFIG), progress=False)
    err = capsys.readouterr().err
    aside = out / "checkpoints-incomplete" / "checkpoint-4"
    assert f"{half} is incomplete" in err and str(aside) in err
    assert result.resumed_from == str(ckpts / "checkpoint-2") and result.steps == 4
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == written  # kept as it was, not deleted
    assert checkpoint_problem(half) is None  # the resumed run wrote a complete one
    a = load_file(uninterrupted / "adapter" / "adapter_model.safetensors")
    b = load_file(out / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(bool((a[k] - b[k]).abs().max() < 1e-6) for k in a)


def test_checkpoint_problem_names_each_cut(tmp_path):
    import torch
    from safetensors.torch import save_file

    c = tmp_path / "checkpoint-3"
    c.mkdir()
    assert checkpoint_problem(c) == "trainer_state.json is missing"
    (c / "trainer_state.json").write_text('{"global_step": 3, "log_hist')
    assert checkpoint_problem(c) == "trainer_state.json is cut short or unreadable"
    (c / "trainer_state.json").write_text('{"global_step": 2}')
    assert checkpoint_problem(c) == "trainer_state.json is not the state of step 3"
    (c / "trainer_state.json").write_text('{"global_step": 3}')
    assert checkpoint_problem(c) == "no model weights"
    save_file({"w": torch.ones(4, 4)}, c / "model.safetensors")
    torch.save({"x": torch.ones(3)}, c / "optimizer.pt")
    assert checkpoint_problem(c) is None
    blob = (c / "model.safetensors").read_bytes()
    (c / "model.safetensors").write_bytes(blob[:-8])
    assert "model.safetensors" in checkpoint_problem(c) and "cut short" in checkpoint_problem(c)
    (c / "model.safetensors").write_bytes(blob)
    opt = (c / "optimizer.pt").read_bytes()
    (c / "optimizer.pt").write_bytes(opt[: len(opt) // 2])
    assert checkpoint_problem(c) == "optimizer.pt: not a complete torch.save archive (cut short)"
