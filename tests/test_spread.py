"""Meaning clusters and the numbers per cell, on hand-made answers with known answers."""

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from core.config import SpreadError
from core.store import Store, responses, runs
from core.analyse import charts, embed, meaning, spread

# Same meaning in different words; different meanings in similar words.
PARAPHRASES = [
    ["Paris", "The capital of France is Paris.", "It's Paris!", "paris, france", "Paris is the French capital."],
    ["Lyon", "The capital is Lyon.", "I think it's Lyon"],
    ["I don't know.", "I am not sure.", "No idea, sorry."],
    ["The Eiffel Tower is in Paris.", "You can find the Eiffel tower in Paris"],
]
SIMILAR_WORDS = [
    ["The capital of Australia is Canberra.", "Canberra", "It's Canberra."],
    ["The capital of Australia is Sydney.", "Sydney"],
    ["The moon landing was in 1969.", "It happened in 1969"],
    ["The moon landing was in 1972."],
    ["Yes, Paris is the capital of France.", "Yes."],
    ["No, Paris is not the capital of France.", "No."],
]


def rows_for(groups, model="m", temperature=1.0, start_id=1):
    rows, labels = [], []
    for label, group in enumerate(groups):
        for text in group:
            i = start_id + len(rows)
            rows.append({"id": i, "run_id": 1, "model": model, "temperature": temperature, "sample_idx": i,
                         "text": text, "finish_reason": "stop", "prompt_tokens": 5,
                         "completion_tokens": len(text.split()), "cost_usd": 0.001, "latency_ms": 100.0 + i,
                         "ttft_ms": 10.0, "attempts": 1, "error_type": None})
            labels.append(label)
    return rows, labels


def predicted(analysis, rows):
    by_id = dict(zip(analysis.answers["id"], analysis.answers["cluster"]))
    return [by_id[r["id"]] for r in rows]


@pytest.mark.parametrize("groups,prompt", [
    (PARAPHRASES, "What is the capital of France?"),
    (SIMILAR_WORDS, "Answer these questions."),
], ids=["paraphrases", "similar-words"])
def test_meaning_clusters_agree_with_the_hand_made_grouping(groups, prompt):
    rows, labels = rows_for(groups)
    analysis = spread.analyse(rows, method="minilm", threshold=spread.DEFAULT_THRESHOLD, context=prompt)
    assert adjusted_rand_score(labels, predicted(analysis, rows)) >= 0.75


def test_the_lexical_fallback_is_blind_to_paraphrase_but_catches_rewording():
    # The facts (names, kinds) settle these paraphrases for both methods now; where no
    # fact decides, the model still sees synonyms the character n-grams cannot.
    rows, labels = rows_for(PARAPHRASES)
    prompt = "What is the capital of France?"
    lexical = adjusted_rand_score(labels, predicted(spread.analyse(rows, method="tfidf", context=prompt), rows))
    meaning = adjusted_rand_score(labels, predicted(spread.analyse(rows, method="minilm", context=prompt), rows))
    assert meaning >= lexical
    synonyms = [["It expands.", "It gets bigger.", "It becomes larger."], ["It contracts.", "It shrinks."]]
    rows, labels = rows_for(synonyms)
    prompt = "Does water expand or contract when it freezes?"
    lexical = adjusted_rand_score(labels, predicted(spread.analyse(rows, method="tfidf", context=prompt), rows))
    meaning = adjusted_rand_score(labels, predicted(spread.analyse(rows, method="minilm", context=prompt), rows))
    assert meaning > lexical
    exact_rows, _ = rows_for([["Paris.", "paris", "  PARIS!  "], ["Lyon"]])
    exact = spread.analyse(exact_rows, method="exact")
    assert len(exact.clusters) == 2 and exact.clusters[0].size == 3


