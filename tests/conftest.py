"""Every test gets its own database and settings: nothing touches data/spread.db."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from openai_stub import StubOpenAI  # noqa: E402
from pg_server import PostgresServer  # noqa: E402

from core.models import llm  # noqa: E402

# A cold `import litellm` takes seconds: pay it once per test session.
llm.get()


@pytest.fixture(autouse=True)
def spread_home(tmp_path, monkeypatch, request):
    # SPREAD_TEST_ENGINE=postgresql runs the tests that use $SPREAD_DB on PostgreSQL.
    if os.environ.get("SPREAD_TEST_ENGINE") == "postgresql":
        if request.node.get_closest_marker("sqlite_only"):
            pytest.skip("about the SQLite file itself")
        monkeypatch.setenv("SPREAD_DB", request.getfixturevalue("pg_url"))
    else:
        monkeypatch.setenv("SPREAD_DB", str(tmp_path / "spread.db"))
    monkeypatch.setenv("SPREAD_SETTINGS", str(tmp_path / "settings.toml"))
    monkeypatch.setenv("SPREAD_SECRETS", str(tmp_path / "secrets.toml"))
    for key in [k for k in os.environ if k.endswith("_API_KEY")]:
        monkeypatch.delenv(key)
    return tmp_path


class TestStore:
    """The test's database as the Store the code is handed: SPREAD_DB as it is when the store
    is first used, so a test (or a fixture such as `engine`) may point SPREAD_DB at
    PostgreSQL after asking for it."""

    def __init__(self):
        self._opened = None

    def __getattr__(self, name):
        if self._opened is None:
            from core.store import Store

            self._opened = Store()
        return getattr(self._opened, name)

    def close(self):
        if self._opened is not None:
            self._opened.close()


@pytest.fixture
def store(spread_home):
    opened = TestStore()
    yield opened
    opened.close()


@pytest.fixture
def stub():
    with StubOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session, started on first use (CI installs it;
    elsewhere, without Debian's `postgresql`, the tests that need it are skipped)."""
    try:
        server = PostgresServer()
    except RuntimeError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))
    server.init()
    yield server
    # The session ends: the workers that app pages started in this process stop first, so
    # they do not report the server going away as an outage.
    from core.execution import launch

    launch.PROCESS_STOPPING.set()
    server.close()


@pytest.fixture
def pg_url(postgres):
    """A fresh, empty PostgreSQL database for one test, as a URL."""
    return postgres.new_database()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a failed test on its node, so fixtures can leave evidence (screenshots)."""
    outcome = yield
    if outcome.get_result().failed:
        item.failed = True


@pytest.fixture(autouse=True)
def navigation_only(monkeypatch):
    """Keep Streamlit out of its legacy pages/-folder mode in AppTest.

    AppTest resets Streamlit's process-wide "this app uses a pages/ folder" flag before
    every run, so each run would start in the legacy mode that runs a page's file
    directly, skipping app.py (its st.navigation, login gate and sidebar). A real
    server leaves that mode after its first run, when app.py calls st.navigation; this
    puts AppTest in the same steady state.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
