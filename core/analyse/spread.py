"""How far a run's answers spread: meaning clusters, and metrics over any part of the grid.

A run's grid has four axes: prompt variant, input, model and temperature. A cell fixes
all four and holds N samples. The pipeline, top-down:
1. `frame()` puts the stored responses in a DataFrame.
2. Answers are normalised (case, white space, trailing punctuation) and de-duplicated
   per input: a run of 1,000 samples often holds far fewer distinct answers.
3. The distinct answers of each input are embedded and clustered by meaning (`meaning`).
   Answers to different inputs are never clustered together; within an input, one
   meaning has one cluster id across every variant, model and temperature. Each
   cluster's representative is its medoid: the answer most similar to all the others.
4. `group(axes)` measures any grouping of the grid: counts, tokens, cost, latency, and
   the meaning metrics — consistency (share of the largest cluster), semantic entropy,
   mean pairwise similarity. Within one input these are computed over the pooled
   answers, with a Wilson interval; across inputs they are means over inputs, with a
   t interval over inputs (samples of one input are not independent).
"""

from __future__ import annotations

import difflib
import functools
import json
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd
from cachetools import LRUCache

from core.analyse import embed, meaning, stats, tool_usage
from core.config import SpreadError
from core.prompts import shapes
from core.store import Store, runs, unreachable
from core.store import decisions as decision_rows
from core.store import responses as response_rows

AXES = ["variant", "input", "model", "temperature"]
DEFAULT_THRESHOLD = meaning.DEFAULT_THRESHOLD
COLUMNS = ["id", "run_id", "variant", "input", "model", "temperature", "sample_idx", "seed", "text", "finish_reason",
           "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms", "attempts", "error_type",
           "error_message", "provider_model", "created_at", "deployment", "tool_calls", "json_value",
           "cached_from"]  # an answer reused from the cache (core/run/cache.py): the one it copies
NUMERIC = ["prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms", "temperature"]

# Kept as the old names: the CLI, pages and tests use them.
wilson = stats.wilson
share_difference = stats.share_difference


def frame(responses: list[dict]) -> pd.DataFrame:
    """Stored responses as a DataFrame with the columns the metrics need."""
    df = pd.DataFrame(responses, columns=COLUMNS)
    for column in NUMERIC:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    for axis in ("variant", "input"):  # rows from before variants and inputs are cell (0, 0)
        df[axis] = pd.to_numeric(df[axis], errors="coerce").fillna(0).astype("int64")
    return df


# --- clusters -------------------------------------------------------------------------

@dataclass
class Cluster:
    id: int
    input: int
    size: int
    representative: str
    representative_id: int
    member_ids: list[int] = field(repr=False)
    kind: str | None = None  # "refusal" or "non-answer": shown as such in the views
    tool_calls: list[dict] | None = None  # the representative's calls, when the answers call tools


@dataclass
class Analysis:
    method: str
    threshold: float
    answers: pd.DataFrame  # one row per good answer, with "norm", "cluster" and "vector" columns
    errors: pd.DataFrame
    clusters: list[Cluster]
    vectors: np.ndarray  # one row per distinct answer of an input; answers["vector"] points here
    cells: list[dict]
    by_model: list[dict]
    by_temperature: list[dict]
    by_variant: list[dict] = field(default_factory=list)
    by_input: list[dict] = field(default_factory=list)
    coords: pd.DataFrame | None = None  # 2-D map of the answers (PCA of the embeddings)
    variants: list[dict] = field(default_factory=list)  # label, prompt version, template (analyse_run)
    inputs: list[dict] = field(default_factory=list)  # {"input", "vars"} (analyse_run)
    extract: str = "whole"  # the part of each answer compared (meaning.EXTRACT_MODES)
    second_opinion: dict | None = None  # the LLM judge asked about near-threshold pairs: model, calls, cost
    prepared: "Prepared | None" = field(default=None, repr=False, compare=False)  # what it was cut from
    # What the pages ask of an analysis again at every rerun, worked out once (an analysis
    # never changes once made; the Spread page shares one between reviewers).
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def once(self, key: tuple, make: Callable):
        """`make()`, made once per key for this analysis (a chart, a table)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def once_per_run(self, key: tuple, make: Callable):
        """`make()` of what does not depend on the clusters (a latency chart): made once for
        every threshold of the run's answers."""
        return self.prepared.once(key, make) if self.prepared else self.once(key, make)

    def group(self, axes: list[str], *, with_clusters: bool = False) -> list[dict]:
        """Metrics for each combination of `axes`, the other axes aggregated."""
        return self.once(("group", tuple(axes), with_clusters),
                         lambda: group_metrics(self, axes, with_clusters=with_clusters))

    def wording(self) -> list[dict]:
        """Per input and model, how much of the spread the wording explains (sensitivity.by_input)."""
        from core.analyse import sensitivity

        drawn = self.prepared.once(("wording design",), lambda: sensitivity.design(self.answers)) if self.prepared else None
        return self.once(("wording",), lambda: sensitivity.by_input(self.answers, drawn=drawn))


Embedder = Callable[[list[str], str], np.ndarray]


def analyse_run(store: Store, run_id: int, *, method: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                with_map: bool = True, extract: str | None = None, second_opinion_model: str | None = None,
                decisions: list[dict] | None = None) -> Analysis:
    """analyse() a stored run, with model embeddings cached in the database, the reviewers'
    merge and split decisions applied, and second opinions paid for once. What does not
    depend on the threshold is prepared once per run, answers and settings (`prepared_run`).
    `decisions`: the reviewers' decisions to apply (rows of cluster_decisions); None: those
    stored for the run."""
    with store.connection() as db:
        variants = runs.run_variants(db, run_id)
        inputs = runs.run_inputs(db, run_id)
        run = runs.get_run(db, run_id)
        if decisions is None:
            decisions = decision_rows.cluster_decisions(db, run_id)
    extract = extract or (run["spec"].get("extract") if run else None) or "whole"
    if not method and run and run["spec"].get("embeddings"):  # the run's own embedding endpoint
        method = embed.ENDPOINT + run["spec"]["embeddings"]
    opinion = None
    if second_opinion_model:
        from core.analyse import second_opinion

        opinion = (second_opinion_model, second_opinion.StoredVerdicts(store, second_opinion_model),
                   second_opinion.completion_for(store, second_opinion_model))
    prepared = prepared_run(store, run_id, method=method or embed.default_method(), extract=extract)
    analysis = prepared.at(threshold, decisions=decisions, second_opinion=opinion,
                           with_map=with_map)
    analysis.variants, analysis.inputs = variants, inputs
    labels = {v["variant"]: v["label"] for v in variants}
    values = {i["input"]: i["vars"] for i in inputs}
    shared_cores = local_load(run["spec"]) if run else set()
    for cell in analysis.cells:
        cell["variant_label"] = labels.get(cell["variant"], str(cell["variant"]))
        cell["vars"] = values.get(cell["input"], {})
        cell["latency_under_local_load"] = cell["model"] in shared_cores
    return analysis