def test_normalisation_ignores_case_space_and_trailing_punctuation():
    assert embed.normalise("  The  Capital\nis PARIS!!  ") == "the capital is paris"
    assert embed.normalise("Paris?") == embed.normalise("paris")


def test_a_looser_threshold_merges_clusters():
    # Answers no fact decides (no numbers, names, yes/no): the threshold does.
    rows, _ = rows_for([["It expands.", "It gets bigger.", "It takes up more space as ice."],
                        ["It contracts.", "It shrinks."]])
    tight = spread.analyse(rows, method="minilm", threshold=0.95)
    loose = spread.analyse(rows, method="minilm", threshold=0.2)
    assert len(tight.clusters) > len(loose.clusters)


def test_clusters_have_sizes_members_and_a_medoid_representative():
    rows, _ = rows_for([["Paris"] * 3 + ["The capital of France is Paris.", "Paris, France"], ["Lyon", "Lyon."]])
    analysis = spread.analyse(rows, method="exact")
    top = analysis.clusters[0]
    assert top.size == 3 and top.representative == "Paris" and len(top.member_ids) == 3
    assert sum(c.size for c in analysis.clusters) == len(rows)
    (cell,) = analysis.cells
    assert cell["n_clusters"] == 4 and cell["distinct_answers"] == 4
    assert [c["size"] for c in cell["clusters"]] == [3, 2, 1, 1]
    assert set(cell["clusters"][0]["member_ids"]) == set(top.member_ids)


def test_cell_metrics_on_a_small_exact_example():
    rows, _ = rows_for([["yes"] * 6, ["no"] * 3, ["maybe"]])
    rows.append({"id": 99, "run_id": 1, "model": "m", "temperature": 1.0, "sample_idx": 99,
                 "error_type": "timeout", "error_message": "slow"})
    rows[0]["finish_reason"] = "length"
    (cell,) = spread.analyse(rows, method="exact").cells
    assert cell["count"] == 10 and cell["errors"] == 1 and cell["error_types"] == {"timeout": 1}
    assert cell["consistency"] == 0.6
    low, high = spread.wilson(6, 10)
    assert (cell["consistency_low"], cell["consistency_high"]) == (round(low, 4), round(high, 4))
    assert 0.31 < low < 0.32 and 0.83 < high < 0.84  # Wilson 95% for 6/10
    expected_entropy = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))
    assert cell["entropy"] == pytest.approx(expected_entropy, abs=1e-4)
    # exact vectors: similarity 1 within a group, 0 across; pairs alike = C(6,2)+C(3,2) of C(10,2)
    assert cell["mean_similarity"] == pytest.approx((15 + 3) / 45, abs=1e-4)
    assert cell["cut_by_max_tokens"] == 1 and cell["cut_share"] == 0.1
    assert cell["cost_usd"] == pytest.approx(0.01) and cell["cost_per_call_mean"] == pytest.approx(0.001)
    assert cell["length_min"] == cell["length_max"] == 1


def test_unknown_cost_makes_the_total_unknown_not_zero():
    rows, _ = rows_for([["a", "b"]])
    rows[1]["cost_usd"] = None
    (cell,) = spread.analyse(rows, method="exact").cells
    assert cell["cost_usd"] is None


def test_metrics_per_model_and_per_temperature():
    hot, _ = rows_for([["a", "b", "c"]], model="m1", temperature=1.0)
    cold, _ = rows_for([["a", "a", "a"]], model="m1", temperature=0.0, start_id=10)
    other, _ = rows_for([["a", "a", "b"]], model="m2", temperature=0.0, start_id=20)
    analysis = spread.analyse(hot + cold + other, method="exact")
    assert [(c["model"], c["temperature"], c["consistency"]) for c in analysis.cells] == [
        ("m1", 0.0, 1.0), ("m1", 1.0, round(1 / 3, 4)), ("m2", 0.0, round(2 / 3, 4))]
    assert {m["model"]: m["count"] for m in analysis.by_model} == {"m1": 6, "m2": 3}
    assert {t["temperature"]: t["n_clusters"] for t in analysis.by_temperature} == {0.0: 2, 1.0: 3}


