"""Importing the gateway's code builds nothing: only `celery -A workers.celery_app` makes an app.

A fresh interpreter imports every module of workers/, parsers/, services/ and replies/ but
the `-A` entry, with spies on Celery and on the settings, and with a bridge secret the
settings refuse (reading them would stop the process). Nothing may have been built, read
or registered: no Celery app, no settings, no logging hook, no remote control command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workers", "parsers", "services", "replies")
ENTRY = "workers.celery_app"

PROBE = r"""
import importlib, json, pkgutil, sys

import celery._state
import pydantic_settings
from celery.app.base import Celery
from celery.signals import setup_logging
from celery.worker import control

built = {"apps": [], "settings": []}


def spy(calls, original):
    def call(self, *args, **kwargs):
        calls.append(type(self).__name__)
        original(self, *args, **kwargs)
    return call


Celery.__init__ = spy(built["apps"], Celery.__init__)
pydantic_settings.BaseSettings.__init__ = spy(built["settings"],
                                              pydantic_settings.BaseSettings.__init__)
commands = dict(control.Panel.data)
packages, entry = sys.argv[1].split(","), sys.argv[2]
imported = []
for package in packages:
    imported.append(importlib.import_module(package).__name__)
    path = sys.modules[package].__path__
    for info in pkgutil.walk_packages(path, package + ".", onerror=lambda name: None):
        if info.name != entry:
            imported.append(importlib.import_module(info.name).__name__)
print(json.dumps({
    "imported": imported,
    "apps": built["apps"],
    "live_apps": len(celery._state._apps),
    "settings": built["settings"],
    "logging_hooks": len(setup_logging.receivers),
    "commands_changed": sorted(name for name, handler in control.Panel.data.items()
                               if commands.get(name) is not handler),
}))
"""


def _probe() -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GOVSMS_")}
    env.update(PYTHONPATH=str(ROOT), GOVSMS_BRIDGE_SECRET="short")
    done = subprocess.run([sys.executable, "-c", PROBE, ",".join(PACKAGES), ENTRY], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_any_module_but_the_entry_builds_no_app_and_reads_no_settings():
    found = _probe()
    assert {"workers.app", "workers.queues", "workers.cli", "workers.ingest.client_api",
            "workers.ingest.http", "workers.local.run", "parsers.keywords", "services.registry",
            "replies.transports.smpp"} <= set(found["imported"])
    assert ENTRY not in found["imported"]
    assert found["apps"] == [] and found["live_apps"] == 0
    assert found["settings"] == []
    assert found["logging_hooks"] == 0 and found["commands_changed"] == []


def test_the_entry_alone_builds_the_app_and_connects_the_worker_hooks(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("GOVSMS_")}
    env.update(PYTHONPATH=str(ROOT), GOVSMS_DATA_DIR=str(tmp_path),
               GOVSMS_BRIDGE_SECRET="entry-test-bridge-secret-0123456789abcdef",
               GOVSMS_SECRET_KEY="entry-test-secret-key-0123456789abcdef01")
    probe = ("import json\n"
             "from celery.signals import setup_logging\n"
             "from celery.worker import control\n"
             "from workers import app as factory\n"
             f"from {ENTRY} import app\n"
             "print(json.dumps({'main': app.main, 'runtime': type(app.govsms).__name__,\n"
             "                  'conf': control.Panel.data['conf'].__module__,\n"
             "                  'hooks': len(setup_logging.receivers)}))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "main": "govsms", "runtime": "Runtime", "conf": "workers.app", "hooks": 1}
