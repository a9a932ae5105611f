"""The `govsms` command: one module per group of commands, each attached to `main` here.

server.py starts the processes (run, ingest, smpp-ingest, flower, console); db.py fills the
database; messages.py sends and inspects messages (send, status, dead-letters, report,
accounts); parse.py shows what the parser makes of a text; replay.py exports message
logs and replays them; purge.py removes personal data past retention; trace.py shows what
became of each message; operators.py adds the console's operators. Shared helpers sit in
common.py, which imports none of them.
"""

from __future__ import annotations

import click

from workers.cli import db, messages, operators, parse, purge, replay, server, trace


@click.group()
def main() -> None:
    """govsms: an SMS gateway for e-Government services."""


for command in (server.run, server.ingest, server.smpp_ingest, server.flower, db.db,
                messages.send, messages.status, messages.dead_letters, messages.report,
                messages.accounts_group, parse.parse, replay.export, replay.replay,
                purge.purge, trace.trace, server.console, operators.operator):
    main.add_command(command)