def test_a_cell_whose_two_meanings_tie_shows_the_one_larger_over_its_input_as_top():
    # Over the input "Lyon" is the larger meaning (5 answers to 2): cluster 0. In m1's cell
    # both meanings have 2 answers; its top is the input's larger meaning, as on every page.
    tied, _ = rows_for([["Paris", "Paris"], ["Lyon", "Lyon"]], model="m1")
    other, _ = rows_for([["Lyon"] * 3], model="m2", start_id=10)
    analysis = spread.analyse(tied + other, method="exact")
    cell = next(c for c in analysis.cells if c["model"] == "m1")
    assert cell["consistency"] == 0.5 and cell["top_answer"] == "Lyon" and cell["top_cluster"] == 0
    assert [c["representative"] for c in cell["clusters"]] == ["Lyon", "Paris"]


def test_share_difference_interval_knows_noise_from_a_shift():
    diff, low, high = spread.share_difference(6, 10, 5, 10)
    assert diff == pytest.approx(0.1) and low < 0 < high  # noise at n=10
    diff, low, high = spread.share_difference(180, 200, 60, 200)
    assert low > 0.5  # a real shift


def test_mean_pairwise_similarity_weights_repeated_answers():
    v = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert spread.mean_pairwise_similarity(v, np.array([2, 1])) == pytest.approx(1 / 3, abs=1e-4)
    assert spread.mean_pairwise_similarity(v, np.array([3, 0])) == pytest.approx(1.0)


