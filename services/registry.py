"""The service registry: one entry per SMS service, with everything that defines it.

Adding a service is one entry here: its keywords in every language and its
argument parser (the syntax), and its handler. Its reply texts live in
`replies/templates.toml` under the service's name. Nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from parsers import Syntax, arguments
from services import account_registration, housing, kindergarten, tech_inspection
from services.handler import BatchHandler, Handler


@dataclass(frozen=True, slots=True)
class Service:
    """One SMS service: how it is asked for and what answers it."""

    name: str
    syntax: Syntax
    handler: Handler | None = None  # None: the grammar is known, the service not yet offered
    batch: BatchHandler | None = None  # the same for a batch at once, where the service has it


class Registry:
    """The services by name; a name registered twice is an error at once."""

    def __init__(self, services: Sequence[Service]) -> None:
        self._by_name: dict[str, Service] = {}
        for service in services:
            if service.name in self._by_name:
                raise ValueError(f"service {service.name!r} registered twice")
            self._by_name[service.name] = service

    def __iter__(self) -> Iterator[Service]:
        return iter(self._by_name.values())

    def __getitem__(self, name: str) -> Service:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


def default_registry() -> Registry:
    """The services of the spec (SERVICES.md)."""
    return Registry([
        Service(
            name="tech_inspection",
            syntax=Syntax(
                keywords=("Техосмотр", "Techosmotr", "Техникалык байкау", "Техникалық байқау",
                          "Tehnikalyk baikau", "8"),
                argument=arguments.plate,
            ),
            handler=tech_inspection.handle,
            batch=tech_inspection.handle_many,
        ),
        Service(
            name="kindergarten_queue",
            syntax=Syntax(
                keywords=("Ochered' v detsad", "Очередь в детсад", "Бала-бақшаға кезек",
                          "Бала-бакшага кезек", "Bala-bakshaga kezek", "5"),
                argument=arguments.child_iin,
            ),
            handler=kindergarten.handle,
            batch=kindergarten.handle_many,
        ),
        Service(
            name="housing_queue",
            syntax=Syntax(
                keywords=("Очередь на жилье", "Ochered' na zhil'e", "Тургын үйге кезек",
                          "Тұрғын үйге кезек", "Turgyn uige kezek", "4"),
                argument=arguments.optional_iin,
            ),
            handler=housing.handle,
            batch=housing.handle_many,
        ),
        Service(
            name="account_registration",
            syntax=Syntax(keywords=(), argument=arguments.registration),
            handler=account_registration.handle,
        ),
    ])
