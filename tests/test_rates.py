"""Pass-rate intervals across inputs account for the samples behind them."""

import pandas as pd
import pytest

from core.analyse import stats
from core.evaluate import rates


def scored(per_input: list[tuple[int, int]]) -> pd.DataFrame:
    rows, verdicts, rid = [], {}, 0
    for input_idx, (passes, n) in enumerate(per_input):
        for k in range(n):
            rid += 1
            rows.append({"id": rid, "variant": 0, "input": input_idx, "model": "m", "temperature": 1.0})
            verdicts[rid] = k < passes
    return rates.frame(pd.DataFrame(rows), verdicts)


def test_an_interval_over_agreeing_inputs_still_reflects_the_number_of_samples():
    (few,) = rates.by_group(scored([(9, 10)] * 4), ["model"])
    assert few["pass_rate"] == 0.9 and few["pass_rate_low"] < 0.9 < few["pass_rate_high"]  # never "90% [90%–90%]"
    low, high = stats.wilson(36, 40)  # the inputs agree: the pooled samples set the width
    assert (few["pass_rate_low"], few["pass_rate_high"]) == (round(low, 4), round(high, 4))
    (many,) = rates.by_group(scored([(9, 10)] * 40), ["model"])
    assert many["pass_rate"] == 0.9
    assert many["pass_rate_high"] - many["pass_rate_low"] < few["pass_rate_high"] - few["pass_rate_low"]
    (perfect,) = rates.by_group(scored([(5, 5)] * 3), ["model"])
    assert perfect["pass_rate"] == 1.0 and perfect["pass_rate_low"] < 1.0


def test_inputs_that_disagree_keep_the_wider_interval_over_inputs():
    (overall,) = rates.by_group(scored([(9, 10), (3, 10)]), ["model"])
    mean, t_low, t_high = stats.mean_interval([0.9, 0.3])
    assert overall["pass_rate"] == pytest.approx(0.6)
    assert (overall["pass_rate_low"], overall["pass_rate_high"]) == (round(t_low, 4), round(t_high, 4))
