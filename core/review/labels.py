"""Labels: who said an answer is right or wrong, for single answers and whole meaning clusters.

One label per reviewer per answer, editable; every change is kept in `label_history`.
A cluster label gives each member the verdict, marked `via_cluster` (the cluster's
representative answer); a member labelled on its own afterwards is an override, and
a later cluster label leaves overrides alone.

Agreement between reviewers: percent agreement, Cohen's kappa (two reviewers,
scikit-learn) and Fleiss' kappa (more, statsmodels), over the answers every one of
them labelled.
"""

from __future__ import annotations

import json
import threading
import time
from cachetools import LRUCache
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from core.config import SpreadError, check_text
from core.prompts import shapes
from core.store import Store, hold, now_iso, runs, write
from core.store import labels as label_rows

VERDICTS = ("pass", "fail", "unsure")
MAX_TEXT = 20_000
LABEL_FIELDS = label_rows.FIELDS


@dataclass
class Label:
    verdict: str
    score: int | None = None
    tags: list[str] | None = None
    correction: str | None = None
    note: str | None = None
    # The tool calls the answer should have made ({name, arguments}): a tool-call answer's correction.
    correction_calls: list[dict] | None = None

    def validated(self) -> "Label":
        if self.verdict not in VERDICTS:
            raise SpreadError(f"verdict must be one of {', '.join(VERDICTS)} (got {self.verdict!r})", "verdict")
        if self.score is not None and (isinstance(self.score, bool) or self.score not in range(1, 6)):
            raise SpreadError(f"score must be a whole number 1..5 (got {self.score!r})", "score")
        tags = []
        for tag in self.tags or []:
            tag = " ".join(str(tag).split())
            if not tag:
                continue
            check_text(tag, "a tag", "tags")
            if len(tag) > 50:
                raise SpreadError(f"tag {tag[:20]!r}… is longer than 50 characters", "tags")
            if tag not in tags:
                tags.append(tag)
        for name in ("correction", "note"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, f"the {name}", name)
                if len(value) > MAX_TEXT:
                    raise SpreadError(f"{name} is longer than {MAX_TEXT:,} characters", name)
        calls = shapes.expected_calls(self.correction_calls, "the expected calls") if self.correction_calls else None
        return Label(self.verdict, self.score, tags, (self.correction or None), (self.note or None), calls)


def _check_reviewer(reviewer: str) -> str:
    reviewer = " ".join((reviewer or "").split())
    check_text(reviewer, "the reviewer name", "reviewer")
    if not reviewer:
        raise SpreadError("no reviewer: enter your name (or log in) before labelling", "reviewer")
    if len(reviewer) > 200:
        raise SpreadError("reviewer name is longer than 200 characters", "reviewer")
    return reviewer


def label(store: Store, response_id: int, reviewer: str, label: Label) -> None:
    """Label one answer. Replaces this reviewer's earlier label of it (an override when
    it came from a cluster); other reviewers' labels are never touched."""
    _write_labels(store, [response_id], _check_reviewer(reviewer), label.validated(), via_cluster=None,
                  keep_overrides=False)


def label_cluster(store: Store, member_ids: list[int], representative_id: int, reviewer: str, label: Label) -> int:
    """Label every member of a meaning cluster at once; returns how many labels were written.
    Members this reviewer labelled on their own keep that label."""
    if not member_ids:
        raise SpreadError("the cluster has no members")
    return _write_labels(store, member_ids, _check_reviewer(reviewer), label.validated(), via_cluster=representative_id,
                         keep_overrides=True)


