"""When two answers mean the same thing: the equivalence behind meaning clusters.

Two answers are compared in three steps:
1. Their facts (`facts`): a refusal only ever matches a refusal, a non-answer a
   non-answer. Otherwise facts that conflict in the same role keep them apart whatever
   the wording: two different numbers given as the answer ("42" / "twenty-four"), two
   different first names ("Armstrong, with Aldrin..." / "Buzz Aldrin"), yes against no,
   a word one asserts and the other denies, lists with different items, or one word
   swapped in an otherwise identical sentence ("...is hydrogen." / "...is lithium.").
   An added detail that conflicts with nothing ("Everest, in the Himalayas") does not.
2. Facts that agree make them the same: the same number, the same name, the same
   yes or no, the same kind, or the same words once the form is cleaned away.
3. Otherwise their embeddings (`embed`) decide: cosine similarity above the threshold.

Answers are grouped by average-linkage agglomerative clustering (scipy) on that
similarity (a conflict counts as -1, an agreement as 1): two groups merge while their
answers are, on average, more alike than the threshold. Spread errs towards splitting:
an extra cluster costs a reviewer one click, a wrong answer hidden in a right cluster
costs much more.

The meaning clusters, the Review queue and the `similar` check all use this module, so
that one notion of "the same answer" runs through Spread. `equivalent` and `explain`
apply the same rules to one pair, with the reasons.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core import jsonvalue
from core.analyse import facts as facts_module
from core.analyse import quantities as quantities_module
from core.analyse.facts import Context, Facts
from core.analyse.quantities import Quantity
from core.prompts.shapes import EXTRACT_MODES, check_extract_mode  # noqa: F401  (part of this module's interface)

DEFAULT_THRESHOLD = 0.70  # measured on the benchmark (dev): ARI as at 0.65, fewer false merges
# Above this many distinct answers, cluster in chunks: average linkage needs the full
# similarity matrix (n² memory, more than n² time).
CHUNK = 2000
# A pair this close to the threshold, with no fact deciding it, may get a second opinion.
NEAR = 0.1

answer_kind = facts_module.answer_kind


# --- the part of an answer to compare ---------------------------------------------------

def apply_decisions(labels: np.ndarray, norms: list[str], decisions: list[dict]) -> np.ndarray:
    """Cluster labels of one input's distinct answers (`norms`) with reviewers' decisions
    applied: a merge joins the two answers' clusters; a split moves the second answer (and
    only it) into a cluster of its own when the two share one."""
    labels = np.asarray(labels).copy()
    row_of = {norm: i for i, norm in enumerate(norms)}
    for decision in decisions:
        a, b = row_of.get(decision["text_a"]), row_of.get(decision["text_b"])
        if a is None or b is None:
            continue  # an answer this analysis does not hold (another method, a filter)
        if decision["action"] == "merge":
            labels[labels == labels[b]] = labels[a]
        elif labels[a] == labels[b]:
            labels[b] = labels.max() + 1
    return labels


def extract(text: str, mode: str = "whole") -> str:
    """The part of an answer to compare (see EXTRACT_MODES)."""
    check_extract_mode(mode)
    text = text or ""
    if mode == "whole":
        return text
    if mode == "first-sentence":
        sentences = facts_module.split_sentences(text.strip())
        return sentences[0] if sentences else text
    if mode == "final-answer":
        marked = facts_module.answer_part(text)
        if marked:
            return marked
        numbers = re.findall(r"[-−]?\d[\d,]*(?:\.\d+)?", text)
        return numbers[-1].replace(",", "") if numbers else text
    if mode.startswith("json:"):
        value = _json_field(text, mode[5:].strip())
        return text if value is None else value if isinstance(value, str) else jsonvalue.canonical(value)
    match = re.search(mode[6:], text)
    if not match:
        return text
    return match.group(1) if match.groups() and match.group(1) is not None else match.group(0)


def _json_field(text: str, path: str):
    decoder = json.JSONDecoder()
    for start in [m.start() for m in re.finditer(r"[{\[]", text)]:
        try:
            value, _ = decoder.raw_decode(text[start:])
        except ValueError:
            continue
        for key in path.split("."):
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                value = None
                break
        if value is not None:
            return value
    return None


# --- answers that are data: tool calls and JSON ------------------------------------------

STRUCTURED = "\x00"  # starts a canonical form: no normalised text does


def canonical(tool_calls: list[dict] | None, json_value: str | None) -> str | None:
    """The meaning of an answer that is data, as one string: equal strings, one meaning.

    Tool calls: the functions called, in order, each with its parsed arguments (key order
    and spacing never split a meaning; a different value or another function always
    does); an answer's words beside its calls do not change what it does. A JSON answer:
    its parsed value. Values compare by `jsonvalue`'s rule (2 is 2.0, true is not 1).
    Plain text: None (its meaning is read by the rules below)."""
    if tool_calls:
        return STRUCTURED + "call " + jsonvalue.canonical([[c.get("name"), c.get("arguments")] for c in tool_calls])
    if json_value is not None:
        return STRUCTURED + "json " + jsonvalue.canonical(json.loads(json_value))
    return None


# --- the rules, for one pair -------------------------------------------------------------

@dataclass
class Verdict:
    """What the facts of two answers say: conflicts keep them apart, agreements join them."""
    conflicts: list[str] = field(default_factory=list)
    agreements: list[str] = field(default_factory=list)


def compare(a: Facts, b: Facts) -> Verdict:
    """The fact rules for one pair (cluster_vectors applies the same rules to all pairs at once)."""
    verdict = Verdict()
    if a.kind or b.kind:
        if a.kind == b.kind:
            verdict.agreements.append(f"both {a.kind}s")
        else:
            verdict.conflicts.append(f"{a.kind or 'answer'} vs {b.kind or 'answer'}")
        return verdict
    if a.polarity * b.polarity < 0:
        verdict.conflicts.append(f"polarity {_yes_no(a.polarity)} vs {_yes_no(b.polarity)}")
    elif a.polarity * b.polarity > 0:
        verdict.agreements.append(f"both {_yes_no(a.polarity)}")
    number_conflict, number_agreement = _numbers(a, b)
    verdict.conflicts += number_conflict
    code = a.is_code or b.is_code  # in code, a shared number or name is an argument, not the answer
    verdict.agreements += [] if code else number_agreement
    list_conflict, list_agreement = _lists(a, b)
    verdict.conflicts += list_conflict
    verdict.agreements += list_agreement
    if a.main and b.main:
        if _name_conflict(a, b):
            verdict.conflicts.append(f"names {_join(a.main)} vs {_join(b.main)}")
        elif a.main & b.names and b.main & a.names and not code:
            verdict.agreements.append(f"same name {_join(a.main & b.names)}")
    if a.arguments != b.arguments:
        verdict.conflicts.append(
            f"code arguments {_join(a.arguments - b.arguments)} vs {_join(b.arguments - a.arguments)}")
    denied = (a.asserted & b.negated) | (b.asserted & a.negated)
    if denied:
        verdict.conflicts.append(f"one asserts, the other denies: {_join(denied)}")
    if a.core and a.core == b.core:
        verdict.agreements.append("same words")
    if not verdict.agreements and not code:
        # Weaker than the rules above: only when no fact already agrees, and only in prose.
        swap = substitution(a.words, b.words)
        if swap:
            verdict.conflicts.append(f"terms {swap[0]} vs {swap[1]}")
    return verdict


def _yes_no(sign: int) -> str:
    return "yes" if sign > 0 else "no"


def _join(words) -> str:
    return " ".join(sorted(words)) or "-"


def _lists(a: Facts, b: Facts) -> tuple[list[str], list[str]]:
    """Two lists of words (numbers have their own rule) must hold the same items, in any order."""
    if not (a.is_list and b.is_list and a.items and b.items) or (a.quantities and b.quantities):
        return [], []
    if a.items == b.items:
        return [], ["same list items"]
    return [f"list items {_join(a.items - b.items)} vs {_join(b.items - a.items)}"], []


def _name_conflict(a: Facts, b: Facts) -> bool:
    """The first names differ and one of them is missing from the other answer:
    "Armstrong, with Aldrin" against "Buzz Aldrin", not "Everest" against "Mount Everest"."""
    return not (a.main & b.main) and (not (a.main & b.names) or not (b.main & a.names))


def _numbers(a: Facts, b: Facts) -> tuple[list[str], list[str]]:
    """Conflicts and agreements of the quantities two answers give."""
    if a.stated and b.stated:
        same = a.stated.equals(b.stated, bare_ok=a.stated_bare or b.stated_bare)
        if same is True:
            return [], [f"same number {a.stated.text}"]
        if same is False:
            return [f"{_label(a.stated)} {a.stated.text} vs {b.stated.text}"], []
    if not a.quantities or not b.quantities:
        return [], []
    covered_a = [q for q in a.quantities if any(q.equals(r) for r in b.quantities)]
    covered_b = [r for r in b.quantities if any(r.equals(q) for q in a.quantities)]
    if a.is_list and b.is_list:
        if len(covered_a) == len(a.quantities) and len(covered_b) == len(b.quantities):
            return [], ["same list of numbers"]
        return [f"lists {_texts(a.quantities)} vs {_texts(b.quantities)}"], []
    for dimension in {q.dimension for q in a.quantities} & {q.dimension for q in b.quantities}:
        if not any(q.dimension == dimension for q in covered_a):
            ours = [q for q in a.quantities if q.dimension == dimension]
            theirs = [q for q in b.quantities if q.dimension == dimension]
            return [f"{_label(ours[0])} {_texts(ours)} vs {_texts(theirs)}"], []
    if len(covered_a) == len(a.quantities) and len(covered_b) == len(b.quantities):
        return [], [f"same numbers {_texts(a.quantities)}"]
    return [], []


def _label(quantity) -> str:
    return "dates" if quantity.dimension == "date" else "numbers"


def _texts(found) -> str:
    return ", ".join(q.text for q in found)


def substitution(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, str] | None:
    """The words swapped when two answers are the same sentence but for one short span
    ("The element with atomic number 1 is hydrogen / lithium"), if they are content words."""
    own_a, own_b = set(a) - set(b), set(b) - set(a)
    if not (1 <= len(own_a) <= 3 and 1 <= len(own_b) <= 3):
        return None
    span = _one_span(a, b)
    if span is None:
        return None
    i1, i2, j1, j2 = span
    left, right = a[i1:i2], b[j1:j2]
    kept = a[:i1] + a[i2:]
    content = facts_module.stop_words()
    if len(left) > 3 or len(right) > 3 or not any(w not in content for w in kept):
        return None
    if not any(w not in content for w in left) or not any(w not in content for w in right):
        return None
    return " ".join(left), " ".join(right)


def _one_span(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[int, int, int, int] | None:
    """(i1, i2, j1, j2) when a[i1:i2] and b[j1:j2] are the only difference between a and b,
    two spans with no word in common between the longest shared start and end; else None.
    Read from both ends, not aligned by difflib: a difflib match cost 13 times as much and
    found the same span on every one of 74,635 pairs of a 10,000-answer run, parting only
    where a word repeats and either alignment is a reading (bench/bench_clusters.py)."""
    n = min(len(a), len(b))
    start = 0
    while start < n and a[start] == b[start]:
        start += 1
    end = 0
    while end < n - start and a[-1 - end] == b[-1 - end]:
        end += 1
    i2, j2 = len(a) - end, len(b) - end
    if start == i2 or start == j2 or not set(a[start:i2]).isdisjoint(b[start:j2]):
        return None  # a word only added or only dropped, or more than one span changed
    return start, i2, start, j2


# --- the rules, for every pair at once ----------------------------------------------------

def fact_matrices(found: list[Facts]) -> tuple[np.ndarray, np.ndarray]:
    """(conflict, agreement) boolean matrices: compare() for every pair, computed with
    matrix products where the rules allow and once per distinct signature elsewhere."""
    n = len(found)
    kind = np.array([f.kind or "" for f in found])
    has_kind = kind != ""
    either_kind = has_kind[:, None] | has_kind[None, :]
    same_kind = kind[:, None] == kind[None, :]

    sign = np.array([f.polarity for f in found])
    product = sign[:, None] * sign[None, :]
    conflict = product < 0
    agree = product > 0

    # Numbers: the stated answers compare as arrays; the other pairs with numbers on both
    # sides go through _numbers() once per pair of distinct signatures.
    settled, stated_conflict, stated_agree = _stated_matrices(found)
    has_numbers = np.array([bool(f.quantities) for f in found])
    rest = ~settled & has_numbers[:, None] & has_numbers[None, :]
    number_conflict, number_agree = _grouped(
        found, lambda f: (_value(f.stated), f.stated_bare, tuple(map(_value, f.quantities)), f.is_list), _numbers,
        where=rest)
    code = np.array([f.is_code for f in found])
    either_code = code[:, None] | code[None, :]
    conflict |= np.where(settled, stated_conflict, number_conflict & rest)
    agree |= np.where(settled, stated_agree, number_agree & rest) & ~either_code

    list_conflict, list_agree = _grouped(found, lambda f: (f.is_list, f.items, bool(f.quantities)), _lists)
    conflict |= list_conflict
    agree |= list_agree

    main, names = _incidence_pair([f.main for f in found], [f.names for f in found])
    has_main = main.sum(axis=1) > 0
    both_main = has_main[:, None] & has_main[None, :]
    shared_main = (main @ main.T) > 0
    main_in_names = (main @ names.T) > 0  # [i, j]: i's first name appears among j's names
    name_conflict = both_main & ~shared_main & (~main_in_names | ~main_in_names.T)
    conflict |= name_conflict
    agree |= both_main & ~name_conflict & main_in_names & main_in_names.T & ~either_code

    argument_sets = {}
    arguments = np.array([argument_sets.setdefault(f.arguments, len(argument_sets)) for f in found])
    conflict |= arguments[:, None] != arguments[None, :]

    asserted, negated = _incidence_pair([f.asserted for f in found], [f.negated for f in found])
    denial = (asserted @ negated.T) > 0
    conflict |= denial | denial.T

    cores = np.array([f.core or f"\0{i}" for i, f in enumerate(found)])
    agree |= cores[:, None] == cores[None, :]
    conflict |= _substitutions(found, skip=conflict | agree | either_code)

    conflict = np.where(either_kind, ~same_kind, conflict)
    agree = np.where(either_kind, same_kind, agree)
    np.fill_diagonal(conflict, False)
    np.fill_diagonal(agree, True)
    return conflict, agree & ~conflict if n else agree


def _grouped(found: list[Facts], signature, rule, where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A pairwise rule applied once per pair of distinct signatures (only to the pairs
    `where` asks for, if given), then spread out to every pair."""
    keys, index = {}, []
    for f in found:
        index.append(keys.setdefault(signature(f), len(keys)))
    index = np.array(index, dtype=int)
    k = len(keys)
    representatives = {key: found[int(np.argmax(index == key))] for key in range(k)}
    needed = np.ones((k, k), dtype=bool)
    if where is not None:
        needed[:] = False
        rows, cols = np.nonzero(where)
        needed[index[rows], index[cols]] = True
    conflict, agree = np.zeros((k, k), dtype=bool), np.zeros((k, k), dtype=bool)
    for i in range(k):
        for j in range(i, k):
            if not (needed[i, j] or needed[j, i]):
                continue
            conflicts, agreements = rule(representatives[i], representatives[j])
            conflict[i, j] = conflict[j, i] = bool(conflicts)
            agree[i, j] = agree[j, i] = bool(agreements) and not conflicts
    return conflict[np.ix_(index, index)], agree[np.ix_(index, index)]


