"""`govsms parse`: what the parser makes of a text, as JSON."""

from __future__ import annotations

import json
import sys

import click

from workers.settings import load_settings


@click.command()
@click.option("--to", "shortcode", help="The short code the text was sent to")
@click.option("--jsonl", is_flag=True, help='Read {"to": ..., "text": ...} lines from stdin')
@click.argument("text", required=False)
def parse(shortcode: str | None, jsonl: bool, text: str | None) -> None:
    """Print what the parser makes of TEXT (or of each JSON line on stdin) as JSON."""
    from parsers import KeywordIndex
    from services.registry import default_registry

    index = KeywordIndex.build(default_registry(), load_settings().shortcodes)
    if not jsonl:
        if shortcode is None or text is None:
            raise click.UsageError("give --to SHORTCODE TEXT, or --jsonl")
        click.echo(json.dumps(index.parse(shortcode, text).as_dict(), ensure_ascii=False))
        return
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            result = index.parse(str(item["to"]), str(item["text"])).as_dict()
        except (ValueError, KeyError, TypeError) as error:
            result = {"service": None, "error": "bad_input", "line": number,
                      "detail": type(error).__name__}
        click.echo(json.dumps(result, ensure_ascii=False))