def test_large_inputs_are_clustered_in_chunks_with_every_answer_labelled(monkeypatch):
    monkeypatch.setattr(meaning, "CHUNK", 10)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    vectors = np.repeat(centres, 8, axis=0) + rng.normal(scale=0.05, size=(32, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    order = rng.permutation(32)
    labels = meaning.cluster_vectors(vectors[order].astype(np.float32), threshold=0.8)
    assert (labels >= 0).all()
    assert adjusted_rand_score(np.repeat(np.arange(4), 8)[order], labels) == pytest.approx(1.0)


def test_embeddings_are_cached_in_the_database(store, monkeypatch):
    calls = []
    real = embed.embed

    def counting(texts, method, store=None):
        calls.append(len(texts))
        return real(texts, method, store)

    monkeypatch.setattr(embed, "embed", counting)
    first = embed.cached(store, ["Paris", "Lyon", "paris!"], "minilm")
    again = embed.cached(store, ["Lyon", "PARIS", "Marseille"], "minilm")
    assert calls == [2, 1]  # "paris!" and "PARIS" normalise to the cached "paris"
    assert np.allclose(first[0], again[1])
    with store.connection() as db:
        assert db["embeddings"].count == 3


def test_word_diff():
    assert spread.word_diff("the capital is Paris", "the capital is Lyon") == [
        ("=", "the capital is"), ("-", "Paris"), ("+", "Lyon")]


def test_chart_builders_return_the_expected_traces():
    rows, _ = rows_for(PARAPHRASES, model="a")
    more, _ = rows_for(PARAPHRASES[:2], model="b", temperature=0.0, start_id=100)
    analysis = spread.analyse(rows + more, method="minilm")
    heat = charts.heatmap(analysis.cells, "consistency")
    assert heat.data[0].type == "heatmap"
    assert list(heat.data[0].y) == ["a", "b"] and list(heat.data[0].x) == ["T=0", "T=1"]
    bars = charts.cluster_bars(analysis.cells[0])
    assert bars.data[0].type == "bar" and list(bars.data[0].x) == [c["size"] for c in analysis.cells[0]["clusters"]]
    scatter = charts.answer_map(analysis.coords)
    assert {t.type for t in scatter.data} == {"scatter"} and sum(len(t.x) for t in scatter.data) == len(rows + more)
    assert charts.length_distributions(analysis.answers).data[0].type == "box"
    assert charts.latency_distributions(analysis.answers).data[0].type == "box"
    assert charts.cost_distributions(analysis.answers).data[0].type == "box"
    assert len(charts.cost_vs_consistency(analysis.cells).data) == 2


def test_hover_text_from_model_output_is_escaped():
    rows, _ = rows_for([['<a href="javascript:alert(1)">click</a> <img src=x onerror=alert(1)>']])
    analysis = spread.analyse(rows, method="exact")
    hover = charts.heatmap(analysis.cells).data[0].text[0][0]
    assert "<a " not in hover and "<img" not in hover and "&lt;img" in hover
    bar_hover = charts.cluster_bars(analysis.cells[0]).data[0].hovertext[0]
    assert "<img" not in bar_hover


def test_inert_text_has_no_markup_left():
    from core import display

    text = display.inert("![x](http://evil.example/a.png) <b>hi</b> $x$ :red[no] [a](javascript:1)")
    assert "![" not in text and "](" not in text and "<b>" not in text
    assert text.startswith("\\!\\[x\\]\\(http\\:\u2060\\/\\/evil\\.example")
    assert display.inert("a" * 10, 4) == "aaaa…"
    # Bare URLs, www. names and e-mail addresses are autolinked by markdown even when escaped:
    # a word joiner breaks each pattern.
    for linkable in ["http://127.0.0.1:9/x%22%3Elink", "HTTPS://a.b", "www.example.com", "me@example.com"]:
        shown = display.inert(f"see {linkable} now")
        assert "\u2060" in shown and shown.replace("\u2060", "").replace("\\", "") == f"see {linkable} now"


def test_the_answer_map_samples_large_runs():
    import pandas as pd

    coords = pd.DataFrame({"id": range(50), "model": "m", "temperature": 1.0, "text": [f"t{i % 7}" for i in range(50)],
                           "cluster": 0, "x": range(50), "y": range(50)})
    figure = charts.answer_map(coords, max_points=20)
    assert sum(len(t.x) for t in figure.data) == 20 and "20 of 50 shown" in figure.layout.title.text
    assert sum(len(t.x) for t in charts.answer_map(coords).data) == 50


def test_remote_latency_timed_beside_the_embedded_model_is_flagged():
    from core.analyse import tables

    rows = [{"id": k, "run_id": 1, "variant": 0, "input": 0, "model": model, "temperature": 1.0, "sample_idx": k,
             "text": "Paris", "latency_ms": 50.0 + k, "error_type": None} for k, model in
            enumerate(["openai/remote", "local/gemma-3-270m", "openai/remote"])]
    mixed = spread.cell_table(rows, {"models": ["openai/remote", "local/gemma-3-270m"]})
    flagged = {c["model"]: c["latency_under_local_load"] for c in mixed}
    assert flagged == {"openai/remote": True, "local/gemma-3-270m": False}
    assert tables.cell_rows(mixed)["latency p50 (ms)"].tolist()[1].endswith("(local load)")
    remote_only = spread.cell_table([r for r in rows if r["model"] == "openai/remote"], {"models": ["openai/remote"]})
    assert not remote_only[0]["latency_under_local_load"]


def _partition(labels) -> set[frozenset]:
    groups: dict = {}
    for row, label in enumerate(labels):
        groups.setdefault(label, set()).add(row)
    return {frozenset(g) for g in groups.values()}


def test_a_cut_of_the_tree_gives_the_clusters_of_average_linkage_at_that_threshold(store):
    # The reference: scikit-learn's agglomerative clustering, run afresh at each threshold.
    from sklearn.cluster import AgglomerativeClustering

    rng = np.random.default_rng(3)
    texts = [t for group in SIMILAR_WORDS + PARAPHRASES for t in group]
    cases = [(embed.embed(texts, "tfidf"), texts)]
    for n in (2, 7, 40, 90):
        centres = rng.normal(size=(5, 12))
        vectors = centres[rng.integers(0, 5, n)] + rng.normal(scale=0.8, size=(n, 12))
        cases.append(((vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), None))
    compared = 0
    for vectors, case_texts in cases:
        clustering = meaning.Clustering(vectors, case_texts, "Answer these questions.")
        similarity = meaning.similarity_matrix(vectors, clustering.found)[0]
        for threshold in (0.3, 0.5, 0.65, 0.7, 0.8, 0.9, 0.97):
            reference = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                                distance_threshold=1.0 - threshold).fit_predict(1.0 - similarity)
            assert _partition(clustering.labels(threshold)) == _partition(reference), (len(vectors), threshold)
            compared += len(set(reference)) > 1
    assert compared > 10  # the cases do split at some thresholds


def test_a_new_threshold_reuses_the_prepared_run_and_a_new_answer_prepares_it_again(store, monkeypatch):
    spec = {"prompt": "Answer these questions.", "system": "", "name": "q", "models": ["m"], "temperatures": [1.0]}
    texts = [t for group in SIMILAR_WORDS for t in group] + [  # and some no fact decides
        "the weather is nice today", "today the weather is nice and warm", "warm weather today",
        "green apples taste sour", "sour green apples taste good", "apples are green"]
    with store.connection() as db:
        run_id = runs.create_run(db, spec=spec | {"n": len(texts)}, planned=len(texts))
        for i, text in enumerate(texts):
            responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": i,
                                     "text": text, "attempts": 1})
    reads = []
    read_all = meaning.read_all
    monkeypatch.setattr(meaning, "read_all", lambda *a, **k: reads.append(1) or read_all(*a, **k))
    cuts = {threshold: spread.analyse_run(store, run_id, method="tfidf", threshold=threshold, with_map=False)
            for threshold in (0.7, 0.2, 0.95, 0.4)}
    assert len(reads) == 1  # one input: its facts read and its tree built once for four thresholds
    for threshold, cut in cuts.items():
        with store.connection() as db:
            fresh = spread.analyse(responses.of_run(db, run_id), method="tfidf", threshold=threshold,
                                   context="Answer these questions.\n" + "Answer these questions.", with_map=False)
        assert _partition(cut.answers.sort_values("id")["cluster"]) == _partition(fresh.answers.sort_values("id")["cluster"])
        # clusters kept from an earlier threshold (by their members) are the ones this cut makes
        assert [(c.id, c.size, c.representative, c.member_ids) for c in cut.clusters] == [
            (c.id, c.size, c.representative, c.member_ids) for c in fresh.clusters]
    assert len({len(cut.clusters) for cut in cuts.values()}) > 1  # the thresholds do cut differently
    # A threshold that cuts the same clusters as one analysed before shares its analysis.
    near = spread.analyse_run(store, run_id, method="tfidf", threshold=0.701, with_map=False)
    same = _partition(near.answers.sort_values("id")["cluster"]) == _partition(cuts[0.7].answers.sort_values("id")["cluster"])
    assert same and near.clusters is cuts[0.7].clusters and near.threshold == 0.701 and cuts[0.7].threshold == 0.7
    assert cuts[0.2].clusters is not cuts[0.95].clusters
    reads.clear()
    with store.connection() as db:
        responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": 99,
                                 "text": "Perth", "attempts": 1})
    grown = spread.analyse_run(store, run_id, method="tfidf", threshold=0.7, with_map=False)
    assert len(reads) == 1 and len(grown.answers) == len(texts) + 1