# Prepared runs, newest last: per database, run, answers (count and newest id) and settings.
_PREPARED = LRUCache(maxsize=4)
CUTS_KEPT = 8  # per prepared run: the analyses of its latest distinct clusterings
CLUSTERS_KEPT = 200_000  # per prepared run: clusters by their members, whatever threshold cut them
_PREPARING = threading.Lock()  # guards the dicts; each run's own lock guards its preparing
_PREPARING_RUN: dict[tuple, threading.Lock] = {}
# Runs whose analysis failed ahead of an open, by the same key: tried again only once their
# answers change, not at every poll of the server's loop (the page still says why on open).
_UNPREPARABLE = LRUCache(maxsize=64)


def prepared_run(store: Store, run_id: int, *, method: str, extract: str = "whole") -> "Prepared":
    """prepare() a stored run once while its answers stay as they are: every threshold, page
    and reviewer then starts from it (app servers run sessions as threads: one prepares,
    the others wait for it; a session opening another run does not wait)."""
    key = _prepared_key(store, run_id, method, extract)
    with _PREPARING:
        found = _PREPARED.get(key)
        if found is not None:
            return found
        preparing = _PREPARING_RUN.setdefault(key, threading.Lock())
    with preparing:
        with _PREPARING:
            found = _PREPARED.get(key)
        if found is None:
            try:
                with store.connection() as db:
                    rows = response_rows.of_run(db, run_id)
                    prompts = runs.rendered_prompts(db, run_id)
                found = prepare(rows, method=method, contexts=contexts_of(prompts), extract=extract,
                                embedder=lambda texts, m: embed.cached(store, texts, m))
                with _PREPARING:
                    _PREPARED[key] = found
            finally:
                with _PREPARING:
                    _PREPARING_RUN.pop(key, None)
    return found


def _prepared_key(store: Store, run_id: int, method: str, extract: str) -> tuple:
    with store.connection() as db:
        received = response_rows.received(db, run_id)
    return str(store.target), run_id, received, method, extract


PREPARED_AHEAD = 2  # the newest finished runs an app server prepares before anyone opens them


def prepare_ahead(store: Store, *, runs_ahead: int = PREPARED_AHEAD) -> list[int]:
    """Analyse the newest finished runs as the Spread page first opens them (the default
    method and threshold, the run's own extract, the reviewers' decisions), and read their
    wording sensitivity, so that the first open after a run ends or a server starts finds
    the work done. An app server calls it on its background loop; a run already prepared
    costs one count. Returns the runs analysed now.

    A run whose analysis fails does not stop the others; the failures are raised together
    at the end, once: the run is left alone until its answers change (a database that
    cannot be reached is not the run's fault, and is tried again at the next call)."""
    method = embed.default_method()
    with store.connection() as db:
        finished = [runs.get_run(db, run_id) for run_id in runs.newest_finished(db, runs_ahead)]
    analysed, failed = [], []
    for run in finished:
        extract = run["spec"].get("extract") or "whole"
        key = _prepared_key(store, run["id"], method, extract)
        with _PREPARING:
            if key in _PREPARED or key in _UNPREPARABLE:
                continue
        try:
            analysis = analyse_run(store, run["id"], method=method, extract=extract)
            if len(analysis.variants) > 1:
                analysis.wording()
        except Exception as error:
            if unreachable(error):
                raise
            with _PREPARING:
                _UNPREPARABLE[key] = str(error)
            failed.append(f"run {run['id']}: {error}")
            continue
        analysed.append(run["id"])
    if failed:
        raise SpreadError("could not analyse ahead of its first open: " + "; ".join(failed))
    return analysed


def local_load(spec: dict) -> set[str]:
    """The remote models of a run that also ran an embedded model: their calls were timed
    on the cores the local model was generating on, so their latency includes waiting for
    this machine, not only the provider (an upper bound, and flagged as such)."""
    local = {m for m in spec.get("models", []) if _endpoint_model(spec, m).startswith("local/")}
    return set(spec.get("models", [])) - local if local else set()


def _endpoint_model(spec: dict, name: str) -> str:
    return (spec.get("endpoints") or {}).get(name, {}).get("model") or name


def contexts_of(prompts: dict[tuple[int, int], tuple[str, str]]) -> dict[int, str]:
    """Per input, every variant's rendered prompt: names and numbers the question itself
    holds frame an answer, they do not tell answers apart."""
    contexts: dict[int, list[str]] = {}
    for (_, input_idx), (system, prompt) in sorted(prompts.items()):
        contexts.setdefault(input_idx, []).append(f"{system}\n{prompt}")
    return {k: "\n".join(v) for k, v in contexts.items()}


def analyse(responses: list[dict], *, method: str | None = None, threshold: float = DEFAULT_THRESHOLD,
            embedder: Embedder | None = None, with_map: bool = True, context: str = "",
            contexts: dict[int, str] | None = None, extract: str = "whole", decisions: list[dict] | None = None,
            second_opinion: tuple | None = None) -> Analysis:
    """Cluster a run's answers by meaning, per input, and measure every cell. `responses` are
    store rows; `contexts` (per input) or `context` is the prompt the answers reply to;
    `extract` the part of each answer to compare (meaning.EXTRACT_MODES); `decisions` are
    reviewers' merges and splits; `second_opinion` is (judge model, verdict cache)."""
    check_threshold(threshold)
    return prepare(responses, method=method, embedder=embedder, context=context, contexts=contexts,
                   extract=extract).at(threshold, decisions=decisions, second_opinion=second_opinion,
                                       with_map=with_map)


