"""A benchmark smoke: the fan-out has not grossly slowed down.

It fails only at three times the target (1.5 × ideal), so noise on a shared machine
never fails it; the real figures come from bench/bench_fanout.py and live in
bench/results/ and the README. Broken on purpose once (a 20 ms sleep per call in the
sampler): 400 calls took 10.3 s against a limit of 4.5 s, and it failed.
"""

import asyncio
import math
import sys

import pytest

from conftest import ROOT
from core.run import plan, runner

sys.path.insert(0, str(ROOT / "bench"))
from loopback import Loopback  # noqa: E402

TARGET_RATIO = 1.5
GROSS = 3.0


@pytest.mark.parametrize("stream", [True, False])
def test_fan_out_is_not_grossly_slower_than_the_provider(stream):
    calls, concurrency, latency = 400, 40, 0.1
    with Loopback(latency_s=latency) as server:
        spec = plan.RunSpec(prompt="What is the capital of France?", models=["openai/bench-a", "openai/bench-b"],
                            temperatures=[0.0, 1.0], n=calls // 4, concurrency=concurrency, stream=stream,
                            api_base=server.base_url)
        summary = asyncio.run(runner.execute(plan.create(spec)))
        stats = server.stats()
    ideal = math.ceil(calls / concurrency) * latency
    assert summary["responses"] == calls
    assert 0.9 * concurrency <= stats["peak_in_flight"] <= concurrency
    assert summary["wall_s"] <= GROSS * TARGET_RATIO * ideal, f"{summary['wall_s']} s for {ideal} s of provider time"
