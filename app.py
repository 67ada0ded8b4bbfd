"""Spread's entry point: the router, the login gate, the shared sidebar, and a database
failure as one line instead of a page."""

import streamlit as st

from core import config, display
from core.execution import service
from core.run import drafts
from core.store import Store
from core.store import status as database_status
from pages.parts.store import app_store


def login_configured() -> bool:
    """Login is on when .streamlit/secrets.toml has an [auth] section (st.login, any OIDC provider)."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False


def login_identity() -> str:
    """Who the login says this is: the e-mail, else the name, else the provider's subject id
    (stable and unique per provider). It names labels, runs, golden-set edits and drafts."""
    return str(st.user.get("email") or st.user.get("name") or st.user.get("sub") or "")


def reviewer_sidebar() -> None:
    """Who is reviewing: the logged-in user (no name to type), or a name given once per session."""
    if login_configured():
        st.session_state["who"] = login_identity()
        st.caption(f"Signed in as **{display.inert(st.session_state['who'])}**")
        st.button("Log out", on_click=st.logout)
    else:
        st.text_input("Reviewer", key="reviewer", persist_state="session", placeholder="your name",
                      help="Recorded with the runs you start and the labels you give.")
        st.session_state["who"] = " ".join(st.session_state.get("reviewer", "").split())


def main(store: Store) -> None:
    st.set_page_config(page_title="Spread", page_icon="◌", layout="wide")
    service.for_this_server(store)  # started with the server (below); this covers a server started otherwise
    if login_configured() and not st.user.is_logged_in:
        # Nothing is shown, and nothing can be labelled, anonymously.
        st.title("Spread")
        st.info("Log in to use Spread.")
        st.button("Log in", type="primary", on_click=st.login)
        st.stop()
    refusal = config.unprotected(st.get_option("server.address"), login_configured())
    if refusal:  # bound beyond loopback without login: nothing is served
        st.title("Spread")
        st.error(refusal, icon=":material/lock_open:")
        st.stop()
    pages = [
        st.Page("pages/playground.py", title="Playground", icon=":material/science:", default=True),
        st.Page("pages/runs.py", title="Runs", icon=":material/table_rows:"),
        st.Page("pages/spread.py", title="Spread", icon=":material/scatter_plot:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/review.py", title="Review", icon=":material/rule:"),
        st.Page("pages/golden.py", title="Golden sets", icon=":material/verified:"),
        st.Page("pages/regress.py", title="Regression", icon=":material/trending_down:"),
        st.Page("pages/serve.py", title="Serve", icon=":material/dns:"),
        st.Page("pages/monitors.py", title="Monitors", icon=":material/monitor_heart:"),
        st.Page("pages/models.py", title="Models", icon=":material/dns:"),
        st.Page("pages/traces.py", title="Traces", icon=":material/timeline:"),
    ]
    navigation = st.navigation(pages)
    # Whose draft this session reads and writes: the login identity, or, on a box without
    # login, the box's one draft. A new session (a reload) starts from it.
    owner = login_identity() if login_configured() else ""
    if not st.session_state.get("draft_loaded"):
        st.session_state.update(drafts.load(store, owner) or {}, draft_loaded=True)
    st.session_state["draft_owner"] = owner
    with st.sidebar:
        st.caption(f"Database: `{config.described(store.target)}`")
        reviewer_sidebar()
    navigation.run()


def database_failure(error: Exception, store: Store | None) -> None:
    """A database failure as one line on the page (never Streamlit's exception box), tried
    again every few seconds; anything else is a bug and raises as usual."""
    message = database_status.problem(error)
    if message is None:
        raise error
    database_status.note(message)
    st.error(display.inert(message), icon=":material/cloud_off:")
    if database_status.retrying(error):
        @st.fragment(run_every=database_status.RETRY_S)
        def try_again() -> None:
            if database_status.reachable(store):
                st.rerun(scope="app")

        try_again()


if __name__ == "__main__":  # Streamlit runs this file as __main__ for every session
    store = None
    try:
        store = app_store()  # a bad SPREAD_DB is refused here: one line, below
        main(store)
    except Exception as failure:  # st.stop() and st.rerun() are not Exceptions: they pass
        database_failure(failure, store)
    else:
        database_status.note(None)
else:  # `streamlit run app.py` imports it once and serves `app`: the server's life starts and stops the worker
    # Every session goes through main() (its navigation, login gate and sidebar), the first
    # one too: until st.navigation has run once, Streamlit treats a pages/ folder as its
    # legacy multipage app and would run a page opened by URL (/review) on its own, without
    # the login gate.
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    app = st.App(__file__, lifespan=lambda _app: service.server_lifespan(app_store()))