def meanings(responses: list[dict], *, method: str | None = None, threshold: float = DEFAULT_THRESHOLD,
             embedder: Embedder | None = None, context: str = "", extract: str = "whole") -> list[Cluster]:
    """The meaning clusters of one input's answers (largest first, each with its
    representative), by the steps `analyse` takes for each input: the same compared forms,
    distinct answers most frequent first, embeddings, fact rules and ranking, without the
    grid's frame and metrics. For a decision that must be quick: `spread serve` voting
    on one request's few answers, where pandas' set-up cost ten times the clustering."""
    check_threshold(threshold)
    meaning.check_extract_mode(extract)
    method = method or embed.default_method()
    embedder = embedder or embed.embed
    good = [row for row in responses if row.get("error_type") is None]
    forms = [_forms(row.get("text") or "", row.get("tool_calls") if isinstance(row.get("tool_calls"), str) else None,
                    row.get("json_value") if isinstance(row.get("json_value"), str) else None) for row in good]
    seen: dict[str, list[int]] = {}
    for position, (_, norm, _) in enumerate(forms):
        seen.setdefault(norm, []).append(position)
    distinct = sorted(seen.values(), key=len, reverse=True)  # stable: ties keep their first arrival
    if not distinct:
        return []
    norms = np.array([forms[members[0]][1] for members in distinct], dtype=object)
    counts = np.array([len(members) for members in distinct], dtype=float)
    texts = [forms[members[0]][2] for members in distinct]
    vectors = embedder([meaning.comparable(text, extract) for text in texts], method)

    def prose_labels(prose: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(prose)
        parts = None if method == "exact" else [meaning.extract(texts[i], extract) for i in rows]
        return meaning.Clustering(vectors[rows], parts, context).labels(threshold)

    labels = _input_labels(norms, counts, prose_labels, [])
    clusters = []
    for cluster_id, rows in enumerate(_indices(labels)):
        medoid = int(rows[_medoid(vectors[rows], counts[rows])])
        first = distinct[medoid][0]
        calls = forms[first][0]
        clusters.append(Cluster(
            id=cluster_id, input=int(good[first].get("input") or 0), size=int(counts[rows].sum()),
            representative=texts[medoid], representative_id=int(good[first]["id"]),
            member_ids=sorted(int(good[p]["id"]) for row in rows for p in distinct[row]),
            kind=None if calls else _answer_kind(texts[medoid]), tool_calls=calls or None))
    return clusters


def check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValueError("the similarity threshold must be in (0, 1]")


def prepare(responses: list[dict], *, method: str | None = None, embedder: Embedder | None = None,
            context: str = "", contexts: dict[int, str] | None = None, extract: str = "whole") -> "Prepared":
    """Steps 1-3 of the pipeline up to the threshold: the answers' frame and compared forms,
    the distinct answers per input, their embeddings, and each input's clustering."""
    method = method or embed.default_method()
    embedder = embedder or embed.embed
    df = frame(responses)
    errors = df[df["error_type"].notna()]
    answers = df[df["error_type"].isna()].copy()
    answers["text"] = answers["text"].fillna("")
    forms = [_forms(text, calls if isinstance(calls, str) else None, value if isinstance(value, str) else None)
             for text, calls, value in zip(answers["text"], answers["tool_calls"], answers["json_value"])]
    answers["calls"] = [form[0] for form in forms]
    answers["norm"] = [form[1] for form in forms]
    answers["shown"] = [form[2] for form in forms]

    # Distinct answers per input, most frequent first, each with one original spelling.
    distinct = (answers.groupby(["input", "norm"], sort=False)
                .agg(count=("id", "size"), text=("shown", "first"), first_id=("id", "first"),
                     calls=("calls", "first"))
                .reset_index()
                .sort_values(["input", "count"], ascending=[True, False], kind="stable")
                .reset_index(drop=True))
    meaning.check_extract_mode(extract)
    compared = [meaning.comparable(text, extract) for text in distinct["text"]]
    vectors = embedder(compared, method) if len(distinct) else np.zeros((0, 1), np.float32)
    answers["vector"] = pd.MultiIndex.from_frame(distinct[["input", "norm"]]).get_indexer(
        pd.MultiIndex.from_frame(answers[["input", "norm"]])) if len(answers) else np.zeros(0, dtype=int)
    return Prepared(method, extract, answers, errors, distinct, vectors, contexts or {}, context)


@dataclass
class Prepared:
    """A run's answers before a threshold: what `at(threshold)` starts from. Each input's
    facts and clustering tree are made on first use and kept (meaning.Clustering), so a
    new threshold cuts trees instead of clustering again."""
    method: str
    extract: str
    answers: pd.DataFrame  # one row per good answer, with "calls", "norm", "shown" and "vector"
    errors: pd.DataFrame
    distinct: pd.DataFrame  # per input, its distinct answers most frequent first
    vectors: np.ndarray  # one row per distinct answer
    contexts: dict[int, str]
    context: str
    _memo: dict = field(default_factory=dict, repr=False, compare=False)
    _cuts: LRUCache = field(default_factory=lambda: LRUCache(maxsize=CUTS_KEPT), repr=False, compare=False)  # analyses by clusters
    # Most clusters of a new threshold were clusters of another one too: their medoid and
    # members are kept by their distinct answers (sessions are threads: hence the lock).
    _clusters_by_members: LRUCache = field(default_factory=lambda: LRUCache(maxsize=CLUSTERS_KEPT), repr=False,
                                           compare=False)
    _clusters_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def once(self, key: tuple, make: Callable):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def at(self, threshold: float = DEFAULT_THRESHOLD, *, decisions: list[dict] | None = None,
           second_opinion: tuple | None = None, with_map: bool = True) -> Analysis:
        """Step 3's clusters at this threshold (decisions applied) and step 4's metrics."""
        check_threshold(threshold)
        distinct, vectors = self.distinct, self.vectors
        ledger: list = []
        cluster_of = self._cluster_per_input(threshold, decisions or [], second_opinion, ledger)
        # Two thresholds between the same merge heights of every tree cut the same clusters:
        # the analysis is the same but for its threshold (a second opinion's cost is not).
        same_cut = (cluster_of.tobytes(), with_map)
        shared = self._cuts.get(same_cut) if second_opinion is None else None
        if shared is not None:
            return replace(shared, threshold=threshold)
        answers = self.answers.copy()
        answers["cluster"] = cluster_of[answers["vector"].to_numpy()] if len(answers) else np.zeros(0, dtype=int)
        clusters = _clusters(distinct, cluster_of, vectors, answers, self._clusters_by_members, self._clusters_lock)
        analysis = Analysis(method=self.method, threshold=threshold, answers=answers, errors=self.errors,
                            clusters=clusters, vectors=vectors, cells=[], by_model=[], by_temperature=[],
                            extract=self.extract, prepared=self)
        if second_opinion is not None:
            costs = [j.cost_usd for j in ledger]
            analysis.second_opinion = {"model": second_opinion[0], "calls": sum(j.calls for j in ledger),
                                       "cost_usd": None if None in costs else sum(costs),
                                       "errors": [e for j in ledger for e in j.errors][:5]}
        analysis.cells = analysis.group(AXES, with_clusters=True)
        if any(answers["calls"]):
            tool_usage.add_to_cells(analysis.cells, answers, AXES)
        analysis.by_model = analysis.group(["model"], with_clusters=True)
        analysis.by_temperature = analysis.group(["temperature"], with_clusters=True)
        analysis.by_variant = analysis.group(["variant"])
        analysis.by_input = analysis.group(["input"])
        if with_map:
            analysis.coords = answer_map(answers, self.once(("map",), lambda: map_points(vectors)))
        if second_opinion is None:
            self._cuts[same_cut] = analysis
        return analysis

    def _cluster_per_input(self, threshold: float, decided: list[dict], second_opinion: tuple | None,
                           ledger: list) -> np.ndarray:
        """Cluster ids unique across the run, one per distinct answer: per input (as
        meaning.cluster does for one set of answers), the reviewers' decisions applied, then
        numbered by size, largest first (a tie: the cluster of the more frequent answer first)."""
        labels = np.zeros(len(self.distinct), dtype=int)
        counts = self.distinct["count"].to_numpy(dtype=float)
        norms = self.distinct["norm"].to_numpy()
        next_id = 0
        for input_idx, rows in self.distinct.groupby("input", sort=True).indices.items():
            ask = None
            if second_opinion is not None and self.method != "exact":
                from core.analyse import second_opinion as opinions

                model, cache, *complete = second_opinion  # (judge, verdict cache[, how to call it])
                question = self.contexts.get(int(input_idx), self.context)
                ask = opinions.second_opinion(model, question.strip(), cache, ledger, *complete)
            ranked = _input_labels(
                norms[rows], counts[rows],
                lambda prose, input_idx=input_idx, rows=rows, ask=ask: self.once(
                    ("clustering", int(input_idx)), lambda: self._clustering(input_idx, rows[prose])
                ).labels(threshold, second_opinion=ask),
                [d for d in decided if d["input"] == input_idx])
            labels[rows] = next_id + ranked
            next_id += int(ranked.max(initial=-1)) + 1
        return labels

    def _clustering(self, input_idx, prose: np.ndarray) -> meaning.Clustering:
        """One input's prose answers, ready to cut. The exact method compares normalised
        text: facts could only split what is equal."""
        texts = None if self.method == "exact" else [meaning.extract(t, self.extract)
                                                      for t in self.distinct["text"].to_numpy()[prose]]
        return meaning.Clustering(self.vectors[prose], texts, self.contexts.get(int(input_idx), self.context))


def _input_labels(norms: np.ndarray, counts: np.ndarray, prose_labels: Callable[[np.ndarray], np.ndarray],
                  decisions: list[dict]) -> np.ndarray:
    """One input's distinct answers (compared forms `norms`, seen `counts` times) labelled by
    meaning, numbered by size, largest first (a tie: the cluster of the more frequent answer
    first). `prose_labels(mask)` clusters the answers that are text; answers that are data
    have one meaning per canonical form, never a text's; reviewers' decisions apply last."""
    data = np.array([norm.startswith(meaning.STRUCTURED) for norm in norms], dtype=bool)
    local = np.zeros(len(norms), dtype=int)
    if (~data).any():
        local[~data] = prose_labels(~data)
    if data.any():
        local[data] = np.unique(norms[data], return_inverse=True)[1] + (local.max() + 1 if (~data).any() else 0)
    local = meaning.apply_decisions(local, list(norms), decisions)
    local = np.unique(local, return_inverse=True)[1]  # 0..k-1 again after merges
    sizes = np.bincount(local, weights=counts)
    first_row = np.full(len(sizes), len(norms))
    np.minimum.at(first_row, local, np.arange(len(norms)))
    order = np.lexsort((first_row, -sizes))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[local]


@functools.lru_cache(maxsize=65536)
def _forms(text: str, tool_calls: str | None, json_value: str | None) -> tuple[list, str, str]:
    """(calls, compared form, shown text) of an answer, once per distinct answer: an answer
    that is data (tool calls, JSON asked for) is compared by its canonical form."""
    calls = shapes.tool_calls_of(tool_calls)
    return calls, meaning.canonical(calls, json_value) or embed.normalise(text), shapes.readable(text, calls)


def _clusters(distinct: pd.DataFrame, cluster_of: np.ndarray, vectors: np.ndarray, answers: pd.DataFrame,
              known: LRUCache, lock: threading.Lock) -> list[Cluster]:
    """Each cluster (ids 0..k-1) with its size, members and representative (the medoid);
    `known` keeps them by their distinct answers (rows of `distinct`) between thresholds."""
    weights = distinct["count"].to_numpy(dtype=np.float64)
    texts, inputs, first_ids, calls = (distinct[c].to_numpy() for c in ("text", "input", "first_id", "calls"))
    by_cluster = np.argsort(answers["cluster"].to_numpy(), kind="stable")
    ids = answers["id"].to_numpy()[by_cluster]
    bounds = np.searchsorted(answers["cluster"].to_numpy()[by_cluster], np.arange(int(cluster_of.max(initial=-1)) + 2))
    clusters = []
    for cluster_id, rows in enumerate(_indices(cluster_of)):
        members = rows.tobytes()
        with lock:
            cluster = known.get(members)
        if cluster is None:
            medoid = rows[_medoid(vectors[rows], weights[rows])]
            representative = texts[medoid]
            cluster = Cluster(
                id=cluster_id, input=int(inputs[medoid]), size=int(weights[rows].sum()),
                representative=representative, representative_id=int(first_ids[medoid]),
                member_ids=ids[bounds[cluster_id]:bounds[cluster_id + 1]].tolist(),
                kind=None if calls[medoid] else _answer_kind(representative),
                tool_calls=calls[medoid] or None,
            )
            with lock:
                known[members] = cluster
        clusters.append(cluster if cluster.id == cluster_id else replace(cluster, id=cluster_id))
    return clusters


# A refusal or a non-answer: read once per representative text, whatever the threshold.
_answer_kind = functools.lru_cache(maxsize=65536)(meaning.answer_kind)


def _indices(labels: np.ndarray) -> list[np.ndarray]:
    """The positions of each label 0..k-1, in order."""
    if not len(labels):
        return []
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.searchsorted(labels[order], np.arange(1, int(labels.max(initial=-1)) + 1)))


