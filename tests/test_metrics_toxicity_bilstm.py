"""The jigsaw-bilstm backend: the PyTorch port of toxic-comment-classifier's Keras BiLSTM reproduces
the outputs the package publishes (computed by its own TensorFlow code), and fails clearly when the
package is not installed. The reference test runs where `pip install --no-deps toxic-comment-classifier
h5py` was done (skipped otherwise)."""

from importlib import metadata

import numpy as np
import pytest

from heirloom.errors import HeirloomError
from heirloom.metrics import get_metric
from heirloom.metrics.toxicity.bilstm import words

# toxic-comment-classifier 0.3.0's README: classify() of one comment, predict_batch() (mean of the six labels).
CLASSIFY = ("You are so dumb and stupid!", {
    "toxic": 0.9889402985572815, "severe_toxic": 0.07256772369146347, "obscene": 0.620429277420044,
    "threat": 0.01934845559298992, "insult": 0.8664075136184692, "identity_hate": 0.04072948172688484})
BATCH = {"I hate you so much!": 0.1395, "This is wonderful news.": 0.0013, "You're disgusting!": 0.3110,
         "Absolutely love your energy!": 0.0088, "You're the worst person ever!": 0.0937, "Have a nice day :)": 0.0115}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HEIRLOOM_CACHE", str(tmp_path / "cache"))


def installed():
    try:
        metadata.version("toxic-comment-classifier")
        import h5py  # noqa: F401
    except (metadata.PackageNotFoundError, ImportError):
        pytest.skip("toxic-comment-classifier/h5py not installed (pip install --no-deps toxic-comment-classifier h5py)")


def test_reproduces_the_packages_published_outputs():
    installed()
    text, expected = CLASSIFY
    for label, value in expected.items():
        got = get_metric(f"toxicity:backend=jigsaw-bilstm:attribute={label}").score([text])[0]
        assert got == pytest.approx(value, abs=2e-6), label
    metric = get_metric("toxicity:backend=jigsaw-bilstm:cache=false")
    assert metric.attribute == "toxic"
    by_label, _ = metric.backend.score_batch(list(BATCH))
    means = np.mean([by_label[a] for a in metric.backend.attributes], axis=0)
    np.testing.assert_allclose(means, list(BATCH.values()), atol=5e-5)  # the README rounds to 4 digits
    assert metric.info()["scorer"].startswith("jigsaw-bilstm|toxic-comment-classifier@")


def test_keras_word_splitting():
    filters = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
    assert words("You're the WORST... person-ever!", filters, True, " ") == ["you're", "the", "worst", "person",
                                                                              "ever"]


def test_missing_package_names_the_pip_line(monkeypatch):
    import heirloom.metrics.toxicity.bilstm as module

    class Missing:
        PackageNotFoundError = metadata.PackageNotFoundError

        @staticmethod
        def version(name):
            raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(module, "metadata", Missing)
    with pytest.raises(HeirloomError, match="pip install --no-deps toxic-comment-classifier h5py"):
        get_metric("toxicity:backend=jigsaw-bilstm")
