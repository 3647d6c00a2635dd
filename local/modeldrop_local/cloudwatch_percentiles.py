"""Percentile statistics (p99, p99.9, …) for moto's CloudWatch GetMetricData.

moto 5.2's `Statistics.get_statistics_for_type` (moto/cloudwatch/models.py) knows Sum, Average,
Minimum, Maximum and SampleCount only, and answers None for an extended statistic; the bake's judge
(modeldrop.guardrails.figures) asks for `p99` of each version's latency. CloudWatch documents pNN.NN
as the value below which NN.NN% of the period's values fall
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html) without
saying how it interpolates; this uses the nearest rank over the raw values. Values sent as statistic
sets (StatisticValues) carry no distribution: like CloudWatch, no percentile is computed from them.
"""

from __future__ import annotations

import math
import re
from typing import Any

from moto.cloudwatch.models import Statistics

_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,10})?|100)$")
_installed = False


def nearest_rank_percentile(values: list[float], percent: float) -> float:
    """The smallest value with at least `percent`% of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def install() -> None:
    """Teach moto's CloudWatch the pNN statistics (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    known = Statistics.get_statistics_for_type

    def get_statistics_for_type(self: Statistics, stat: str) -> Any:
        match = _PERCENTILE.match(stat)
        if match is None:
            return known(self, stat)
        values = self.metric_single_values_list
        if not values:
            return None
        return nearest_rank_percentile(values, float(match[1]))

    Statistics.get_statistics_for_type = get_statistics_for_type  # type: ignore[method-assign]