def _medoid(vectors: np.ndarray, weights: np.ndarray) -> int:
    """The row most similar, weighted by how often each answer came back, to all the others."""
    if len(vectors) > 3000:  # the centroid's nearest row: same idea, linear cost
        centre = (vectors * weights[:, None]).sum(axis=0)
        return int(np.argmax(vectors @ centre))
    return int(np.argmax((vectors @ vectors.T) @ weights))


# --- metrics over any grouping of the grid --------------------------------------------

def group_metrics(analysis: Analysis, axes: list[str], *, with_clusters: bool = False) -> list[dict]:
    """One dict per combination of `axes` that has answers or errors: the axes' values,
    basic_metrics() and the meaning metrics (see the module's docstring)."""
    keys = [axis for axis in AXES if axis in axes]
    answers, errors = analysis.answers, analysis.errors
    prepared = analysis.prepared
    # Counts, cost and latency do not depend on the clusters: once per run for every threshold.
    basic = (prepared.once(("basic", tuple(keys)), lambda: _basic_by(answers, errors, keys)) if prepared
             else _basic_by(answers, errors, keys))
    meaning_rows = _meaning_by(analysis, keys, with_clusters)
    out = []
    for key in sorted(basic):
        row = {axis: axis_value(axis, value) for axis, value in zip(keys, key)}
        row.update(basic[key])
        row.update(meaning_rows.get(key) or _no_answers())
        out.append(row)
    return out


