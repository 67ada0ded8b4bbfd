"""The deployment recipe keeps its promises (compose.yaml, Dockerfile, deploy/): no bind
mount of a file that may not exist, login by default, a graceful stop, health checks that
allow for start-up, dependencies before the source, a non-root user, a database backup.
Docker is not run here: the files are read and their promises checked."""

import importlib.util
import re
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from core import config
from conftest import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def seconds(duration: str) -> float:
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in re.findall(r"([\d.]+)([hms])", duration))


def tracked(path: str) -> bool:
    return subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT, capture_output=True).returncode == 0


def test_no_bind_mount_of_a_file_that_may_not_exist():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                continue  # a named volume
            path = (ROOT / source).resolve()
            # A committed file always exists; any other bind source is a folder (Docker makes a
            # missing one empty, which is what its reader expects), never a file such as secrets.toml.
            assert tracked(source) or not path.suffix, f"{name}: {volume}"
            assert "secrets.toml" not in volume and ".env" not in source


def test_app_servers_stop_gracefully_check_health_with_a_start_period_and_need_login():
    services = compose()["services"]
    apps = [services["app1"], services["app2"]]
    for app in apps:
        assert seconds(app["stop_grace_period"]) >= 20  # above the ~8 s a server takes to hand its runs back
        assert "SPREAD_ALLOW_NO_LOGIN" not in app.get("environment", {})  # login is the default
    for name, service in services.items():
        if "healthcheck" in service:
            assert seconds(service["healthcheck"]["start_period"]) > 0, name
    assert "pg_dump" in " ".join(services["backup"]["command"])


def test_the_image_installs_the_lock_before_the_source_and_runs_as_a_user():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    copy_source = instructions.index("COPY . .")
    lock_install = next(k for k, line in enumerate(instructions) if "-r requirements.lock" in line
                        or (line.startswith("RUN") and "requirements.lock" in " ".join(instructions[k:k + 2])))
    assert lock_install < copy_source
    assert any(line.startswith("COPY requirements.lock") for line in instructions[:copy_source])
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert instructions.index(f"USER {users[-1]}") > copy_source


def test_no_wheel_is_committed():
    assert not tracked("psycopg-3.0-py3-none-any.whl")
    assert "*.whl" in (ROOT / ".gitignore").read_text().splitlines()
    assert "*.whl" in (ROOT / ".dockerignore").read_text().splitlines()


def entrypoint():
    spec = importlib.util.spec_from_file_location("spread_entrypoint", ROOT / "deploy" / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AUTH = {"SPREAD_AUTH_REDIRECT_URI": "https://spread.example.com/oauth2callback",
        "SPREAD_AUTH_COOKIE_SECRET": 'a "quoted" \\ secret',
        "SPREAD_AUTH_CLIENT_ID": "client", "SPREAD_AUTH_CLIENT_SECRET": "s3cret\nwith a newline",
        "SPREAD_AUTH_SERVER_METADATA_URL": "https://accounts.google.com/.well-known/openid-configuration"}


def test_the_entrypoint_writes_login_from_the_environment_or_takes_a_mounted_file(tmp_path, capsys):
    module = entrypoint()
    empty = tmp_path / "mounted"  # Docker made the folder: nothing in it
    empty.mkdir()
    target = tmp_path / "home" / ".streamlit" / "secrets.toml"
    environ = {**AUTH, "SPREAD_SECRETS_DIR": str(empty), "SPREAD_SECRETS": str(target)}
    assert module.write_secrets(environ) == target
    assert tomllib.loads(target.read_text())["auth"] == {key: AUTH[name] for key, name in module.AUTH_KEYS.items()}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # half a login is no login (the app then refuses to serve), said in one line
    assert module.write_secrets({**environ, "SPREAD_AUTH_CLIENT_ID": ""}) is None and not target.exists()
    assert "SPREAD_AUTH_CLIENT_ID" in capsys.readouterr().err
    # a secrets.toml in the mounted folder is used as it is
    (empty / "secrets.toml").write_text('OPENAI_API_KEY = "sk-x"\n')
    module.write_secrets({"SPREAD_SECRETS_DIR": str(empty), "SPREAD_SECRETS": str(target)})
    assert tomllib.loads(target.read_text()) == {"OPENAI_API_KEY": "sk-x"}
    # a missing folder: no secrets, no crash
    assert module.write_secrets({"SPREAD_SECRETS_DIR": str(tmp_path / "none"), "SPREAD_SECRETS": str(target)}) is None


@pytest.mark.parametrize("address, login_on, allowed, refused", [
    ("127.0.0.1", False, "", False), ("localhost", False, "", False), ("::1", False, "", False),
    ("0.0.0.0", False, "", True), (None, False, "", True), ("spread.internal", False, "", True),
    ("0.0.0.0", True, "", False), ("0.0.0.0", False, "1", False), ("0.0.0.0", False, "0", True),
])
def test_pages_beyond_loopback_need_login_or_an_explicit_opt_out(monkeypatch, address, login_on, allowed, refused):
    monkeypatch.setenv("SPREAD_ALLOW_NO_LOGIN", allowed)
    assert bool(config.unprotected(address, login_on)) == refused


@pytest.fixture
def bound_to_every_interface():
    before = streamlit_config.get_option("server.address")
    streamlit_config.set_option("server.address", "0.0.0.0")
    yield
    streamlit_config.set_option("server.address", before)


def test_the_app_bound_beyond_loopback_without_login_serves_no_page(bound_to_every_interface, monkeypatch):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert len(at.error) == 1 and "SPREAD_ALLOW_NO_LOGIN" in at.error[0].value.replace("\\", "")
    assert not at.button and not at.text_area and not at.sidebar.text_input  # no page, no reviewer box
    # login on: the login prompt for a visitor, the pages for a logged-in user
    auth = {"redirect_uri": "http://localhost/oauth2callback", "cookie_secret": "x", "client_id": "x",
            "client_secret": "x", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"], at.user = auth, {"is_logged_in": False}
    at.run()
    assert not at.exception and not at.error and at.button[0].label == "Log in"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"], at.user = auth, {"is_logged_in": True, "email": "ana@example.com"}
    at.run()
    assert not at.exception and not at.error and at.text_area
    # the operator's explicit opt-out for a private network: the pages are served
    monkeypatch.setenv("SPREAD_ALLOW_NO_LOGIN", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error and at.sidebar.text_input
