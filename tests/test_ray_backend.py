"""RayBackend: replicas of a backend as Ray actors, answers identical to one local backend.

Runs on a local Ray started by the test (2 CPU replicas of the tiny model); skipped
where Ray is not installed (`pip install 'heirloom[ray]'`).
"""

from __future__ import annotations

import pytest

from heirloom.errors import HeirloomError
from heirloom.generation import make_backend
from heirloom.generation.base import SamplingParams
from heirloom.models.refs import ModelRef

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def replicas(local_ray, tiny_model_dir):
    # float64: float32 rounding differs between batch shapes and can flip a near-tie token of a random model
    backend = make_backend(f"ray:{tiny_model_dir}", replicas=2, num_cpus=1, backend_options={"dtype": "float64"})
    yield backend
    backend.close()


def test_samples_match_one_local_backend_whatever_the_shard(replicas, tiny_model_dir):
    prompts = [f"Tell me about topic number {i}." * (1 + i % 3) for i in range(7)]
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=8, seed=5)
    local = make_backend(str(tiny_model_dir), dtype="float64")
    expected = local.generate(prompts, k=3, params=params, progress=False)
    got = replicas.generate(prompts, k=3, params=params, progress=False)
    assert len(replicas.replicas) == 2 and replicas.preferred_batch == 2 * local.preferred_batch
    assert [[(c.text, c.seed, c.sample_index, c.num_tokens) for c in cs] for cs in got] == \
           [[(c.text, c.seed, c.sample_index, c.num_tokens) for c in cs] for cs in expected]


def test_per_prompt_seeds_reach_the_replicas(replicas, tiny_model_dir):
    prompts = [f"Prompt {i}" for i in range(3)]
    params = SamplingParams(temperature=1.0, max_new_tokens=5, seed=5)
    local = make_backend(str(tiny_model_dir), dtype="float64")
    assert replicas.supports_prompt_seeds
    got = replicas.generate(prompts, k=2, params=params, progress=False, seeds=[7, 8, 9])
    expected = local.generate(prompts, k=2, params=params, progress=False, seeds=[7, 8, 9])
    assert [[(c.text, c.seed) for c in cs] for cs in got] == [[(c.text, c.seed) for c in cs] for cs in expected]


def test_loglikelihoods_match_one_local_backend(replicas, tiny_model_dir):
    requests = [(f"Question {q}: which?", f" option {o}") for q in range(5) for o in "abc"]
    local = make_backend(str(tiny_model_dir), dtype="float64").loglikelihood(requests, progress=False)
    got = replicas.loglikelihood(requests, progress=False)
    assert [r.num_tokens for r in got] == [r.num_tokens for r in local]
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in local], abs=1e-4)


def test_a_replica_that_cannot_load_names_itself_and_the_cause(local_ray, tmp_path):
    with pytest.raises(HeirloomError, match=r"replica 0 failed to load the model: .*not-a-model"):
        make_backend(f"ray:{tmp_path / 'not-a-model'}", replicas=1, num_cpus=0)


def test_asking_for_more_than_the_cluster_has_fails_at_once(local_ray):
    with pytest.raises(HeirloomError, match=r"3 replica\(s\) x 1 CPU need 3 CPUs; the cluster has 2"):
        make_backend("ray:smollm2-135m", replicas=3)
    with pytest.raises(HeirloomError, match="the cluster has 0"):
        make_backend("ray:smollm2-135m", num_gpus=1)


def test_refs_and_options():
    assert ModelRef.parse("ray:vllm:org/m") == ModelRef(name="vllm:org/m", backend="ray")
    assert str(ModelRef.parse("ray:openai:m@http://a/v1")) == "ray:openai:m@http://a/v1"
    with pytest.raises(HeirloomError, match="ray: inside ray:"):
        ModelRef.parse("ray:ray:m")
    with pytest.raises(HeirloomError, match="ray backend option replica"):
        make_backend("ray:smollm2-135m", replica=2)