def axis_value(axis: str, value):
    """A cell's coordinate as plain Python: a temperature as a float, a variant or input as an int."""
    return float(value) if axis == "temperature" else int(value) if axis in ("variant", "input") else value


def _key(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _groups(df: pd.DataFrame, keys: list[str]):
    """groupby over `keys`, or the whole frame as one group when there are none."""
    return df.assign(_all=0).groupby(keys or ["_all"], sort=True)


def _basic_by(answers: pd.DataFrame, errors: pd.DataFrame, keys: list[str]) -> dict[tuple, dict]:
    """Counts, tokens, cut answers, cost and latency per group: the numbers that need no embedding."""
    out: dict[tuple, dict] = {}
    if len(answers):
        cut = (answers["finish_reason"] == "length").astype(int)
        grouped = _groups(answers.assign(cut=cut), keys)
        agg = grouped.agg(
            count=("id", "size"), distinct_answers=("norm", "nunique"), cut=("cut", "sum"),
            prompt_tokens=("prompt_tokens", "sum"), prompt_known=("prompt_tokens", "count"),
            completion_tokens=("completion_tokens", "sum"), length_known=("completion_tokens", "count"),
            length_mean=("completion_tokens", "mean"), length_sd=("completion_tokens", "std"),
            length_min=("completion_tokens", "min"), length_max=("completion_tokens", "max"),
            cost_usd=("cost_usd", "sum"), cost_known=("cost_usd", "count"), cost_mean=("cost_usd", "mean"),
        )
        quantiles = {name: grouped[column].quantile(q).to_dict() for name, column, q in (
            ("latency_ms_p50", "latency_ms", 0.5), ("latency_ms_p95", "latency_ms", 0.95),
            ("latency_ms_p99", "latency_ms", 0.99), ("ttft_ms_p50", "ttft_ms", 0.5),
            ("ttft_ms_p95", "ttft_ms", 0.95), ("cost_per_call_p95", "cost_usd", 0.95))}
        for key, row in zip(agg.index, agg.to_dict("records")):
            n = int(row["count"])
            cost_known = int(row["cost_known"]) == n  # one unknown price: the total is unknown, never 0
            out[_key(key)] = {
                "count": n, "errors": 0, "error_types": {},
                "prompt_tokens": int(row["prompt_tokens"]) if row["prompt_known"] else None,
                "completion_tokens": int(row["completion_tokens"]) if row["length_known"] else None,
                "length_mean": stats.rounded(row["length_mean"], 2),
                "length_sd": stats.rounded(row["length_sd"], 2),
                "length_min": None if pd.isna(row["length_min"]) else int(row["length_min"]),
                "length_max": None if pd.isna(row["length_max"]) else int(row["length_max"]),
                "cut_by_max_tokens": int(row["cut"]), "cut_share": round(int(row["cut"]) / n, 4),
                "cost_usd": float(row["cost_usd"]) if cost_known else None,
                # What is priced, and how many answers are not: "≥ $x known, n unpriced".
                "cost_usd_known": float(row["cost_usd"]) if row["cost_known"] else None,
                "answers_unpriced": n - int(row["cost_known"]),
                "cost_per_call_mean": float(row["cost_mean"]) if cost_known else None,
                "cost_per_call_p95": float(quantiles["cost_per_call_p95"][key]) if cost_known else None,
                "distinct_answers": int(row["distinct_answers"]),
                **{name: _quantile(values.get(key)) for name, values in quantiles.items()
                   if name != "cost_per_call_p95"},
            }
    if len(errors):
        for key, group in _groups(errors, keys):
            row = out.setdefault(_key(key), _empty_basic())
            row["errors"] = int(len(group))
            row["error_types"] = {str(k): int(v) for k, v in group["error_type"].value_counts().items()}
    return out


def _quantile(value) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 1)


