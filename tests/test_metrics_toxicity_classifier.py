"""The classifier toxicity backend on tiny random-weight BERT classifiers built and saved here:
scores equal a direct transformers computation (softmax and sigmoid heads), the toxic label is found
and negations are skipped, the cache and the fingerprint separate two models, and bad models/labels
fail with one-line errors."""

import json

import numpy as np
import pytest

from heirloom.errors import HeirloomError
from heirloom.metrics import get_metric
from heirloom.metrics.cache import ScoreCache

WORDS = "you are a stupid idiot nice day hello world what lovely weather go away".split()
TEXTS = ["you are a stupid idiot", "hello world nice day", "what lovely weather", "go away you idiot " * 30]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HEIRLOOM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def build(path, labels, multi_label=False, seed=0, max_positions=32):
    """A 1-layer BERT sequence classifier with a word-level vocab, saved to `path`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizer(str(path / "vocab.txt"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=max_positions,
                        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
                        problem_type="multi_label_classification" if multi_label else "single_label_classification")
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def direct(path, texts, multi_label):
    """The reference: transformers itself, one text at a time, truncated to the position limit."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    out = []
    with torch.no_grad():
        for t in texts:
            logits = model(**tok(t, truncation=True, max_length=model.config.max_position_embeddings,
                                 return_tensors="pt")).logits[0]
            out.append((torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)).numpy())
    return np.array(out, dtype=np.float64)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return build(tmp_path_factory.mktemp("single"), ["non-toxic", "toxic"])


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    return build(tmp_path_factory.mktemp("multi"), ["severe_toxic", "toxic", "obscene", "threat", "insult"],
                 multi_label=True, seed=1)


def test_single_label_softmax_equals_transformers(single):
    metric = get_metric(f"toxicity:backend=classifier:model={single}:batch_size=3")
    values, reasons = metric.score_with_reasons(TEXTS + [""])
    expected = direct(single, TEXTS, multi_label=False)
    assert metric.attribute == "toxic"  # "non-toxic" is a negation, not the toxic label
    np.testing.assert_allclose(values[:4], expected[:, 1], atol=1e-6)
    assert np.isnan(values[4]) and "empty text" in reasons[4]
    assert metric.backend.activation == "softmax"
    non = get_metric(f"toxicity:backend=classifier:model={single}:attribute=non-toxic").score(TEXTS)
    np.testing.assert_allclose(non + values[:4], 1.0, atol=1e-6)  # the other class of the same softmax


def test_multi_label_sigmoid_heads_are_attributes(multi):
    expected = direct(multi, TEXTS, multi_label=True)
    metric = get_metric("toxicity", backend="classifier", model=str(multi))
    assert metric.attribute == "toxic"  # the exact name wins over severe_toxic
    assert metric.backend.attributes == ("severe_toxic", "toxic", "obscene", "threat", "insult")
    np.testing.assert_allclose(metric.score(TEXTS), expected[:, 1], atol=1e-6)
    insult = get_metric(f"toxicity:backend=classifier:model={multi}:attribute=insult")
    np.testing.assert_allclose(insult.score(TEXTS), expected[:, 4], atol=1e-6)
    by_label = get_metric(f"toxicity:backend=classifier:model={multi}:label=Obscene")
    np.testing.assert_allclose(by_label.score(TEXTS), expected[:, 2], atol=1e-6)


def test_long_texts_are_truncated_to_the_model_limit(single):
    long = " ".join(["idiot"] * 500)  # 500 tokens against 32 positions: would fail untruncated
    value = get_metric(f"toxicity:backend=classifier:model={single}:cache=false").score([long])
    np.testing.assert_allclose(value, direct(single, [long], multi_label=False)[:, 1], atol=1e-6)
    shorter = get_metric(f"toxicity:backend=classifier:model={single}:max_length=8").score([long])
    head = " ".join(["idiot"] * 6)  # 8 tokens = [CLS] + 6 words + [SEP]
    np.testing.assert_allclose(shorter, direct(single, [head], multi_label=False)[:, 1], atol=1e-6)