def _write_labels(store: Store, response_ids, reviewer, label: Label, *, via_cluster, keep_overrides) -> int:
    now = now_iso()
    values = {"verdict": label.verdict, "score": label.score, "tags": json.dumps(label.tags),
              "correction": label.correction, "note": label.note, "via_cluster": via_cluster,
              "correction_calls": _calls_column(label.correction_calls)}
    with store.connection() as db:
        with write(db):  # read-then-write: take the write lock first
            hold(db, f"labels by {reviewer}")  # PostgreSQL: this reviewer's labels, one writer at a time
            known = label_rows.existing_answers(db, response_ids)
            missing = sorted(set(response_ids) - known)
            if missing:
                raise SpreadError(f"no answer with id {missing[0]}")
            if label.correction_calls:  # the calls must suit the tools every labelled answer was offered
                for tools in label_rows.tools_offered(db, response_ids):
                    shapes.checked_calls(label.correction_calls, tools)
            current = label_rows.by_reviewer(db, reviewer, response_ids)
            touched, changed = [], []  # answers whose label is new or changes; label ids to update
            for response_id in dict.fromkeys(response_ids):
                old = current.get(response_id)
                if old and keep_overrides and old["via_cluster"] is None:
                    continue  # an individual decision outranks a cluster label
                if old and all(old[k] == values[k] for k in LABEL_FIELDS):
                    continue
                touched.append(response_id)
                if old:
                    changed.append(old["id"])
            label_rows.write(db, reviewer, values, update_ids=changed,
                             insert_for=[rid for rid in touched if rid not in current], history_for=touched, now=now)
            written = len(touched)
    return written


def _calls_column(calls: list[dict] | None) -> str | None:
    return json.dumps(calls, ensure_ascii=False, sort_keys=True) if calls else None



def tools_for(store: Store, response_id: int) -> list[dict] | None:
    """The tools the wording of this answer declared (None without tools): what a correction's
    expected calls may name."""
    with store.connection() as db:
        offered = label_rows.tools_offered(db, [response_id])
    return offered[0] if offered else None



def labels_for(store: Store, response_ids: list[int], *, reviewer: str | None = None) -> list[dict]:
    """Every reviewer's current label of these answers (or only this reviewer's)."""
    with store.connection() as db:
        return label_rows.of_answers(db, response_ids, reviewer)


def labels_for_run(store: Store, run_id: int) -> list[dict]:
    with store.connection() as db:
        return label_rows.of_run(db, run_id)


def history(store: Store, response_id: int) -> list[dict]:
    with store.connection() as db:
        return label_rows.history(db, response_id)


def known_tags(store: Store) -> list[str]:
    """Tags already used, most used first: suggestions for the next label (as counted at
    most AGREEMENT_S seconds ago: reading them is a scan of every label)."""
    return _recently(store, "tags", None, lambda: _count_tags(store))[0]


def _count_tags(store: Store) -> list[str]:
    counts: dict[str, int] = {}
    with store.connection() as db:
        tag_lists = label_rows.tag_lists(db)
    for tags in tag_lists:
        for tag in tags:
            counts[tag] = counts.get(tag, 0) + 1
    return sorted(counts, key=lambda t: (-counts[t], t))



# --- agreement ------------------------------------------------------------------------

def verdict_table(labels: list[dict]) -> dict[int, dict[str, str]]:
    """response_id -> {reviewer: verdict}."""
    table: dict[int, dict[str, str]] = {}
    for row in labels:
        table.setdefault(row["response_id"], {})[row["reviewer"]] = row["verdict"]
    return table


def agreement(labels: list[dict], *, pairs: bool = True) -> dict:
    """Agreement over the answers that every reviewer labelled.

    percent: share of those answers on which all reviewers gave the same verdict.
    kappa: Cohen's (two reviewers) or Fleiss' (three or more): agreement beyond chance.
    pairs: also each pair of reviewers (190 pairs for twenty reviewers: left out where not shown).
    """
    table = verdict_table(labels)
    reviewers = sorted({r for verdicts in table.values() for r in verdicts})
    common = [rid for rid, verdicts in table.items() if len(verdicts) == len(reviewers)]
    result = {"reviewers": reviewers, "answers": len(common), "percent": None, "kappa": None,
              "kappa_kind": None, "pairs": []}
    if len(reviewers) < 2 or not common:
        return result
    rows = [[table[rid][r] for r in reviewers] for rid in common]
    result["percent"] = round(sum(len(set(row)) == 1 for row in rows) / len(rows), 4)
    if len(reviewers) == 2:
        result["kappa"], result["kappa_kind"] = _cohen([r[0] for r in rows], [r[1] for r in rows]), "cohen"
    else:
        counts = np.array([[row.count(v) for v in VERDICTS] for row in rows])
        result["kappa"], result["kappa_kind"] = _fleiss(counts), "fleiss"
    for a, b in combinations(reviewers, 2) if pairs else ():  # every pair, over the answers both labelled
        shared = [rid for rid, v in table.items() if a in v and b in v]
        if shared:
            first, second = [table[r][a] for r in shared], [table[r][b] for r in shared]
            result["pairs"].append({
                "reviewers": [a, b], "answers": len(shared),
                "percent": round(sum(x == y for x, y in zip(first, second)) / len(shared), 4),
                "kappa": _cohen(first, second)})
    return result