def _empty_basic() -> dict:
    return {"count": 0, "errors": 0, "error_types": {}, "prompt_tokens": None, "completion_tokens": None,
            "length_mean": None, "length_sd": None, "length_min": None, "length_max": None,
            "cut_by_max_tokens": 0, "cut_share": None, "cost_usd": None, "cost_usd_known": None,
            "answers_unpriced": 0, "cost_per_call_mean": None,
            "cost_per_call_p95": None, "distinct_answers": 0, "latency_ms_p50": None, "latency_ms_p95": None,
            "latency_ms_p99": None, "ttft_ms_p50": None, "ttft_ms_p95": None}


def _no_answers() -> dict:
    return {"n_clusters": 0, "consistency": None, "consistency_low": None, "consistency_high": None,
            "entropy": None, "mean_similarity": None, "inputs": 0, "top_cluster": None, "top_answer": None,
            "clusters": []}


def _meaning_by(analysis: Analysis, keys: list[str], with_clusters: bool) -> dict[tuple, dict]:
    """The meaning metrics per group of `keys`: per input first, then averaged over inputs.
    Counted in numpy over (group, cluster) pairs: a grid has thousands of cells, and a
    threshold changes only the clusters, so the groups are numbered once per run."""
    answers = analysis.answers
    if not len(answers):
        return {}
    per_input = keys if "input" in keys else keys + ["input"]
    prepared = analysis.prepared
    group_of, labels = (prepared.once(("groups", tuple(per_input)), lambda: _group_codes(answers, per_input))
                        if prepared else _group_codes(answers, per_input))
    groups = len(labels)
    cluster = answers["cluster"].to_numpy().astype(np.int64)
    span = int(cluster.max(initial=0)) + 1
    pair_of = group_of * span + cluster  # one number per (group, cluster), ordered as the pair
    pairs, size = np.unique(pair_of, return_counts=True)
    group, cluster_id = pairs // span, pairs % span
    n = np.bincount(group, weights=size, minlength=groups)
    share = size / n[group]
    entropy = np.bincount(group, weights=-share * np.log(share), minlength=groups)
    k = np.bincount(group, minlength=groups)
    # Within each group: the largest cluster first, a tie to the lower cluster id.
    ordered = np.lexsort((cluster_id, -size, group))
    top_rows = ordered[np.searchsorted(group[ordered], np.arange(groups))]
    top, top_cluster = size[top_rows], cluster_id[top_rows]
    low, high = stats.wilson_many(top, n)
    similarity = (prepared.once(("similarity", tuple(per_input)), lambda: _mean_similarity(answers, analysis.vectors, per_input))
                  if prepared else _mean_similarity(answers, analysis.vectors, per_input))
    listed: dict[tuple, list] = {}
    if with_clusters:
        # Pair r's members are one slice of the ids, in the answers' order.
        by_pair = np.argsort(pair_of, kind="stable")
        ids = answers["id"].to_numpy()[by_pair]
        bounds = np.append(np.searchsorted(pair_of[by_pair], pairs), len(ids))
        # A row over several inputs lists no clusters (_over_inputs): skip those groups.
        inputs_in = Counter(label[:len(keys)] for label in labels)
        single = np.array([inputs_in[label[:len(keys)]] == 1 for label in labels])
        for r in ordered[single[group[ordered]]].tolist():
            cluster = analysis.clusters[int(cluster_id[r])]
            listed.setdefault(labels[group[r]], []).append({
                "cluster": cluster.id, "size": int(size[r]), "share": round(float(share[r]), 4),
                "representative": cluster.representative, "kind": cluster.kind,
                "member_ids": ids[bounds[r]:bounds[r + 1]].tolist(),
                **({"tool_calls": cluster.tool_calls} if cluster.tool_calls else {})})
    rows = {}
    for g, key in enumerate(labels):
        cluster = analysis.clusters[int(top_cluster[g])]
        rows[key] = {"n_clusters": int(k[g]), "consistency": round(float(top[g] / n[g]), 4),
                     "consistency_low": round(float(low[g]), 4), "consistency_high": round(float(high[g]), 4),
                     "entropy": round(float(entropy[g]), 4), "mean_similarity": similarity.get(key), "inputs": 1,
                     "top_cluster": cluster.id, "top_answer": cluster.representative,
                     "clusters": listed.get(key, [])}
    if "input" in keys:
        return rows
    return _over_inputs(rows, len(keys))


def _group_codes(answers: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, list[tuple]]:
    """Each answer's group of `keys` (0..G-1, in the groups' sorted order) and each group's key."""
    grouped = answers.groupby(keys, sort=True)
    return grouped.ngroup().to_numpy().astype(np.int64), [_key(label) for label in grouped.size().index]


def _over_inputs(rows: dict[tuple, dict], n_keys: int) -> dict[tuple, dict]:
    """Per-input meaning metrics averaged over inputs; one input keeps its own (Wilson) row."""
    grouped: dict[tuple, list[dict]] = {}
    for key, row in rows.items():
        grouped.setdefault(key[:n_keys] or (0,), []).append(row)
    out = {}
    for key, group in grouped.items():
        if len(group) == 1:
            out[key] = group[0]
            continue
        mean, low, high = stats.mean_interval([r["consistency"] for r in group])
        out[key] = {
            "n_clusters": round(float(np.mean([r["n_clusters"] for r in group])), 2),
            "consistency": stats.rounded(mean), "consistency_low": stats.rounded(low),
            "consistency_high": stats.rounded(high),
            "entropy": stats.rounded(np.mean([r["entropy"] for r in group])),
            "mean_similarity": stats.rounded(np.nanmean([np.nan if r["mean_similarity"] is None
                                                         else r["mean_similarity"] for r in group]))
            if any(r["mean_similarity"] is not None for r in group) else None,
            "inputs": len(group), "top_cluster": None, "top_answer": None, "clusters": [],
        }
    return out


