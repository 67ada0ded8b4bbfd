"""The `spread` command: the same core functions the app uses, as click command groups.

One module per stage of the flow (run, analyse, review, evaluate, models), each adding
its commands to the group below. Errors a user can fix exit with status 2 and one line
on stderr; with --json, the last line on stdout is one JSON object. May import anything
in core.
"""

from __future__ import annotations

import os
import sqlite3
import sys

import click

from core import config
from core.cli import analyse, db, evaluate, models, review, run, serve, traces, watch, worker
from core.config import SpreadError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", metavar="PATH|URL",
              help="SQLite file, or postgresql://USER:PASSWORD@HOST:PORT/DB (default: $SPREAD_DB or data/spread.db)")
def cli(db: str | None) -> None:
    """Sample prompts over inputs × models × temperatures × N, measure how far the answers
    spread, label them, and gate new models and prompts against golden sets."""
    if db:  # a misspelt URL is refused here, before any file is made (config.database)
        config.database(db, "--db")


for stage in (run, analyse, review, evaluate, watch, models, db, worker, serve, traces):
    for command in stage.COMMANDS:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if argv is None and "litellm" in sys.modules:
        # The program is done (stores closed, workers joined, output written): skip the
        # second it takes the interpreter to tear down litellm's modules one by one.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    try:
        result = cli.main(args=argv, prog_name="spread", standalone_mode=False)
    except click.UsageError as e:  # one line, and where to read more
        where = e.ctx.command_path if e.ctx else "spread"
        message = "no command given" if isinstance(e, click.exceptions.NoArgsIsHelpError) else e.format_message()
        print(f"spread: error: {' '.join(message.split())} (see {where} --help)", file=sys.stderr)
        return 2
    except SpreadError as e:
        print(f"spread: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, click.Abort):
        print("spread: interrupted; `spread resume RUN_ID` fills in what is missing", file=sys.stderr)
        return 130
    except sqlite3.OperationalError as e:  # a locked or read-only file after the busy timeout
        print(f"spread: error: database: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if not type(e).__module__.startswith("psycopg"):
            raise
        # PostgreSQL went away mid-command (psycopg is imported only for a postgresql:// store)
        named = _named_database(sys.argv[1:] if argv is None else argv) or os.environ.get("SPREAD_DB")
        print(f"spread: error: database: {config.scrub(str(e).strip().splitlines()[0], named)}", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def _named_database(argv: list[str]) -> str | None:
    """The value of `--db` in argv, if given: its password is scrubbed from any error."""
    for k, arg in enumerate(argv):
        if arg == "--db" and k + 1 < len(argv):
            return argv[k + 1]
        if arg.startswith("--db="):
            return arg[len("--db="):]
    return None