def _stated_matrices(found: list[Facts]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(settled, conflict, agreement) for the pairs whose stated quantities compare:
    Quantity.equals() for every pair at once."""
    n = len(found)
    has = np.array([f.stated is not None for f in found])
    if not has.any():
        empty = np.zeros((n, n), dtype=bool)
        return empty, empty, empty
    blank = Quantity("", "none", (np.nan,), 0.0, np.nan)
    stated = [f.stated or blank for f in found]
    dimension = np.array([q.dimension for q in stated])
    first = np.array([q.values[0] for q in stated])
    second = np.array([q.values[-1] for q in stated])
    tolerance = np.array([q.tolerance for q in stated])
    raw = np.array([q.raw for q in stated])
    raw_slack = np.array([quantities_module.precision(q.raw) for q in stated])
    bare = np.array([f.stated_bare for f in found])
    slack = np.maximum(tolerance[:, None], tolerance[None, :])
    with np.errstate(invalid="ignore"):
        close = np.zeros((n, n), dtype=bool)
        for a in (first, second):
            for b in (first, second):
                gap = np.abs(a[:, None] - b[None, :])
                close |= (gap < slack) | (gap <= 1e-9 * np.maximum(np.abs(a[:, None]), np.abs(b[None, :])))
        same_dimension = dimension[:, None] == dimension[None, :]
        plain = dimension == ""
        dated = dimension == "date"
        crossing = (~same_dimension & (bare[:, None] | bare[None, :]) & (plain[:, None] | plain[None, :])
                    & ~dated[:, None] & ~dated[None, :])
        raw_close = np.abs(raw[:, None] - raw[None, :]) < np.maximum(raw_slack[:, None], raw_slack[None, :])
    both = has[:, None] & has[None, :]
    settled = both & (same_dimension | crossing)
    equal = np.where(same_dimension, close, raw_close)
    return settled, settled & ~equal, settled & equal


def _value(quantity):
    """A quantity without where it was written: what the number rules look at."""
    return quantity and (quantity.dimension, quantity.values, quantity.tolerance, quantity.raw)


def _incidence_pair(first: list[frozenset], second: list[frozenset]) -> tuple[np.ndarray, np.ndarray]:
    """Two lists of word sets as 0/1 matrices over one vocabulary, so that the words two
    answers share are one matrix product."""
    vocabulary = {w: k for k, w in enumerate(sorted(set().union(*first, *second)))}
    a = np.zeros((len(first), max(len(vocabulary), 1)), dtype=np.float32)
    b = np.zeros_like(a)
    for row, (s, t) in enumerate(zip(first, second)):
        a[row, [vocabulary[w] for w in s]] = 1.0
        b[row, [vocabulary[w] for w in t]] = 1.0
    return a, b


def _substitutions(found: list[Facts], skip: np.ndarray) -> np.ndarray:
    """substitution() for the pairs not already decided (`skip`) that can have one: each
    side has 1-3 words the other lacks."""
    n = len(found)
    out = np.zeros((n, n), dtype=bool)
    if n < 2:
        return out
    word_sets = [frozenset(f.words) for f in found]
    vocabulary = {w: k for k, w in enumerate(sorted(set().union(*word_sets)))}
    incidence = np.zeros((n, max(len(vocabulary), 1)), dtype=np.float32)
    for row, s in enumerate(word_sets):
        incidence[row, [vocabulary[w] for w in s]] = 1.0
    shared = incidence @ incidence.T
    own = incidence.sum(axis=1)[:, None] - shared  # [i, j]: words of i that j lacks
    candidates = (own >= 1) & (own <= 3) & (own.T >= 1) & (own.T <= 3) & ~skip
    for i, j in zip(*np.nonzero(np.triu(candidates, 1))):
        if substitution(found[i].words, found[j].words):
            out[i, j] = out[j, i] = True
    return out


def comparable(text: str, mode: str = "whole") -> str:
    """The text whose embedding stands for an answer: the extracted part. Its wrapping
    (markdown, a base model's next question) stays: measured on the benchmark, cleaning
    it away before embedding helps nothing the facts do not already settle, and code
    answers lose their backticks' help."""
    return extract(text, mode)


# --- clustering -------------------------------------------------------------------------

Embedder = Callable[[list[str], str], np.ndarray]


def cluster(texts: list[str], *, method: str, threshold: float = DEFAULT_THRESHOLD, context: str = "",
            embedder: Embedder | None = None, extract_mode: str = "whole",
            second_opinion: "SecondOpinion | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, vectors) for distinct answers, most frequent first: what spread.analyse
    clusters. The exact method compares normalised text only: facts could only split
    what is equal."""
    from core.analyse import embed

    check_extract_mode(extract_mode)
    embedder = embedder or embed.embed
    if not texts:
        return np.zeros(0, dtype=int), np.zeros((0, 1), np.float32)
    vectors = embedder([comparable(t, extract_mode) for t in texts], method)
    parts = None if method == "exact" else [extract(t, extract_mode) for t in texts]
    return cluster_vectors(vectors, threshold, parts, context, second_opinion=second_opinion), vectors


# Given pairs of answers, says for each: True (same meaning), False (different) or None.
SecondOpinion = Callable[[list[tuple[str, str]]], list[bool | None]]


def cluster_vectors(vectors: np.ndarray, threshold: float, texts: list[str] | None = None,
                    context: str = "", *, second_opinion: SecondOpinion | None = None) -> np.ndarray:
    """Cluster labels for L2-normalised rows (average linkage, cosine similarity above threshold).

    With `texts`, the fact rules apply (see the module docstring); `context` is the
    prompt, whose own numbers and names do not count. `second_opinion`, if given (with
    texts), is asked about the pairs near the threshold that no fact decides.
    """
    return Clustering(vectors, texts, context).labels(threshold, second_opinion=second_opinion)


class Clustering:
    """The meaning clusters of one set of answers, at any threshold.

    The facts are read and the average-linkage tree is built (scipy) once; each threshold
    is then a cut of that tree, so moving the threshold slider does not cluster again.
    A second opinion changes the similarities near one threshold, and more than CHUNK
    answers are clustered in chunks that depend on it: those cluster at that threshold.
    """

    def __init__(self, vectors: np.ndarray, texts: list[str] | None = None, context: str = ""):
        self.vectors = vectors
        self.found = read_all(texts, context) if texts is not None and len(vectors) > 1 else None
        self.texts = texts
        self._tree = None

    def labels(self, threshold: float, *, second_opinion: SecondOpinion | None = None) -> np.ndarray:
        vectors, found, texts = self.vectors, self.found, self.texts
        n = len(vectors)
        if n <= 1:
            return np.zeros(n, dtype=int)
        ask = None
        if second_opinion is not None and texts is not None:
            ask = lambda rows: second_opinion([(texts[i], texts[j]) for i, j in rows])  # noqa: E731
        if n <= CHUNK and ask is None:
            if self._tree is None:
                self._tree = _tree(similarity_matrix(vectors, found)[0])
            return _cut(self._tree, threshold)
        if n <= CHUNK:
            return _agglomerate(vectors, threshold, found, ask)
        # Large: cluster the first chunk (the most frequent answers come first), then give
        # each later answer the nearest existing cluster when alike enough, and cluster the
        # rest among themselves.
        labels = np.full(n, -1)
        labels[:CHUNK] = _agglomerate(vectors[:CHUNK], threshold, found[:CHUNK] if found else None, ask)
        for start in range(CHUNK, n, CHUNK):
            block = np.arange(start, min(start + CHUNK, n))
            centroids = _centroids(vectors, labels)
            similarity = vectors[block] @ centroids.T
            best = similarity.argmax(axis=1)
            close = similarity[np.arange(len(block)), best] >= threshold
            labels[block[close]] = best[close]
            rest = block[~close]
            if len(rest):
                rest_facts = [found[i] for i in rest] if found else None
                labels[rest] = _agglomerate(vectors[rest], threshold, rest_facts) + labels.max() + 1
        return labels


def read_all(texts: list[str], context: str = "") -> list[Facts]:
    """The facts of each answer, read against the prompt and the other answers' names."""
    frame = Context.of(context, texts)
    return [facts_module.read(t, frame) for t in texts]


def similarity_matrix(vectors: np.ndarray, found: list[Facts] | None) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, decided): cosine similarity overruled by the facts, -1 where they
    conflict and 1 where they agree; `decided` marks the pairs the facts settled."""
    similarity = np.clip(vectors @ vectors.T, -1.0, 1.0)
    if found is None:
        return similarity, np.zeros(similarity.shape, dtype=bool)
    conflict, agree = fact_matrices(found)
    return np.where(conflict, -1.0, np.where(agree, 1.0, similarity)), conflict | agree


def _agglomerate(vectors: np.ndarray, threshold: float, found=None, ask=None) -> np.ndarray:
    """Cluster labels at one threshold, second opinions asked about the pairs near it."""
    if len(vectors) == 1:
        return np.zeros(1, dtype=int)
    similarity, decided = similarity_matrix(vectors, found)
    if ask is not None and found is not None:
        # Only pairs near the threshold that no fact settled: a few, not n².
        near = ~decided & (np.abs(similarity - threshold) <= NEAR)
        rows = [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(near, 1)))]
        for (i, j), opinion in zip(rows, ask(rows) if rows else []):
            if opinion is not None:
                similarity[i, j] = similarity[j, i] = 1.0 if opinion else -1.0
    return _cut(_tree(similarity), threshold)


def _tree(similarity: np.ndarray) -> np.ndarray:
    """The average-linkage merges (scipy's linkage matrix) of a similarity matrix."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    distance = (1.0 - similarity).astype(np.float64)
    np.fill_diagonal(distance, 0.0)
    return linkage(squareform(distance, checks=False), method="average")


def _cut(tree: np.ndarray, threshold: float) -> np.ndarray:
    """Labels 0..k-1 when the merges at an average distance below 1 - threshold are made
    (two groups merge while they are, on average, more alike than the threshold)."""
    from scipy.cluster.hierarchy import fcluster

    return fcluster(tree, np.nextafter(1.0 - threshold, -np.inf), criterion="distance") - 1


def _centroids(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = labels.max() + 1
    sums = np.zeros((k, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, labels[labels >= 0], vectors[labels >= 0])
    return sums / np.clip(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12, None)


# --- one pair, explained ------------------------------------------------------------------

@dataclass
class Pair:
    """Whether two answers mean the same, and why (for a reviewer)."""
    same: bool
    similarity: float                 # cosine similarity of the embeddings
    conflicts: list[str]              # e.g. "numbers 42 vs 24", "names paris vs lyon", "polarity yes vs no"
    kinds: tuple[str | None, str | None]  # answer_kind() of each
    second_opinion: str | None = None
    reason: str = ""
    agreements: list[str] = field(default_factory=list)


def equivalent(a: str, b: str, *, context: str = "", method: str | None = None,
               threshold: float = DEFAULT_THRESHOLD, embedder=None,
               second_opinion: SecondOpinion | None = None) -> Pair:
    """Do `a` and `b` mean the same? The same answer as clustering the two alone.

    `embedder(texts, method)` returns L2-normalised rows (default `embed.embed`);
    `second_opinion([(a, b)])` is asked only when no fact decides and the similarity is
    within NEAR of the threshold."""
    from core.analyse import embed

    method = method or embed.default_method()
    embedder = embedder or embed.embed
    if embed.normalise(a) == embed.normalise(b):
        similarity = 1.0  # spread.analyse de-duplicates these before comparing
    else:
        vectors = embedder([a, b], method)
        similarity = float(np.clip(vectors[0] @ vectors[1], -1.0, 1.0))
    kinds = (answer_kind(a), answer_kind(b))
    if method == "exact":
        same = similarity > threshold
        return Pair(same, similarity, [], kinds, reason="same text" if same else "different text")
    fa, fb = read_all([a, b], context)
    verdict = compare(fa, fb)
    opinion = None
    if verdict.conflicts:
        same = False
        reason = "kept apart: " + "; ".join(verdict.conflicts)
    elif verdict.agreements:
        same = True
        reason = "merged: " + "; ".join(verdict.agreements)
    else:
        same = similarity > threshold
        if second_opinion is not None and abs(similarity - threshold) <= NEAR:
            (verdict_2,) = second_opinion([(a, b)])
            if verdict_2 is not None:
                same = verdict_2
                opinion = "same meaning" if verdict_2 else "different meaning"
        reason = (f"{'merged' if same else 'kept apart'}: similarity {similarity:.2f} "
                  f"{'above' if similarity > threshold else 'at or below'} the threshold {threshold:.2f}"
                  + (f"; second opinion: {opinion}" if opinion else ""))
    return Pair(same, similarity, verdict.conflicts, kinds, opinion, reason, verdict.agreements)


explain = equivalent
