"""The console's operators: names with argon2id hashes, from the settings and the data dir.

`GOVSMS_OPERATORS` holds the deployed accounts; `govsms operator add NAME` writes one into
DATA_DIR/operators.json (mode 0600), which the console reads at each sign-in, so an account
added while it runs works at once. Neither ever holds a password, only its hash.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workers.settings import Settings, check_password_hash

OPERATORS_FILE = "operators.json"
NAME = re.compile(r"[a-z][a-z0-9._-]{0,31}")
MIN_PASSWORD = 12
# The library's argon2id defaults (RFC 9106's low-memory profile: 64 MiB, 3 passes, 4 lanes,
# about 0.3 s of CPU here): a person chooses this password, so its hash must be slow to guess
# at; a few sign-ins a day afford it. The gateway's own generated passwords use a lighter
# setting (services/passwords.py), being random.
_HASHER = PasswordHasher()
# Verified against when the name is unknown, so the answer takes as long either way.
_NOBODY = _HASHER.hash("no operator has this password")


class OperatorError(ValueError):
    """A name or password `govsms operator add` refuses; the message says why."""


def accounts(settings: Settings) -> dict[str, str]:
    """Every operator's hash: DATA_DIR/operators.json's, then the settings' over them."""
    found: dict[str, str] = {}
    path = settings.data_dir / OPERATORS_FILE
    if path.exists():
        for name, hashed in json.loads(path.read_text()).items():
            check_password_hash(f"{path}[{name!r}]", hashed)
            found[name] = hashed
    found.update({name: h.get_secret_value() for name, h in settings.operators.items()})
    return found


def verify(hashes: dict[str, str], name: str, password: str) -> bool:
    """True when `password` is `name`'s; as slow for an unknown name as for a known one."""
    try:
        return _HASHER.verify(hashes.get(name, _NOBODY), password) and name in hashes
    except (VerificationError, InvalidHashError):
        return False


def password_problem(name: str, password: str) -> str | None:
    """Why `password` may not be an operator's, or None."""
    if len(password) < MIN_PASSWORD:
        return f"shorter than {MIN_PASSWORD} characters"
    if password.lower() in (name.lower(), "password", "operator"):
        return "too easy to guess"
    if len(set(password)) < 5:
        return "too few different characters"
    return None


def hashed(name: str, password: str) -> str:
    """The argon2id hash of a new password for `name`; OperatorError if either is refused."""
    if not NAME.fullmatch(name):
        raise OperatorError("a name is 1-32 of a-z, 0-9, '.', '_', '-', starting with a letter")
    problem = password_problem(name, password)
    if problem is not None:
        raise OperatorError(f"password {problem}")
    return _HASHER.hash(password)


def add(data_dir: Path, name: str, password_hash: str) -> Path:
    """Write `name`'s hash into DATA_DIR/operators.json (replacing an older one); its path."""
    path = data_dir / OPERATORS_FILE
    current = json.loads(path.read_text()) if path.exists() else {}
    current[name] = password_hash
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(current, out, indent=2, sort_keys=True)
    os.replace(temporary, path)
    return path
