"""The deploy recipe's topology (compose.yaml) on loopback: two `streamlit run app.py`
processes against one database, each driven in its own headless Chromium tab, as two
reviewers behind a proxy that pinned them to different servers."""

import re
import time

import pytest
from playwright.sync_api import expect

from core.store import Store
from core.review import labels
from test_browser import CHROMIUM, fill_each, goto, page, pytestmark as browser_marks, streamlit_server  # noqa: F401

pytestmark = [*browser_marks, pytest.mark.postgres]


@pytest.fixture
def two_servers(pg_url, spread_home):
    with streamlit_server(pg_url, spread_home / "a.log") as a, streamlit_server(pg_url, spread_home / "b.log") as b:
        yield a, b, pg_url


def sign_in(tab, url: str, name: str) -> None:
    tab.goto(url)
    tab.get_by_role("textbox", name="Reviewer").fill(name)
    tab.get_by_role("textbox", name="Reviewer").press("Enter")


def test_a_run_started_on_one_server_and_labels_given_on_either_are_seen_on_the_other(two_servers, page, stub):
    url_a, url_b, db = two_servers
    stub.answers = ["Paris."]
    a, b = page, page.context.browser.new_page(viewport={"width": 1400, "height": 1000})

    # Server A: ana plans and starts a run on the loopback stub.
    sign_in(a, url_a, "ana")
    a.get_by_role("textbox", name="Prompt", exact=True).fill("What is the capital of France?")
    models = a.locator('[data-testid="stMultiSelect"]').first
    models.click()
    a.keyboard.press("Backspace")  # drop the preselected embedded model
    models.locator("input").fill("openai/stub-a")  # a model id typed as a new option
    a.keyboard.press("Enter")
    a.keyboard.press("Escape")
    fill_each(a, (("textbox", "API base (OpenAI-compatible server)", stub.base_url), ("textbox", "Temperatures", "1"),
                  ("spinbutton", "Samples (N)", "4")))
    a.get_by_text("4 calls").wait_for(timeout=30_000)
    a.get_by_text("no price for openai/stub-a").first.wait_for(timeout=30_000)
    a.get_by_role("button", name="Run", exact=True).click()
    a.get_by_text("Run 1: done").wait_for(timeout=120_000)

    # Server B lists it; bo sees it on Spread.
    sign_in(b, url_b, "bo")
    goto(b, "Runs")
    b.get_by_text("Run 1: done").first.wait_for(timeout=30_000)
    goto(b, "Spread")
    b.get_by_text("4 answers · 0 errors").wait_for(timeout=60_000)

    # A: ana fails the cluster. B: bo's Review shows ana's label, and bo passes it.
    goto(a, "Review")
    a.get_by_role("button", name="Fail").click()
    a.get_by_text("4/4 answers labelled by ana").wait_for(timeout=30_000)
    goto(b, "Review")
    b.get_by_text("so far: ana").wait_for(timeout=30_000)
    b.get_by_role("button", name="Pass").click()
    b.get_by_text("4/4 answers labelled by bo").wait_for(timeout=30_000)

    # Back on A (a run of the page once its agreement is due a recount): both reviewers, and they disagree.
    time.sleep(labels.AGREEMENT_S)
    goto(a, "Runs")
    goto(a, "Review")
    a.get_by_text("Answers the reviewers disagree on").wait_for(timeout=30_000)
    expect(a.get_by_text("Run 1: agreement")).to_be_visible()
    stored = labels.labels_for_run(Store(db), 1)
    assert sorted((r["reviewer"], r["verdict"]) for r in stored) == [("ana", "fail")] * 4 + [("bo", "pass")] * 4