def _mean_similarity(answers: pd.DataFrame, vectors: np.ndarray, keys: list[str]) -> dict[tuple, float | None]:
    """Mean cosine similarity over all pairs of answers in each group, in one pass:
    Σ_{i≠j} v_i·v_j = |Σ v_i|² − Σ |v_i|² for the group's rows."""
    codes = answers.groupby(keys, sort=True).ngroup().to_numpy()
    index = answers.groupby(keys, sort=True).size().index
    rows = vectors[answers["vector"].to_numpy()].astype(np.float64)
    sums = np.zeros((len(index), rows.shape[1]))
    np.add.at(sums, codes, rows)
    self_pairs = np.bincount(codes, weights=np.einsum("ij,ij->i", rows, rows), minlength=len(index))
    n = np.bincount(codes, minlength=len(index)).astype(np.float64)
    total = np.einsum("ij,ij->i", sums, sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total - self_pairs) / (n * (n - 1))
    return {_key(key): (round(float(m), 4) if count > 1 else None) for key, m, count in zip(index, mean, n)}


def cell_table(responses: list[dict], spec: dict | None = None) -> list[dict]:
    """Per cell, the metrics that need no embedding (cheap: the Runs page). With the run's
    plan, cells whose latency was timed under the embedded model's load are flagged."""
    df = frame(responses)
    answers = df[df["error_type"].isna()].copy()
    answers["norm"] = answers["text"].fillna("").map(embed.normalise)
    basic = _basic_by(answers, df[df["error_type"].notna()], AXES)
    shared_cores = local_load(spec) if spec else set()
    return [{axis: axis_value(axis, value) for axis, value in zip(AXES, key)} | basic[key]
            | {"latency_under_local_load": key[2] in shared_cores} for key in sorted(basic)]


def mean_pairwise_similarity(vectors: np.ndarray, counts: np.ndarray) -> float | None:
    """Mean cosine similarity over all pairs of answers, distinct answers weighted by count."""
    counts = counts.astype(np.float64)
    n = counts.sum()
    if n < 2:
        return None
    weighted = vectors.T.astype(np.float64) @ counts  # Σ_i c_i v_i
    total = float(weighted @ weighted)  # Σ_i Σ_j c_i c_j v_i·v_j, self-pairs included
    self_pairs = float((counts * np.einsum("ij,ij->i", vectors, vectors)).sum())
    return round(float((total - self_pairs) / (n * (n - 1))), 4)


# --- maps and comparisons -------------------------------------------------------------

def map_points(vectors: np.ndarray) -> np.ndarray:
    """2-D coordinates of each distinct answer: PCA of the embeddings."""
    if len(vectors) >= 3 and vectors.shape[1] >= 2:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=0).fit_transform(vectors)
    return np.zeros((len(vectors), 2))


def answer_map(answers: pd.DataFrame, points: np.ndarray) -> pd.DataFrame:
    """2-D coordinates of every answer (map_points of the distinct answers: repeats of one
    answer share its point), for a scatter plot."""
    coords = answers[["id", "variant", "input", "model", "temperature", "text", "cluster"]].copy()
    xy = points[answers["vector"].to_numpy()] if len(answers) else np.zeros((0, 2))
    coords["x"], coords["y"] = xy[:, 0], xy[:, 1]
    return coords


def compare(analysis: Analysis, side_a: pd.Series, side_b: pd.Series) -> dict:
    """Two sets of answers (boolean masks over analysis.answers) side by side.

    Meanings are per input, so "shared" means the same meaning of the same input. With
    one input, consistency is compared as two shares (Newcombe's interval); with several,
    it is compared per input and the difference is paired over the inputs both sides answered.
    """
    answers = analysis.answers
    a, b = answers[side_a], answers[side_b]
    counts_a, counts_b = a["cluster"].value_counts(), b["cluster"].value_counts()
    shared = sorted(set(counts_a.index) & set(counts_b.index), key=lambda c: -(counts_a[c] + counts_b[c]))

    def rows(ids):
        return [{"cluster": int(c), "input": analysis.clusters[c].input,
                 "representative": analysis.clusters[c].representative,
                 "share_a": round(counts_a.get(c, 0) / max(len(a), 1), 4),
                 "share_b": round(counts_b.get(c, 0) / max(len(b), 1), 4)} for c in ids]

    result = {
        "n_a": len(a), "n_b": len(b),
        "shared": rows(shared),
        "only_a": rows([c for c in counts_a.index if c not in counts_b.index]),
        "only_b": rows([c for c in counts_b.index if c not in counts_a.index]),
    }
    if not len(a) or not len(b):
        return result
    per_input = per_input_comparison(a, b, analysis)
    result["per_input"] = per_input
    if len(per_input) <= 1 and a["input"].nunique() == 1 and b["input"].nunique() == 1:
        top_a, top_b = int(counts_a.iloc[0]), int(counts_b.iloc[0])
        diff, low, high = stats.share_difference(top_a, len(a), top_b, len(b))
        result.update({
            "paired_inputs": len(per_input),
            "consistency_a": round(top_a / len(a), 4), "consistency_b": round(top_b / len(b), 4),
            "consistency_a_ci": [round(x, 4) for x in stats.wilson(top_a, len(a))],
            "consistency_b_ci": [round(x, 4) for x in stats.wilson(top_b, len(b))],
            "consistency_shift": round(diff, 4), "consistency_shift_ci": [round(low, 4), round(high, 4)],
            # An interval that excludes 0 is a shift that sampling noise does not explain.
            "shift_is_significant": bool(low > 0 or high < 0),
            "representative_a": analysis.clusters[int(counts_a.index[0])].representative,
            "representative_b": analysis.clusters[int(counts_b.index[0])].representative,
            # An answer of each side in its top meaning: what it was asked with can be shown.
            "representative_a_id": int(a.loc[a["cluster"] == counts_a.index[0], "id"].iloc[0]),
            "representative_b_id": int(b.loc[b["cluster"] == counts_b.index[0], "id"].iloc[0]),
        })
        return result
    consistency_a = [row["consistency_a"] for row in per_input]
    consistency_b = [row["consistency_b"] for row in per_input]
    mean_a, low_a, high_a = stats.mean_interval(consistency_a)
    mean_b, low_b, high_b = stats.mean_interval(consistency_b)
    paired = stats.paired_difference(consistency_a, consistency_b)
    changed = sum(not row["same_top_meaning"] for row in per_input)
    changed_low, changed_high = stats.wilson(changed, len(per_input))
    worst = max(per_input, key=lambda row: (not row["same_top_meaning"], abs(row["shift"]))) if per_input else None
    result.update({
        "paired_inputs": len(per_input),
        "consistency_a": stats.rounded(mean_a), "consistency_b": stats.rounded(mean_b),
        "consistency_a_ci": [stats.rounded(low_a), stats.rounded(high_a)],
        "consistency_b_ci": [stats.rounded(low_b), stats.rounded(high_b)],
        "consistency_shift": paired["difference"], "consistency_shift_ci": [paired["low"], paired["high"]],
        "shift_p_value": paired["p_value"],
        "shift_is_significant": bool(paired["low"] is not None and (paired["low"] > 0 or paired["high"] < 0)),
        "top_meaning_changed": changed, "top_meaning_changed_share": round(changed / max(len(per_input), 1), 4),
        "top_meaning_changed_ci": [round(changed_low, 4), round(changed_high, 4)],
        "representative_a": worst["top_a"] if worst else "", "representative_b": worst["top_b"] if worst else "",
        "representative_a_id": worst["top_a_id"] if worst else None,
        "representative_b_id": worst["top_b_id"] if worst else None,
    })
    return result


