"""Texts that carry a password or a one-time code are kept encrypted until they are sent."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken


def derive(key: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the server's secret key."""
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).digest()


class Sealer:
    """Encrypts and authenticates SMS texts at rest (Fernet: AES-CBC with HMAC-SHA256)."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive(key, "govsms/seal-sms")))

    def seal(self, text: str) -> str:
        """The text encrypted, as printable ASCII."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def unseal(self, sealed: str) -> str:
        """The text back; raises ValueError when it was not sealed under this key."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ValueError("sealed text does not open with this key") from None
