"""Texts that tolerance could route to a service, and must not: they stay service_not_found."""

from __future__ import annotations

import pytest

from tests.support.parser_cases import NEAR_MISSES, default_index

INDEX = default_index()


@pytest.mark.parametrize("text, why", NEAR_MISSES)
def test_near_miss_is_not_routed(text: str, why: str) -> None:
    assert INDEX.parse("1414", text).as_dict() == {"service": None, "error": "service_not_found"}