def test_a_regression_started_on_a_server_that_dies_is_judged_by_the_other_and_shown_there(
        two_servers, page, stub, tmp_path):
    """The Regression page hands its run to the workers: the server whose worker samples it is
    killed mid-run, the other server's worker takes the run over and records the verdict,
    and the surviving server's Regression page shows it."""
    import os
    import signal

    from core.evaluate import regress
    from core.formats import golden_files
    from core.store import runs
    from test_regress import answer_with, golden_file

    url_a, url_b, db = two_servers
    store = Store(db)
    path, items = golden_file(tmp_path, n_items=3)
    golden_files.import_file(store, "capitals", path)
    stub.respond = answer_with(items, right=True)
    stub.latency_s = 0.2  # 120 calls at 8 in flight: about 3 s of sampling

    sign_in(page, url_a, "ana")
    goto(page, "Regression")
    fill_each(page, (("textbox", "Candidate model", "openai/stub-a"), ("textbox", "API base", stub.base_url),
                     ("spinbutton", "Samples per item (K)", "40"),
                     ("spinbutton", "Minimum pass rate (0 = no gate)", "0.5")))
    page.get_by_role("button", name="Run the regression").click()
    page.get_by_text(re.compile(r"Regress of run 1 on .*samples")).first.wait_for(timeout=60_000)

    def holder() -> int | None:
        with store.connection() as conn:
            run = runs.get_run(conn, 1)
            (worker,) = conn.execute("select worker from runs where id = 1 and lease_owner is not null").fetchone() \
                or (None,)
        return int(worker.rsplit(":", 1)[1]) if worker and run["received"] >= 10 else None

    deadline = time.time() + 60
    while (pid := holder()) is None and time.time() < deadline:
        time.sleep(0.05)
    assert pid is not None, "no server's worker sampled the regression"
    port_of = open(f"/proc/{pid}/cmdline").read().split("\0")
    killed_port = port_of[port_of.index("--server.port") + 1]
    os.kill(pid, signal.SIGKILL)
    survivor = url_b if url_a.endswith(f":{killed_port}") else url_a

    judged = None
    deadline = time.time() + 90
    while judged is None and time.time() < deadline:
        judged = regress.for_run(store, 1)
        time.sleep(0.2)
    assert judged is not None and judged["gate"] == "pass", "the surviving worker did not judge the regression"
    with store.connection() as conn:
        assert runs.get_run(conn, 1)["answers"] == 120  # every sample, once

    other = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in(other, survivor, "bo")
    goto(other, "Regression")
    other.get_by_role("heading", name=re.compile(r"Regress \d+: pass — the gate holds")).wait_for(timeout=60_000)
    expect(other.get_by_text(re.compile(r"Regress of run 1 on"))).to_have_count(0)  # no longer waiting


def test_a_monitor_made_on_one_server_is_checked_once_by_the_workers_and_seen_on_the_other(
        two_servers, page, stub, tmp_path):
    """ana creates a monitor on server A's Monitors page and nobody runs anything: one of the
    two servers' workers runs its first check (its baseline) when it is due, exactly once,
    and bo sees it on server B's Monitors page."""
    from core.formats import golden_files
    from core.models import endpoints
    from core.watch import monitors
    from test_regress import answer_with, golden_file

    url_a, url_b, db = two_servers
    store = Store(db)
    path, items = golden_file(tmp_path, n_items=2)
    golden_files.import_file(store, "gold", path)
    endpoints.add(store, endpoints.Endpoint(name="stubbed", model="openai/stub-a", api_base=stub.base_url))
    stub.respond = answer_with(items, right=True)

    sign_in(page, url_a, "ana")
    goto(page, "Monitors")
    page.get_by_role("textbox", name="Name").fill("nightly")
    page.get_by_role("textbox", name="Model").fill("stubbed")
    page.get_by_role("textbox", name="Every").fill("1d")
    page.get_by_role("button", name="Create").click()
    page.get_by_text("nightly is ok").wait_for(timeout=30_000)

    deadline = time.time() + 120  # the workers look for due monitors every 15 s
    while time.time() < deadline and not monitors.details(store, "nightly")["checks"]:
        time.sleep(0.5)
    (check,) = monitors.details(store, "nightly")["checks"]
    deadline = time.time() + 120
    while time.time() < deadline and monitors.details(store, "nightly")["checks"][0]["status"] == "running":
        time.sleep(0.5)

    b = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in(b, url_b, "bo")
    goto(b, "Monitors")
    b.get_by_text("nightly is ok").wait_for(timeout=30_000)
    expect(b.get_by_text("No check yet")).to_have_count(0)
    b.get_by_text(re.compile(r"pass|no verdict")).first.wait_for(timeout=30_000)
    details = monitors.details(store, "nightly")
    assert len(details["checks"]) == 1 and details["checks"][0]["status"] == "done"  # one execution, two servers
    assert details["baseline_id"] == details["checks"][0]["regress_id"] and details["created_by"] == "ana"