def _finished_run(store, texts, name="q"):
    spec = {"prompt": "Answer these questions.", "system": "", "name": name, "models": ["m"], "temperatures": [1.0]}
    with store.connection() as db:
        run_id = runs.create_run(db, spec=spec | {"n": len(texts)}, planned=len(texts))
        for i, text in enumerate(texts):
            responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": i,
                                     "text": text, "attempts": 1})
        runs.set_run_status(db, run_id, "done")
    return run_id


def test_a_server_prepares_the_newest_finished_runs_so_their_first_open_clusters_nothing(store, monkeypatch):
    texts = [t for group in SIMILAR_WORDS for t in group]
    older, newer = _finished_run(store, texts), _finished_run(store, texts[::-1])
    with store.connection() as db:
        live = runs.create_run(db, spec={"prompt": "p", "system": "", "name": "live", "models": ["m"],
                                         "temperatures": [1.0], "n": 1}, planned=1)
    monkeypatch.setattr(embed, "default_method", lambda: "tfidf")
    assert spread.prepare_ahead(store, runs_ahead=2) == [newer, older]  # newest first; a live run waits its end
    assert spread.prepare_ahead(store, runs_ahead=2) == []  # prepared runs cost a count each
    monkeypatch.setattr(meaning, "read_all", lambda *a, **k: pytest.fail("the first open read facts again"))
    monkeypatch.setattr(spread, "prepare", lambda *a, **k: pytest.fail("the first open prepared the run again"))
    opened = spread.analyse_run(store, newer, method="tfidf", threshold=spread.DEFAULT_THRESHOLD)
    assert len(opened.answers) == len(texts) and live not in (older, newer)