def per_input_comparison(a: pd.DataFrame, b: pd.DataFrame, analysis: Analysis) -> list[dict]:
    """For each input both sides answered: consistency on each side and whether their top meanings agree."""
    out = []
    for input_idx in sorted(set(a["input"]) & set(b["input"])):
        ca = a.loc[a["input"] == input_idx, "cluster"].value_counts()
        cb = b.loc[b["input"] == input_idx, "cluster"].value_counts()
        consistency_a, consistency_b = ca.iloc[0] / ca.sum(), cb.iloc[0] / cb.sum()
        out.append({
            "input": int(input_idx), "n_a": int(ca.sum()), "n_b": int(cb.sum()),
            "consistency_a": round(float(consistency_a), 4), "consistency_b": round(float(consistency_b), 4),
            "shift": round(float(consistency_a - consistency_b), 4),
            "same_top_meaning": bool(ca.index[0] == cb.index[0]),
            "top_a": analysis.clusters[int(ca.index[0])].representative,
            "top_b": analysis.clusters[int(cb.index[0])].representative,
            "top_a_id": int(a.loc[(a["input"] == input_idx) & (a["cluster"] == ca.index[0]), "id"].iloc[0]),
            "top_b_id": int(b.loc[(b["input"] == input_idx) & (b["cluster"] == cb.index[0]), "id"].iloc[0]),
        })
    return out


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """Word-level diff: a list of (op, words) with op in "=", "-", "+"."""
    words_a, words_b = a.split(), b.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=words_a, b=words_b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", " ".join(words_a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", " ".join(words_a[i1:i2])))
            if j2 > j1:
                out.append(("+", " ".join(words_b[j1:j2])))
    return out


def progress_grid(counts: list[dict], models: list[str], temperatures: list[float], planned: int) -> pd.DataFrame:
    """A models × temperatures table of "received/planned" (with errors) for a live run;
    `planned` is the samples per model × temperature (variants × inputs × N)."""
    by_cell = {(c["model"], float(c["temperature"])): c for c in counts}
    grid = {}
    for t in temperatures:
        column = []
        for m in models:
            cell = by_cell.get((m, float(t)), {"received": 0, "errors": 0})
            text = f"{cell['received']}/{planned}"
            if cell["errors"]:
                text += f" ({cell['errors']} err)"
            column.append(text)
        grid[f"T={t:g}"] = column
    return pd.DataFrame(grid, index=pd.Index(models, name="model"))


Side = tuple  # (run_id, [(model, temperature), ...]) or (run_id, cells, variants, inputs)


def compare_runs(store: Store, side_a: Side, side_b: Side, *, method: str | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Compare parts of one run, or of two runs (before and after a prompt change).

    Each side is (run_id, cells[, variants[, inputs]]): cells are (model, temperature)
    pairs, variants and inputs indexes; an empty list means all. Both sides are clustered
    together, and the inputs of two runs are matched by their variables, so that the
    same meaning of the same input has one id on both sides.
    """
    rows, contexts = [], {}
    run_ids = list(dict.fromkeys([side_a[0], side_b[0]]))
    joint_inputs: dict[str, int] = {}
    with store.connection() as db:
        for run_id in run_ids:
            if runs.get_run(db, run_id) is None:
                raise SpreadError(f"no run with id {run_id}")
            joint = {row["input"]: joint_inputs.setdefault(json.dumps(row["vars"], sort_keys=True), len(joint_inputs))
                     for row in runs.run_inputs(db, run_id)}
            for row in response_rows.of_run(db, run_id):
                rows.append(dict(row, run_input=row["input"], input=joint.get(row["input"], row["input"])))
            for (_, input_idx), (system, prompt) in runs.rendered_prompts(db, run_id).items():
                contexts.setdefault(joint.get(input_idx, input_idx), []).append(f"{system}\n{prompt}")
    analysis = analyse(rows, method=method, threshold=threshold, with_map=False,
                       contexts={k: "\n".join(v) for k, v in contexts.items()},
                       embedder=lambda texts, m: embed.cached(store, texts, m))
    answers = analysis.answers
    run_input = pd.Series([row["run_input"] for row in rows]).loc[answers.index]

    def mask(side):
        run_id, cells, variants, inputs = (tuple(side) + ([], [], []))[:4]
        selected = answers["run_id"] == run_id
        if cells:
            in_cells = pd.Series(False, index=answers.index)
            for model, temperature in cells:
                in_cells |= (answers["model"] == model) & (answers["temperature"] == float(temperature))
            selected &= in_cells
        if variants:
            selected &= answers["variant"].isin(variants)
        if inputs:
            selected &= run_input.isin(inputs)
        return selected

    result = compare(analysis, mask(side_a), mask(side_b))
    if "representative_a" in result:
        result["diff"] = word_diff(result["representative_a"], result["representative_b"])
    result["method"], result["threshold"] = analysis.method, analysis.threshold
    # Inputs are named by their variables (`#2 country=Peru`), numbered from 1 in the order first met.
    from core.prompts import inputs as inputs_module

    names = {index: inputs_module.label(index, json.loads(values)) for values, index in joint_inputs.items()}
    for key in ("per_input", "shared", "only_a", "only_b"):
        for row in result.get(key) or []:
            row["input_name"] = names.get(row["input"], f"#{row['input'] + 1}")
    return result
