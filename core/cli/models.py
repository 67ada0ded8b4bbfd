"""Models: `spread models`."""

from __future__ import annotations

import click

from core.cli.common import json_option, print_json


@click.command("models")
@json_option
def models_command(as_json):
    """The embedded model, then providers and whether their key is set (never the key)."""
    from core.run import models

    entries = [e.as_dict() for e in models.catalogue()]
    if as_json:
        print_json(entries)
        return
    for entry in entries:
        print(f"{entry['id']:<55} {entry['description']}")


COMMANDS = [models_command]
