"""Generated passwords: strong, SMS-safe, and kept only as a memory-hard hash."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# GSM-7 characters that survive every handset and keyboard: no look-alikes
# (0/O, 1/l/I), no characters that need the GSM escape table.
LETTERS = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "23456789"
SPECIALS = "@$!%*#?&"  # the set the seed's password rule names
LENGTH = 10

# argon2id at OWASP's first recommended setting: 19 MiB, 2 passes, 1 lane, about 30 ms of
# one core here. The gateway hashes only the passwords it generates (10 characters from 64:
# about 59 bits, out of reach of guessing whatever the hash costs); the library's default
# (64 MiB, 3 passes, 4 lanes) cost 300 ms of CPU each, so that a registration campaign, or
# someone texting registrations, cost the workers more than everything else they do.
# A hash keeps its own parameters: those made with another setting still verify.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def generate(length: int = LENGTH) -> str:
    """A random password with at least one letter, one digit and one special character."""
    alphabet = LETTERS + DIGITS + SPECIALS
    chars = [secrets.choice(LETTERS), secrets.choice(DIGITS), secrets.choice(SPECIALS)]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of `password`."""
    return _HASHER.hash(password)


def verify(password_hash: str, password: str) -> bool:
    """True when `password` matches `password_hash`."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