def test_two_models_never_share_cached_scores(tmp_path, single, cache_dir):
    import shutil

    other = build(tmp_path / "other", ["non-toxic", "toxic"], seed=7)
    a = get_metric(f"toxicity:backend=classifier:model={single}")
    b = get_metric(f"toxicity:backend=classifier:model={other}")
    va, vb = a.score(TEXTS), b.score(TEXTS)
    assert a.backend.cache_key != b.backend.cache_key and a.fingerprint() != b.fingerprint()
    np.testing.assert_allclose(vb, direct(other, TEXTS, multi_label=False)[:, 1], atol=1e-6)
    assert not np.allclose(va, vb)
    cache = ScoreCache(cache_dir / "scores.sqlite")
    assert cache.count(a.backend.cache_key) == cache.count(b.backend.cache_key) == 2 * len(TEXTS)
    cache.close()
    # The same files at another path are the same model: same key, scores read back from the cache.
    copy = shutil.copytree(single, tmp_path / "copy")
    c = get_metric(f"toxicity:backend=classifier:model={copy}")
    assert c.backend.cache_key == a.backend.cache_key
    c.backend.score_batch = None  # would fail if called: everything must come from the cache
    np.testing.assert_array_equal(c.score(TEXTS), va)
    # A changed file is another model.
    (copy / "config.json").write_text(json.dumps({**json.loads((copy / "config.json").read_text()), "x": 1}))
    assert get_metric(f"toxicity:backend=classifier:model={copy}").backend.cache_key != a.backend.cache_key


def test_hub_ids_record_the_commit_they_resolve_to(tmp_path, single, monkeypatch):
    """A hub id read from a Hugging Face cache laid out as the hub client lays it (offline)."""
    import shutil

    import huggingface_hub.constants as hub

    commits = {"main": "a" * 40, "v2": "b" * 40}
    repo = tmp_path / "hub" / "models--acme--tox"
    for ref, commit in commits.items():
        shutil.copytree(single if ref == "main" else build(tmp_path / "v2", ["non-toxic", "toxic"], seed=3),
                        repo / "snapshots" / commit)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    unpinned = get_metric("toxicity:backend=classifier:model=acme/tox")
    assert unpinned.backend.revision == commits["main"]
    assert unpinned.info()["revision"] == commits["main"]
    assert unpinned.scorer == f"classifier acme/tox@{'a' * 12}, toxic"
    np.testing.assert_allclose(unpinned.score(TEXTS), direct(single, TEXTS, multi_label=False)[:, 1], atol=1e-6)
    tagged = get_metric("toxicity:backend=classifier:model=acme/tox:revision=v2")
    assert tagged.backend.revision == commits["v2"] and tagged.fingerprint() != unpinned.fingerprint()
    np.testing.assert_allclose(tagged.score(TEXTS), direct(tmp_path / "v2", TEXTS, multi_label=False)[:, 1],
                               atol=1e-6)
    assert tagged.spec == "toxicity:backend=classifier:model=acme/tox:revision=v2"
    with pytest.raises(HeirloomError, match="cannot read a transformers config"):
        get_metric("toxicity:backend=classifier:model=acme/missing")


def test_provenance_and_report_label_name_the_classifier(single):
    metric = get_metric(f"toxicity:backend=classifier:model={single}")
    info = metric.info()
    assert info["scorer"].startswith("classifier|dir-sha256:") and len(info["content_sha256"]) == 64
    assert info["label"] == "toxic" and info["activation"] == "softmax"
    assert metric.scorer == f"classifier {single.name} (dir sha256 {info['content_sha256'][:12]}), toxic"
    assert metric.spec == f"toxicity:backend=classifier:model={single}"


def test_errors_are_one_line(tmp_path, single):
    from transformers import LlamaConfig

    def error(spec):
        with pytest.raises(HeirloomError) as e:
            get_metric(spec)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "option 'model': Field required" in error("toxicity:backend=classifier")
    assert "no such directory" in error(f"toxicity:backend=classifier:model={tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    assert "cannot read a transformers config" in error(f"toxicity:backend=classifier:model={tmp_path / 'empty'}")
    LlamaConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                architectures=["LlamaForCausalLM"]).save_pretrained(tmp_path / "lm")
    assert "not a sequence-classification model (architectures: LlamaForCausalLM)" in error(
        f"toxicity:backend=classifier:model={tmp_path / 'lm'}")
    assert "no label 'hateful' (labels: non-toxic, toxic)" in error(
        f"toxicity:backend=classifier:model={single}:label=hateful")
    assert "no attribute 'insult'" in error(f"toxicity:backend=classifier:model={single}:attribute=insult")
    assert "revision= applies to hub ids" in error(f"toxicity:backend=classifier:model={single}:revision=abc")
    neutral = build(tmp_path / "neutral", ["LABEL_0", "LABEL_1"])
    assert "no label names toxicity (labels: LABEL_0, LABEL_1); choose one with label=NAME" in error(
        f"toxicity:backend=classifier:model={neutral}")
    both = build(tmp_path / "both", ["toxic_a", "toxic_b", "nontoxic"])
    assert "several labels name toxicity" in error(f"toxicity:backend=classifier:model={both}")
    assert get_metric(f"toxicity:backend=classifier:model={neutral}:label=LABEL_1").attribute == "label_1"


def test_detoxify_spec_points_to_the_classifier():
    with pytest.raises(HeirloomError, match=r"replaced by the classifier backend.*unitary/toxic-bert \(original\)"):
        get_metric("toxicity:backend=detoxify")
