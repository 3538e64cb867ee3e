"""Data-parallel generation over a Ray cluster: `ray:INNER` runs INNER on several replicas.

Each replica is a Ray actor holding its own backend (`INNER` is any model
reference: `ray:vllm:org/model` puts one vLLM engine on each GPU of the cluster,
`ray:smollm2-135m` one CPU copy of the embedded model per replica). A call is cut
into one shard per replica and the answers are put back in prompt order.

Shards are interleaved (prompt i goes to replica i mod n): the candidates stage
sends prompts longest first, so interleaving gives every replica a similar
amount of work. Log-likelihood requests are sharded by context instead, so that
the options of one question stay together and share their prefill. Samples do
not depend on the shard they land in: each carries its own seed
(`sample_seed(seed, prompt, j)`), which the backends honour per sample.

Left out: autoscaling, and moving a failed replica's shard to the others (a
failure stops the call with the replica's error; the candidates stage's
resumption then redoes that batch only).
"""

from __future__ import annotations

import os
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..errors import HeirloomError, MissingDependency
from .base import Backend, Completion, LoglikResult, SamplingParams, parse_backend_options, prompt_seeds


class RayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int | None = Field(None, ge=1, description="actors, each holding one copy of the model; "
                                 "default: the cluster's GPUs / num_gpus, or 1 on a cluster without GPUs")
    num_gpus: float | None = Field(None, ge=0, description="GPUs per replica; default 1 when the cluster has GPUs, else 0")
    num_cpus: float = Field(1, ge=0, description="CPUs per replica")
    address: str | None = Field(None, description="the cluster to join (`auto`, `ray://host:10001`); "
                                "default $RAY_ADDRESS, or a local Ray started for this process")
    backend_options: dict = Field(default_factory=dict, description="options of the inner backend (make_backend)")


class _Replica:
    """One copy of the inner backend, living in a Ray actor."""

    def __init__(self, ref: str, options: dict):
        from . import make_backend

        self.backend = make_backend(ref, **options)

    def info(self) -> dict:
        b = self.backend
        return {"model_id": b.model_id, "preferred_batch": b.preferred_batch,
                "supports_loglikelihood": b.supports_loglikelihood, "supports_messages": b.supports_messages,
                "supports_prompt_seeds": b.supports_prompt_seeds, "chat": b.chat}

    def generate(self, prompts, k, params, chat, seeds):
        return self.backend.generate(prompts, k, params, chat=chat, progress=False, seeds=seeds)

    def loglikelihood(self, requests):
        return self.backend.loglikelihood(requests, progress=False)


