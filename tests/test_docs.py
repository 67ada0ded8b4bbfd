"""Docs that cannot drift: the CLI reference is the commands' own --help, the README stays
short and its links land, and the docs site builds with no dead link."""

import os
import re
import subprocess
import sys

from conftest import ROOT

CLI_PAGE = ROOT / "docs" / "cli.md"


def run(*args, cwd=ROOT):
    # A narrow terminal: the generated help must not depend on the width of the one running it.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "40", "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)


def command_paths():
    import click

    from core.cli import cli

    def walk(group, path):
        for name, command in group.commands.items():
            yield f"{path} {name}"
            if isinstance(command, click.Group):
                yield from walk(command, f"{path} {name}")

    return list(walk(cli, "spread"))


def test_every_command_has_its_help_page_in_the_cli_reference():
    generated = CLI_PAGE.read_text().split("<!-- [[[cog", 1)[1]
    headings = set(re.findall(r"^### (spread.*)$", generated, flags=re.M))
    assert headings == {"spread", *command_paths()}


def test_the_cli_reference_is_what_cog_generates_from_the_commands():
    result = run("-m", "cogapp", "--check", str(CLI_PAGE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_cog_check_fails_when_an_option_changes_under_the_reference(tmp_path):
    stale = tmp_path / "cli.md"
    head, generated = CLI_PAGE.read_text().split("]]] -->", 1)
    assert "--max-calls" in generated
    stale.write_text(head + "]]] -->" + generated.replace("--max-calls", "--max-call", 1))
    result = run("-m", "cogapp", "--check", str(stale))
    assert result.returncode != 0 and "changed" in (result.stdout + result.stderr)


def test_readme_fits_on_a_few_screens():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def slug(heading: str) -> str:
    """Python-Markdown's toc anchor for an ASCII heading (what mkdocs links to)."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text).strip("-")


def test_readme_links_point_at_existing_docs_and_their_headings():
    readme = (ROOT / "README.md").read_text()
    links = [link for link in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in link]
    assert any(link.startswith("docs/") and link.endswith(".md") for link in links)
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README links to {link}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"README links to {link}: no such heading"


def test_every_docs_page_is_in_the_site_and_it_builds_strict(tmp_path):
    result = run("-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr[-3000:]
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")}
    built = {p.parent.name if p.parent != tmp_path / "site" else "index"
             for p in (tmp_path / "site").glob("**/index.html")}
    assert pages <= built


def test_mkdocs_build_strict_fails_on_a_dead_link(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](missing.md)\n")
    (tmp_path / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text().split("\nnav:", 1)[0])
    result = run("-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"), cwd=tmp_path)
    assert result.returncode != 0 and "missing.md" in result.stderr
