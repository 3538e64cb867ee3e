"""The bias suite: BBQ (question answering, `bbq.py`) and CrowS-Pairs (sentence pairs, `crows_pairs.py`).

Only the suite's declaration lives here: its two parts, the data each needs and the
statistics their attributes name (`bbq/<name>`, `crows_pairs/pct_stereotype`).
"""

from __future__ import annotations

from . import bbq, crows_pairs
from .registry import Part, Suite


def bbq_data(config: bbq.BBQConfig) -> list:
    return [bbq.data_request(config.data, config.hub_subset, config.hub_split)]


SUITE = Suite(
    "bias", "social bias: BBQ ambiguous/disambiguated bias and accuracy, CrowS-Pairs % stereotype",
    (Part("bbq", bbq.BBQConfig, bbq.run, bbq_data),
     Part("crows_pairs", crows_pairs.CrowsPairsConfig, crows_pairs.run, crows_pairs.data_requests)),
    statistics={"bbq/accuracy": bbq.accuracy, "bbq/ambiguous_bias": bbq.ambiguous_bias,
                "bbq/disambiguated_bias": bbq.disambiguated_bias,
                "crows_pairs/pct_stereotype": crows_pairs.pct_stereotype},
)
