"""When two answers mean the same thing: the equivalence behind meaning clusters.

Answers are embedded (`embed`) and grouped by average-linkage agglomerative clustering
(scikit-learn) on cosine similarity: two groups merge while their answers are, on
average, at least `threshold` alike. Embeddings alone are not enough (see key terms
below), so a guard keeps answers that state different facts apart.

The meaning clusters, the Review queue and the `similar` check all use this module,
so that one notion of "the same answer" runs through Spread.
"""

from __future__ import annotations

import re

import numpy as np

DEFAULT_THRESHOLD = 0.65
# Above this many distinct answers, cluster in chunks: average linkage needs the full
# similarity matrix (n² memory, more than n² time).
CHUNK = 2000


# --- key terms: what embeddings miss ---------------------------------------------------
# Sentence embeddings see "The capital is Sydney." and "The capital is Canberra." as
# closer (0.88) than "Canberra" and "The capital of Australia is Canberra." (0.82): the
# template dominates, the fact is one word. So two answers that each state a number or
# a name the other lacks, or that differ in polarity (yes/no, not), are kept apart
# whatever their similarity. Spread errs towards splitting: an extra cluster costs a
# reviewer one click; a wrong answer hidden inside a right cluster costs much more.

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z][\w'-]*")
_NEGATIONS = {"no", "not", "never", "none", "nobody", "nothing", "neither", "nor", "cannot", "false", "incorrect"}
_STARTERS = {
    "the", "a", "an", "it", "it's", "its", "i", "i'm", "this", "that", "these", "those", "there", "here", "in",
    "on", "at", "of", "for", "and", "but", "or", "so", "yes", "no", "not", "my", "your", "we", "you", "he",
    "she", "they", "answer", "question", "sure", "well", "okay", "ok", "what", "which", "who", "when",
    "where", "why", "how", "is", "are", "was", "were", "if", "as", "to", "from", "by", "with", "also",
}


def key_terms(text: str, context: frozenset = frozenset()) -> tuple[frozenset, bool]:
    """(numbers and names, negative polarity) of an answer. Terms in `context` (the
    prompt's own numbers and names) are left out: they frame the answer, not state it."""
    terms = set()
    for number in _NUMBER.findall(text):
        try:
            terms.add(f"{float(number.replace(',', '')):g}")
        except ValueError:
            continue
    for word in _WORD.findall(text):
        if word[0].isupper() and word.lower() not in _STARTERS:
            terms.add(word.lower())
    words = {w.lower() for w in _WORD.findall(text)}
    negative = bool(words & _NEGATIONS) or "n't" in text.lower()
    return frozenset(terms) - context, negative


def _conflict(a: tuple[frozenset, bool], b: tuple[frozenset, bool]) -> bool:
    (terms_a, negative_a), (terms_b, negative_b) = a, b
    return negative_a != negative_b or bool(terms_a - terms_b and terms_b - terms_a)


def conflict_matrix(terms: list[tuple[frozenset, bool]]) -> np.ndarray:
    """_conflict() for every pair at once: term sets as rows of a 0/1 matrix, so the
    shared terms of all pairs are one matrix product."""
    vocabulary = {term: k for k, term in enumerate(set().union(*(t for t, _ in terms)))}
    incidence = np.zeros((len(terms), max(len(vocabulary), 1)), dtype=np.float32)
    for row, (words, _) in enumerate(terms):
        incidence[row, [vocabulary[w] for w in words]] = 1.0
    shared = incidence @ incidence.T
    has_own = incidence.sum(axis=1)[:, None] - shared > 0.5  # row i states a term column j lacks
    negative = np.array([n for _, n in terms])
    return (has_own & has_own.T) | (negative[:, None] != negative[None, :])


def cluster_vectors(vectors: np.ndarray, threshold: float, texts: list[str] | None = None,
                    context: str = "") -> np.ndarray:
    """Cluster labels for L2-normalised rows (average linkage, cosine similarity ≥ threshold).

    With `texts`, answers whose key terms conflict are never merged (see key_terms);
    `context` is the prompt, whose own terms do not count.
    """
    n = len(vectors)
    if n <= 1:
        return np.zeros(n, dtype=int)
    prompt_terms = key_terms(context)[0]
    terms = [key_terms(t, prompt_terms) for t in texts] if texts is not None else None
    if n <= CHUNK:
        return _agglomerate(vectors, threshold, terms)
    # Large: cluster the first chunk (the most frequent answers come first), then give
    # each later answer the nearest existing cluster when alike enough, and cluster the
    # rest among themselves.
    labels = np.full(n, -1)
    labels[:CHUNK] = _agglomerate(vectors[:CHUNK], threshold, terms[:CHUNK] if terms else None)
    for start in range(CHUNK, n, CHUNK):
        block = np.arange(start, min(start + CHUNK, n))
        centroids = _centroids(vectors, labels)
        similarity = vectors[block] @ centroids.T
        best = similarity.argmax(axis=1)
        close = similarity[np.arange(len(block)), best] >= threshold
        labels[block[close]] = best[close]
        rest = block[~close]
        if len(rest):
            rest_terms = [terms[i] for i in rest] if terms else None
            labels[rest] = _agglomerate(vectors[rest], threshold, rest_terms) + labels.max() + 1
    return labels


def _agglomerate(vectors: np.ndarray, threshold: float, terms=None) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if len(vectors) == 1:
        return np.zeros(1, dtype=int)
    distance = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    if terms is not None:
        distance[conflict_matrix(terms)] = 2.0
    model = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=1.0 - threshold,
    )
    return model.fit_predict(distance)


def _centroids(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = labels.max() + 1
    sums = np.zeros((k, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, labels[labels >= 0], vectors[labels >= 0])
    return sums / np.clip(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12, None)