def test_a_run_whose_analysis_fails_is_said_once_and_tried_again_only_when_its_answers_change(store, monkeypatch):
    broken, fine = _finished_run(store, ["Paris", "Lyon"], name="broken"), _finished_run(store, ["Rome", "Milan"])
    monkeypatch.setattr(embed, "default_method", lambda: "tfidf")
    prepare, tried = spread.prepare, []

    def failing(rows, **kwargs):
        tried.append(rows[0]["run_id"])
        if rows[0]["run_id"] == broken:
            raise ValueError("no vectors")
        return prepare(rows, **kwargs)

    monkeypatch.setattr(spread, "prepare", failing)
    with pytest.raises(SpreadError, match=f"run {broken}: no vectors"):
        spread.prepare_ahead(store, runs_ahead=2)
    assert tried == [fine, broken]  # the failing run did not keep the other one from being prepared
    assert spread.prepare_ahead(store, runs_ahead=2) == [] and tried == [fine, broken]  # not again at each poll
    with store.connection() as db:
        responses.save_response(db, {"run_id": broken, "model": "m", "temperature": 1.0, "sample_idx": 9,
                                     "text": "Nice", "attempts": 1})
    with pytest.raises(SpreadError):
        spread.prepare_ahead(store, runs_ahead=2)
    assert tried == [fine, broken, broken]  # new answers: worth another try


def test_a_run_being_prepared_does_not_hold_up_the_open_of_a_prepared_one(store, monkeypatch):
    import threading

    slow, ready = _finished_run(store, ["Paris", "Lyon"]), _finished_run(store, ["Rome", "Milan"])
    spread.analyse_run(store, ready, method="tfidf")
    started, release = threading.Event(), threading.Event()
    prepare = spread.prepare

    def held(rows, **kwargs):
        if rows and rows[0]["run_id"] == slow:
            started.set()
            assert release.wait(30)
        return prepare(rows, **kwargs)

    monkeypatch.setattr(spread, "prepare", held)
    preparing = threading.Thread(target=spread.analyse_run, args=(store, slow), kwargs={"method": "tfidf"})
    preparing.start()
    try:
        assert started.wait(30)
        opened = []
        other = threading.Thread(target=lambda: opened.append(spread.analyse_run(store, ready, method="tfidf")))
        other.start()
        other.join(10)
        assert opened and len(opened[0].answers) == 2  # read while the other run is still being prepared
    finally:
        release.set()
        preparing.join(30)
