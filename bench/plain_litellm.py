"""The baseline: plain `asyncio.gather` over `litellm.acompletion`, bounded by a semaphore,
as a user would write it (litellm's defaults, nothing stored). Prints one JSON line.

    .venv/bin/python bench/plain_litellm.py --api-base http://127.0.0.1:N/v1 --calls 2000 --concurrency 100

The grid is the benchmark's (bench_fanout.MODELS × TEMPERATURES), calls spread evenly.
"""

import argparse
import asyncio
import json
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402  (timed out of the measurement, like Spread's own import)



async def main(api_base: str, calls: int, concurrency: int, stream: bool, models: list[str],
               temperatures: list[float]) -> dict:
    limit = asyncio.Semaphore(concurrency)
    grid = [(m, t) for m in models for t in temperatures]

    async def one(k: int):
        model, temperature = grid[k % len(grid)]
        async with limit:
            response = await litellm.acompletion(
                model=model, messages=[{"role": "user", "content": "What is the capital of France?"}],
                temperature=temperature, max_tokens=256, api_base=api_base, api_key="no-key", stream=stream,
                **({"stream_options": {"include_usage": True}} if stream else {}))
            if stream:
                text = "".join([chunk.choices[0].delta.content or "" async for chunk in response if chunk.choices])
            else:
                text = response.choices[0].message.content
            return text

    start = time.perf_counter()
    answers = await asyncio.gather(*(one(k) for k in range(calls)), return_exceptions=True)
    wall = time.perf_counter() - start
    errors = sum(isinstance(a, BaseException) for a in answers)
    return {"wall_s": round(wall, 3), "responses": calls - errors, "errors": errors}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--model", dest="models", action="append")
    parser.add_argument("--temperature", dest="temperatures", action="append", type=float)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.api_base, args.calls, args.concurrency, args.stream,
                                      args.models or ["openai/bench-a", "openai/bench-b"],
                                      args.temperatures or [0.0, 1.0]))))
