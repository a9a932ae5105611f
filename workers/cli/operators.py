"""`govsms operator add`: an operator of the console, kept as an argon2id hash only."""

from __future__ import annotations

import json

import click

from workers.settings import Settings


@click.group("operator")
def operator() -> None:
    """Operators of the console."""


@operator.command("add")
@click.argument("name")
@click.option("--print", "print_only", is_flag=True,
              help="Print the GOVSMS_OPERATORS entry instead of writing DATA_DIR/operators.json")
@click.password_option(prompt="Password (12 characters or more)",
                       help="Asked for when not given (GOVSMS_OPERATOR_PASSWORD)",
                       envvar="GOVSMS_OPERATOR_PASSWORD")
def operator_add(name: str, print_only: bool, password: str) -> None:
    """Add operator NAME (or set a new password): its argon2id hash goes into
    DATA_DIR/operators.json, which the console reads at each sign-in; the password itself is
    kept nowhere."""
    from workers.console import operators

    try:
        hashed = operators.hashed(name, password)
    except operators.OperatorError as error:
        raise click.BadParameter(str(error)) from None
    if print_only:
        click.echo(json.dumps({name: hashed}))
        return
    path = operators.add(Settings().data_dir, name, hashed)
    click.echo(f"operator {name} can sign in to the console (hash in {path})")
