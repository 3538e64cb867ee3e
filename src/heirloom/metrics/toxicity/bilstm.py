"""`toxicity:backend=jigsaw-bilstm`: the Jigsaw-trained BiLSTM shipped inside a PyPI package.

The `toxic-comment-classifier` package (MIT; 0.3.0) ships its weights (`model.weights.h5`, Keras 3)
and its word index (a pickled Keras `Tokenizer`) inside the wheel, so it is a real toxicity
classifier, trained on the six labels of the Jigsaw Toxic Comment data, that installs from a
package registry and runs offline. Its own code needs TensorFlow; this module re-implements its
forward pass in PyTorch from the same files (reading them with h5py), so install it without its
dependencies: `pip install --no-deps toxic-comment-classifier h5py`.

Model (as in the package): Keras word tokenization (lower-case, punctuation removed, split on
spaces, the 20,000 most frequent words, others dropped), the last 100 words kept and zero-padded
at the front, embedding 20,000 x 50, a bidirectional LSTM (50 units each way, tanh/sigmoid, gate
order i, f, g, o as in PyTorch), max over time, dense 50 + ReLU, dense 6 + sigmoid. The
attributes are its labels: `toxic` (default), `severe_toxic`, `obscene`, `threat`, `insult`,
`identity_hate`. The tokenizer pickle is read with an unpickler that only builds the Tokenizer's
plain data (no code from the pickle runs). Its cache key is the package version and the SHA-256 of
the two files. Left out: the package's own `predict` (the mean of the six labels).
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
from importlib import metadata
from pathlib import Path

import numpy as np

from ...errors import HeirloomError
from .base import ToxicityBackend

PACKAGE, MODULE = "toxic-comment-classifier", "toxic_classifier"
LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
MAXLEN, UNITS = 100, 50
_PIP = "pip install --no-deps toxic-comment-classifier h5py"


class _TokenizerState:
    """Stands in for keras' Tokenizer while unpickling: keeps its attributes, runs nothing."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "Tokenizer" and module.endswith("preprocessing.text"):
            return _TokenizerState
        if (module, name) in (("collections", "OrderedDict"), ("collections", "defaultdict"),
                              ("builtins", "int"), ("builtins", "dict")):
            return super().find_class(module, name)
        raise HeirloomError(f"{PACKAGE}: tokenizer.pickle refers to {module}.{name}, which is not expected")


def words(text: str, filters: str, lower: bool, split: str) -> list[str]:
    """keras' text_to_word_sequence."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


class JigsawBiLSTM(ToxicityBackend):
    name = "jigsaw-bilstm"
    batch_size = 512

    def check(self) -> None:
        try:
            self._version = metadata.version(PACKAGE)
            import h5py  # noqa: F401
        except (metadata.PackageNotFoundError, ImportError):
            raise HeirloomError(f"the jigsaw-bilstm toxicity backend needs an optional dependency: {_PIP} "
                                "(--no-deps: the package's own requirements pull TensorFlow, not used here)") from None
        spec = importlib.util.find_spec(MODULE)  # locates the files without importing it (it imports tensorflow)
        root = Path(list(spec.submodule_search_locations)[0]) / "model"
        self.weights, self.tokenizer_file = root / "model.weights.h5", root / "tokenizer.pickle"
        for f in (self.weights, self.tokenizer_file):
            if not f.is_file():
                raise HeirloomError(f"{PACKAGE} {self._version}: {f} is missing (reinstall: {_PIP})")
        digest = hashlib.sha256()
        for f in (self.weights, self.tokenizer_file):
            digest.update(f.read_bytes())
        self.content_sha256 = digest.hexdigest()
        self._net = None

    @property
    def attributes(self) -> tuple[str, ...]:
        return LABELS

    @property
    def cache_key(self) -> str:
        return f"jigsaw-bilstm|{PACKAGE}@{self._version}|sha256:{self.content_sha256}"

    @property
    def label_text(self) -> str:
        return f"{PACKAGE} {self._version} (sha256 {self.content_sha256[:12]})"

    def _load(self):
        if self._net is None:
            import h5py

            with open(self.tokenizer_file, "rb") as f:
                tok = _SafeUnpickler(f).load()
            self._tok = tok
            with h5py.File(self.weights, "r") as h:
                w = {k: np.asarray(h[f"layers/{k}"]) for k in (
                    "embedding/vars/0", "dense/vars/0", "dense/vars/1", "dense_1/vars/0", "dense_1/vars/1",
                    *(f"bidirectional/{d}_layer/cell/vars/{i}" for d in ("forward", "backward") for i in range(3)))}
            self._net = _build(w)
        return self._net

    def sequences(self, texts: list[str]) -> np.ndarray:
        """keras' texts_to_sequences + pad_sequences(maxlen=100): the last 100 known words, zeros in front."""
        tok = self._tok
        index, limit, oov = tok.word_index, tok.num_words, getattr(tok, "oov_token", None)
        out = np.zeros((len(texts), MAXLEN), dtype=np.int64)
        for r, text in enumerate(texts):
            ids = []
            for w in words(text, tok.filters, tok.lower, tok.split):
                i = index.get(w)
                if i is not None and not (limit and i >= limit):
                    ids.append(i)
                elif oov is not None:
                    oov_i = index.get(oov)
                    if oov_i is not None:
                        ids.append(oov_i)
            ids = ids[-MAXLEN:]
            if ids:
                out[r, MAXLEN - len(ids):] = ids
        return out

    def score_batch(self, texts):
        import torch

        net = self._load()
        with torch.inference_mode():
            probs = net(torch.from_numpy(self.sequences(texts))).double().numpy()
        return {a: probs[:, j] for j, a in enumerate(LABELS)}, [None] * len(texts)


def _build(w: dict):
    """The package's Keras network as a torch module, weights copied from the .h5 arrays."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(*w["embedding/vars/0"].shape)
            self.lstm = nn.LSTM(w["embedding/vars/0"].shape[1], UNITS, batch_first=True, bidirectional=True)
            self.dense = nn.Linear(2 * UNITS, UNITS)
            self.out = nn.Linear(UNITS, len(LABELS))

        def forward(self, ids):
            seq, _ = self.lstm(self.embedding(ids))
            hidden = torch.relu(self.dense(seq.max(dim=1).values))
            return torch.sigmoid(self.out(hidden))

    net = Net()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    with torch.no_grad():
        net.embedding.weight.copy_(t(w["embedding/vars/0"]))
        for direction, suffix in (("forward", ""), ("backward", "_reverse")):
            kernel, recurrent, bias = (w[f"bidirectional/{direction}_layer/cell/vars/{i}"] for i in range(3))
            # Keras stores (in, 4u) with gates i, f, c, o; torch wants (4u, in) in the same gate order.
            getattr(net.lstm, f"weight_ih_l0{suffix}").copy_(t(kernel.T))
            getattr(net.lstm, f"weight_hh_l0{suffix}").copy_(t(recurrent.T))
            getattr(net.lstm, f"bias_ih_l0{suffix}").copy_(t(bias))
            getattr(net.lstm, f"bias_hh_l0{suffix}").zero_()
        net.dense.weight.copy_(t(w["dense/vars/0"].T))
        net.dense.bias.copy_(t(w["dense/vars/1"]))
        net.out.weight.copy_(t(w["dense_1/vars/0"].T))
        net.out.bias.copy_(t(w["dense_1/vars/1"]))
    return net.eval()
