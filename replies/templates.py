"""Reply templates: data, one place, per service and outcome."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from replies.reply import Reply

COMMON = "common"


class Templates:
    """Reply texts by (service, outcome), rendered with their parameters."""

    def __init__(self, texts: Mapping[str, Mapping[str, str]]) -> None:
        self._texts = texts

    @classmethod
    def load(cls, path: Path | None = None) -> Templates:
        """The built-in templates, or those of `path` (TOML)."""
        if path is None:
            raw = (resources.files("replies") / "templates.toml").read_text(encoding="utf-8")
        else:
            raw = path.read_text(encoding="utf-8")
        return cls(tomllib.loads(raw))

    def __iter__(self):
        """Every (service, outcome, text)."""
        for service, outcomes in self._texts.items():
            for outcome, text in outcomes.items():
                yield service, outcome, text

    def has(self, service: str, outcome: str) -> bool:
        """Whether there is a text for (service, outcome)."""
        return outcome in self._texts.get(service, {})

    def render(self, reply: Reply) -> str:
        """The text of `reply`; an unknown outcome is a bug and raises KeyError."""
        template = self._texts[reply.service][reply.outcome]
        return template.format_map({k: _format(v) for k, v in reply.params.items()})


def _format(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    return str(value)
