"""A worker app for tests: the gateway's own, with one more 1414 service that misbehaves.

`celery -A tests.support.hostile_worker worker` runs the real tasks on the real pipeline; only the
registry differs, by an entry `hostile` whose argument parser raises for `HOSTILE raise` and
never returns for `HOSTILE sleep`. No setting and no production code knows of it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from parsers import KeywordIndex, Syntax
from services.registry import Registry, Service
from workers.app import Runtime, create_app, worker_hooks
from workers.pipeline import Pipeline
from workers.settings import load_settings

KEYWORD = "HOSTILE"


def hostile_argument(rest: str) -> dict[str, Any]:
    """Fails as a bug would (`raise`), or hangs as a runaway parse would (`sleep`)."""
    if "sleep" in rest:
        time.sleep(3600)
    raise RuntimeError("a hostile text")


class HostileRuntime(Runtime):
    """The runtime of the gateway, its registry and index with the `hostile` entry added."""

    def _pipeline(self) -> Pipeline:
        built = super()._pipeline()
        registry = Registry([*built.registry,
                             Service("hostile", Syntax((KEYWORD,), hostile_argument))])
        shortcodes = {code: [*names, "hostile"] if code == "1414" else list(names)
                      for code, names in self.settings.shortcodes.items()}
        return dataclasses.replace(built, registry=registry,
                                   index=KeywordIndex.build(registry, shortcodes))


worker_hooks()  # as workers/celery_app.py: our logging, the censored `conf` command
app = create_app(load_settings())
app.govsms = HostileRuntime(app.govsms.settings)  # type: ignore[attr-defined]
