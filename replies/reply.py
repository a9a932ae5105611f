"""The reply outcome a service returns: what `replies/` renders and sends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply outcome of a service; `replies/` turns it into text."""

    service: str
    outcome: str
    params: Mapping[str, Any] = field(default_factory=dict)
    sealed: bool = False  # the text carries a password or code: encrypted at rest, never logged