def _fleiss(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of an answers × verdicts table of counts (statsmodels)."""
    from statsmodels.stats.inter_rater import fleiss_kappa

    return _finite(fleiss_kappa(counts, method="fleiss"))


def _cohen(first: list[str], second: list[str]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if len(set(first) | set(second)) == 1:
        return 1.0  # both gave one and the same verdict everywhere: chance agreement is 1 too
    return _finite(cohen_kappa_score(first, second, labels=list(VERDICTS)))


def _finite(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, 4)


# What all reviewers' labels add up to (the disputes, the agreement, the tags in use) is
# counted again at most this often per run and server: with twenty reviewers pressing Pass,
# every rerun of the Review page would otherwise recount every label of the run
# (0.3 s at 80,000 labels on PostgreSQL; bench/bench_team.py). A reviewer's own labels
# are always read fresh.
AGREEMENT_S = 5.0
DISAGREEMENTS_LISTED = 200
_COUNTED = LRUCache(maxsize=256)  # (what, database, run) -> (result, when counted)
_COUNTED_LOCK = threading.Lock()  # cachetools' caches are not thread-safe; sessions are threads


def _recently(store: Store, what: str, run_id: int | None, count):
    """count(), or what it gave less than AGREEMENT_S seconds ago: (result, when counted)."""
    key = (what, str(store.target), run_id)
    with _COUNTED_LOCK:
        found = _COUNTED.get(key)
    if found is None or time.time() - found[1] > AGREEMENT_S:
        found = (count(), time.time())
        with _COUNTED_LOCK:
            _COUNTED[key] = found
    return found


def recent_agreement(store: Store, run_id: int) -> dict:
    """run_agreement() as counted at most AGREEMENT_S seconds ago ("as_of": when, epoch seconds)."""
    result, when = _recently(store, "agreement", run_id,
                             lambda: run_agreement(store, run_id, listed=DISAGREEMENTS_LISTED))
    return result | {"as_of": when}


def recent_disputes(store: Store, run_id: int) -> set[int]:
    """disputed_ids() as counted at most AGREEMENT_S seconds ago."""
    return _recently(store, "disputes", run_id, lambda: disputed_ids(store, run_id))[0]


def run_agreement(store: Store, run_id: int, *, listed: int | None = None) -> dict:
    """agreement() of a run's labels (without pairs) and its disagreements (the first `listed`
    answers, if given; "disputed" counts them all), counted by the database: twenty
    reviewers' labels of a 10,000-answer run are a handful of rows of verdict counts, not
    200,000 labels to read."""
    disputed = sorted(disputed_ids(store, run_id))
    with store.connection() as db:
        counted = _counted_agreement(db, label_rows.of_a_run(run_id))
    return counted | {"disputed": len(disputed), "disagreements": disagreements(
        labels_for(store, disputed[:listed] if listed is not None else disputed))}


def agreement_of(store: Store, response_ids: list[int]) -> dict:
    """agreement() (without pairs) of these answers' labels, a meaning cluster's say, counted by
    the database as run_agreement() is."""
    if len(response_ids) > 30_000:  # past what one statement may bind on SQLite
        return agreement(labels_for(store, response_ids), pairs=False)
    with store.connection() as db:
        return _counted_agreement(db, label_rows.of_these_answers(response_ids))


def _counted_agreement(db, scope: label_rows.Scope) -> dict:
    """agreement(labels, pairs=False) of the labels `scope` selects, from counts."""
    result = {"answers": 0, "percent": None, "kappa": None, "kappa_kind": None, "pairs": []}
    reviewers = result["reviewers"] = label_rows.reviewers_of(db, scope)
    if len(reviewers) < 2:
        return result
    # Per answer every reviewer labelled: how many gave each verdict; then how many answers
    # share each such row (Fleiss' kappa and the percent need nothing else).
    counts = label_rows.verdict_count_rows(db, scope, VERDICTS, len(reviewers))
    table = np.array([row[:3] for row in counts], dtype=int).reshape(-1, 3)
    answers = np.array([row[3] for row in counts], dtype=int)
    if not answers.sum():
        return result
    result["answers"] = int(answers.sum())
    result["percent"] = round(float(answers[table.max(axis=1) == len(reviewers)].sum() / answers.sum()), 4)
    if len(reviewers) == 2:  # Cohen's kappa needs who gave which: the two reviewers' verdict pairs
        pairs = label_rows.verdict_pairs(db, scope, reviewers[0], reviewers[1])
        first = [a for a, _, n in pairs for _ in range(n)]
        second = [b for _, b, n in pairs for _ in range(n)]
        result["kappa"], result["kappa_kind"] = _cohen(first, second), "cohen"
    else:
        result["kappa"], result["kappa_kind"] = _fleiss(np.repeat(table, answers, axis=0)), "fleiss"
    return result


def disagreements(labels: list[dict]) -> list[dict]:
    """Answers on which reviewers gave different verdicts."""
    return [{"response_id": rid, "verdicts": verdicts}
            for rid, verdicts in verdict_table(labels).items() if len(set(verdicts.values())) > 1]


def majority(labels: list[dict]) -> dict[int, str]:
    """response_id -> the verdict most reviewers gave ("unsure" on a tie)."""
    out = {}
    for rid, verdicts in verdict_table(labels).items():
        values = list(verdicts.values())
        top = max(VERDICTS, key=values.count)
        tied = [v for v in VERDICTS if values.count(v) == values.count(top)]
        out[rid] = top if len(tied) == 1 else "unsure"
    return out


# --- the review queue -----------------------------------------------------------------

def queue(store: Store, run_ids: list[int], reviewer: str, *, method: str | None = None,
          threshold: float | None = None, models: list[str] | None = None, temperatures: list[float] | None = None,
          variants: list[int] | None = None, inputs: list[int] | None = None, unlabelled_only: bool = False,
          disagreements_only: bool = False) -> dict:
    """What a reviewer has to look at: meaning clusters largest first, then single answers.

    Returns {"items": [...], "total": answers in scope, "labelled": of those, by this reviewer}.
    Each item: kind ("cluster" or "answer"), run_id, input and the wordings its members
    answered, the prompt as sent (rendered for the representative's wording and input),
    system, representative text and id, member_ids, and this reviewer's verdicts.
    """
    from core.analyse import spread

    items, total, labelled = [], 0, 0
    for run_id in run_ids:
        with store.connection() as db:
            if runs.get_run(db, run_id) is None:
                raise SpreadError(f"no run with id {run_id}")
        analysis = _analysis(store, run_id, method, threshold or spread.DEFAULT_THRESHOLD)
        scope = (tuple(models or ()), tuple(float(t) for t in temperatures or ()), tuple(variants or ()),
                 tuple(inputs or ()))
        # What a label cannot change (members, representative, prompt), worked out once per
        # analysis and scope; a rerun only reads this reviewer's labels and the disputes.
        clusters, in_scope = analysis.once(("review queue", scope),
                                           lambda: _clusters_in_scope(store, analysis, run_id, scope))
        mine = my_labels(store, run_id, reviewer)
        disputed = recent_disputes(store, run_id)
        total += len(in_scope)
        labelled += sum(rid in in_scope for rid in mine)
        for cluster in clusters:
            member_ids = cluster["member_ids"]
            verdicts = {m: mine[m][0] for m in member_ids if m in mine}
            if unlabelled_only and len(verdicts) == len(member_ids):
                continue
            in_dispute = disputed.intersection(member_ids)
            if disagreements_only and not in_dispute:
                continue
            cluster_verdicts = {mine[m][0] for m in verdicts if mine[m][1]}
            items.append(cluster | {
                "verdicts": verdicts,
                "overrides": [m for m in verdicts if mine[m][1] is None and cluster_verdicts
                              and verdicts[m] not in cluster_verdicts],
                "disputed": sorted(in_dispute),
            })
    # Clusters first (largest first), then single answers, keeping run order.
    items.sort(key=lambda item: (item["kind"] != "cluster", -item["size"]))
    return {"items": items, "total": total, "labelled": labelled}


def my_labels(store: Store, run_id: int, reviewer: str) -> dict[int, tuple[str, int | None]]:
    """response_id -> (verdict, via_cluster) of this reviewer's labels in a run."""
    with store.connection() as db:
        return label_rows.verdicts_of_run(db, run_id, reviewer)


def disputed_ids(store: Store, run_id: int) -> set[int]:
    """The answers of a run that reviewers gave different verdicts."""
    with store.connection() as db:
        return label_rows.disputed(db, run_id)


def _clusters_in_scope(store: Store, analysis, run_id: int, scope: tuple) -> tuple[list[dict], set[int]]:
    """The queue's items of one run without anybody's labels, and the answer ids in scope."""
    from core.prompts import inputs as inputs_module

    with store.connection() as db:
        run = runs.get_run(db, run_id)
        prompts = runs.rendered_prompts(db, run_id)
        labels_of = {v["variant"]: v["label"] for v in runs.run_variants(db, run_id)}
        input_names = {i["input"]: inputs_module.label(i["input"], i["vars"]) for i in runs.run_inputs(db, run_id)}
    models, temperatures, variants, inputs = scope
    answers = analysis.answers
    for column, chosen in (("model", models), ("temperature", temperatures), ("variant", variants),
                           ("input", inputs)):
        if chosen:
            answers = answers[answers[column].isin(chosen)]
    ids, shown = answers["id"].astype(int).tolist(), answers["shown"].tolist()
    variant_of, input_of = answers["variant"].astype(int).tolist(), answers["input"].astype(int).tolist()
    row_of = {rid: k for k, rid in enumerate(ids)}
    items = []
    for cluster_id, rows in sorted(answers.groupby("cluster", sort=True).indices.items()):
        member_ids = [ids[k] for k in rows]
        cluster = analysis.clusters[int(cluster_id)]
        representative_id = cluster.representative_id if cluster.representative_id in row_of else member_ids[0]
        at = row_of[representative_id]
        system, prompt = prompts.get((variant_of[at], input_of[at]),
                                     (run["spec"].get("system") or "", run["spec"]["prompt"]))
        items.append({
            "kind": "cluster" if len(member_ids) > 1 else "answer",
            "meaning_kind": cluster.kind,  # a refusal or a non-answer, said so in the queue
            "run_id": run_id, "cluster": int(cluster_id), "size": len(member_ids),
            "input": input_of[at], "input_name": input_names.get(input_of[at], ""),
            "wordings": [labels_of.get(v, str(v)) for v in sorted({variant_of[k] for k in rows})],
            "prompt": prompt, "system": system,
            "representative_id": representative_id,
            "representative": shown[at],  # text, then its tool calls as lines
            "member_ids": member_ids,
        })
    return items, set(ids)


# The review queue's meaning clusters, per run and settings, while the run's answers and
# merge/split decisions stay as they are: a label changes no cluster, so pressing Pass must
# not cluster 10,000 answers again (every reviewer's rerun did; bench/bench_team.py).
_ANALYSES = LRUCache(maxsize=8)
_CLUSTERING = threading.Lock()


def _analysis(store: Store, run_id: int, method: str | None, threshold: float):
    from core.analyse import spread

    with store.connection() as db:
        answers, decided = label_rows.counts_for_cache(db, run_id)
    key = (str(store.target), run_id, method, threshold, answers, decided)
    with _CLUSTERING:  # sessions are threads: one clusters, the others wait for its result
        found = _ANALYSES.get(key)
        if found is None:
            found = _ANALYSES[key] = spread.analyse_run(store, run_id, method=method, threshold=threshold,
                                                        with_map=False)
    return found


def members(store: Store, member_ids: list[int], reviewer: str) -> list[dict]:
    """A cluster's answers with this reviewer's verdict and whether it overrides the cluster label."""
    with store.connection() as db:
        texts = {i: shapes.readable(text, shapes.tool_calls_of(calls))
                 for i, text, calls in label_rows.answer_texts(db, member_ids)}
    mine = {r["response_id"]: r for r in labels_for(store, member_ids, reviewer=reviewer)}
    cluster_verdicts = {r["verdict"] for r in mine.values() if r["via_cluster"] is not None}
    return [{"id": m, "text": texts.get(m, ""), "verdict": mine[m]["verdict"] if m in mine else None,
             "override": m in mine and mine[m]["via_cluster"] is None and bool(cluster_verdicts)
             and mine[m]["verdict"] not in cluster_verdicts}
            for m in member_ids]
