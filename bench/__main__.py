"""`python -m bench [--seconds S] [--out DIR]`: measure, print and write the benchmark files."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--seconds", default=5.0, show_default=True, help="How long to measure each figure")
@click.option("--out", default="docs", show_default=True, type=click.Path(file_okay=False))
def main(seconds: float, out: str) -> None:
    """Measure, print and write docs/benchmarks.md and docs/benchmarks.json."""
    from bench.measure import run

    run(seconds, Path(out))


if __name__ == "__main__":
    main(prog_name="python -m bench")
