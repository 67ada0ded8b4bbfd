"""The floor: a bare aiohttp fan-out, as little as a client can do per call (POST the
request, read the answer, parse its JSON; streamed: parse every event), bounded by a
semaphore, nothing stored. What this machine can do; every other contender is a ratio
of its wall. Prints one JSON line.

    .venv/bin/python bench/floor.py --api-base http://127.0.0.1:N/v1 --calls 2000 --concurrency 100 [--stream]

The grid is the benchmark's (bench_fanout.MODELS × TEMPERATURES), calls spread evenly.
"""

import argparse
import asyncio
import json
import time

import aiohttp


async def main(api_base: str, calls: int, concurrency: int, stream: bool, models: list[str],
               temperatures: list[float]) -> dict:
    limit = asyncio.Semaphore(concurrency)
    grid = [(m.split("/", 1)[-1], t) for m in models for t in temperatures]
    url = api_base.rstrip("/") + "/chat/completions"
    answers: list[str] = []

    async def one(session: aiohttp.ClientSession, k: int) -> None:
        model, temperature = grid[k % len(grid)]
        body = {"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "temperature": temperature, "max_tokens": 256, "stream": stream}
        async with limit, session.post(url, json=body) as response:
            if not stream:
                answers.append((await response.json())["choices"][0]["message"]["content"])
                return
            pieces = []
            async for line in response.content:
                if line.startswith(b"data: ") and line[6:12] != b"[DONE]":
                    for choice in json.loads(line[6:])["choices"]:
                        pieces.append(choice["delta"].get("content") or "")
            answers.append("".join(pieces))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start = time.perf_counter()
        results = await asyncio.gather(*(one(session, k) for k in range(calls)), return_exceptions=True)
        wall = time.perf_counter() - start
    errors = sum(isinstance(r, BaseException) for r in results)
    return {"wall_s": round(wall, 3), "responses": len(answers), "errors": errors}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--model", dest="models", action="append")
    parser.add_argument("--temperature", dest="temperatures", action="append", type=float)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.api_base, args.calls, args.concurrency, args.stream,
                                      args.models or ["openai/bench-a", "openai/bench-b"],
                                      args.temperatures or [0.0, 1.0]))))
