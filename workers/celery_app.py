"""What `celery -A workers.celery_app` finds: the one app of a worker, beat or Flower process.

The only module that builds an app on import, from the environment's settings (and the
URLs a running `govsms run` wrote); everything else builds its own with `create_app`.
"""

from __future__ import annotations

from workers.app import create_app, worker_hooks
from workers.settings import load_settings

worker_hooks()
app = create_app(load_settings())