class RayBackend(Backend):
    name = "ray"
    Options = RayOptions

    @classmethod
    def check_options(cls, ref, options: dict) -> None:
        """Ray's own options, then the inner backend's (`backend_options`), before Ray starts."""
        from . import check_options

        o = parse_backend_options(RayOptions, options, "ray")
        try:
            check_options(ref.name, o.backend_options)
        except HeirloomError as e:
            raise HeirloomError(f"ray backend option backend_options: {e}") from None

    @classmethod
    def check_model(cls, ref) -> None:
        """The inner reference's model, which every replica loads."""
        from ..models.check import check_model

        check_model(ref.name)

    def __init__(self, inner: str, **options):
        super().__init__(inner)
        self.options = parse_backend_options(RayOptions, options, "ray")
        try:
            import ray
        except ImportError:
            raise MissingDependency("the ray backend needs Ray: pip install 'heirloom[ray]'") from None
        self._ray = ray
        o = self.options
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            address = o.address or os.environ.get("RAY_ADDRESS")
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise HeirloomError(f"ray backend: cannot join the Ray cluster at {address!r}: {e}") from None
        total = ray.cluster_resources()
        gpus = total.get("GPU", 0)
        num_gpus = o.num_gpus if o.num_gpus is not None else (1 if gpus else 0)
        replicas = o.replicas or (max(1, int(gpus // num_gpus)) if num_gpus else 1)
        # An actor asking for more than the cluster has would wait forever: say so instead.
        for resource, each in (("CPU", o.num_cpus), ("GPU", num_gpus)):
            if replicas * each > total.get(resource, 0):
                raise HeirloomError(f"ray backend: {replicas} replica(s) x {each:g} {resource} need "
                                    f"{replicas * each:g} {resource}s; the cluster has {total.get(resource, 0):g} "
                                    f"(set replicas, num_cpus or num_gpus)")
        actor = ray.remote(num_cpus=o.num_cpus, num_gpus=num_gpus)(_Replica)
        self.replicas = [actor.remote(inner, o.backend_options) for _ in range(replicas)]
        try:
            infos = self._gather([r.info.remote() for r in self.replicas], "load the model")
        except BaseException:
            self.close()  # the replicas that did load hold memory (a GPU each): let them go
            raise
        self.model_id = infos[0]["model_id"]
        self.supports_loglikelihood = all(i["supports_loglikelihood"] for i in infos)
        self.supports_messages = all(i["supports_messages"] for i in infos)
        self.supports_prompt_seeds = all(i["supports_prompt_seeds"] for i in infos)
        self.chat = infos[0]["chat"]
        self.preferred_batch = sum(i["preferred_batch"] for i in infos)

    def generate(self, prompts: Sequence[str], k: int = 1, params: SamplingParams | None = None,
                 chat: bool | None = None, progress: bool = True,
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        params = params or SamplingParams()  # the replicas' backends add their default stop strings
        if seeds is not None:
            if not self.supports_prompt_seeds:
                raise HeirloomError(f"ray:{self.model_id}: the inner backend takes no per-prompt seeds")
            seeds = prompt_seeds(seeds, params, len(prompts))
        n = len(self.replicas)
        shards = [list(range(i, len(prompts), n)) for i in range(n)]
        return self._sharded(lambda r, idx: r.generate.remote([prompts[i] for i in idx], k, params, chat,
                                                              None if seeds is None else [seeds[i] for i in idx]),
                             shards, len(prompts), "generate", progress, "prompt")

    def loglikelihood(self, requests: Sequence[tuple[str, str]], progress: bool = True) -> list[LoglikResult]:
        if not self.supports_loglikelihood:
            raise HeirloomError(f"ray:{self.model_id}: the inner backend cannot score log-likelihoods")
        n = len(self.replicas)
        contexts = {c: j for j, c in enumerate(dict.fromkeys(c for c, _ in requests))}
        shards = [[i for i, (c, _) in enumerate(requests) if contexts[c] % n == s] for s in range(n)]
        return self._sharded(lambda r, idx: r.loglikelihood.remote([requests[i] for i in idx]),
                             shards, len(requests), "score", progress, "pair")

    def _sharded(self, call, shards: list[list[int]], total: int, what: str, progress: bool, unit: str) -> list:
        """call(replica, shard) on each replica with a non-empty shard; answers put back in item order."""
        jobs = [(r, idx) for r, idx in zip(self.replicas, shards) if idx]
        parts = self._gather([call(r, idx) for r, idx in jobs], what, progress, [len(idx) for _, idx in jobs], unit)
        out: list = [None] * total
        for (_, idx), part in zip(jobs, parts):
            for i, answer in zip(idx, part):
                out[i] = answer
        return out

    def _gather(self, refs: list, what: str, progress: bool = False, sizes: Sequence[int] = (),
                unit: str = "it") -> list:
        """Results of `refs` in order, advancing a bar by each shard's size as it finishes;
        a replica's failure becomes one error that names it."""
        from tqdm.auto import tqdm

        ray = self._ray
        bar = tqdm(total=sum(sizes), desc=f"ray:{self.model_id}", unit=unit, disable=not progress, leave=False)
        position = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                i = position[done[0]]
                try:
                    results[i] = ray.get(done[0])
                except Exception as e:  # RayTaskError wraps the replica's own exception
                    cause = getattr(e, "cause", None) or e
                    lines = str(cause).strip().splitlines()
                    raise HeirloomError(f"ray:{self.model_id}: replica {i} failed to {what}: "
                                        f"{type(cause).__name__}: {lines[-1] if lines else ''}") from None
                if sizes:
                    bar.update(sizes[i])
        except BaseException:
            for ref in pending:  # best effort: a task already running on an actor may not stop
                try:
                    ray.cancel(ref)
                except Exception:
                    pass
            raise
        finally:
            bar.close()
        return results

    def close(self) -> None:
        ray = self._ray
        for replica in self.replicas:
            ray.kill(replica)
        self.replicas = []
        if self._started_ray:
            ray.shutdown()


__all__ = ["RayBackend", "RayOptions"]
