"""An SMPP account and how to use it: the `smpp://` URL, its options, the addresses' TON/NPI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

Mode = Literal["transmitter", "receiver", "transceiver"]


def _number(query: dict[str, str], key: str, default: Any, kind: type = float) -> Any:
    return kind(query[key]) if query.get(key, "") != "" else default


@dataclass(frozen=True, slots=True)
class SmppConfig:
    """One SMPP account at an SMSC, and how to use it."""

    host: str
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    mode: Mode = "transmitter"
    tps: float = 10.0                 # the operator's limit for this account, submits per second
    burst: int = 1                    # submits allowed at once after an idle spell
    window: int = 10                  # submit_sm sent before waiting for their responses
    source_ton: int | None = None     # None: from the address (alphanumeric 5/0, +E.164 1/1, else 0/1)
    source_npi: int | None = None
    dest_ton: int | None = None       # None: +E.164 1/1, else 0/1
    dest_npi: int | None = None
    registered_delivery: int = 1      # ask for a delivery receipt on the final outcome
    enquire_link_s: float = 30.0      # keep-alive when the link has been idle this long
    timeout_s: float = 5.0            # for connect, bind and each response
    resend_after_s: float = 30.0      # an unanswered submit is sent again (once) this long after
    max_wait_s: float = 2.0           # longest a send waits for the rate limit, else RateLimited
    throttle_pause_s: float = 1.0     # how long the link holds off after ESME_RTHROTTLED/RMSGQFUL
    reconnect_min_s: float = 1.0      # backoff between failed binds, doubling up to the max
    reconnect_max_s: float = 30.0
    link: str = ""                    # the shared rate limit's name; default SYSTEM_ID@HOST:PORT
    redis_url: str | None = None      # share the rate limit with every process on this link

    @classmethod
    def from_url(cls, url: str, *, redis_url: str | None = None) -> SmppConfig:
        """From `smpp://SYSTEM_ID:PASSWORD@HOST:PORT?option=value&...`."""
        parts = urlsplit(url)
        if parts.scheme != "smpp" or not parts.hostname:
            raise ValueError("expected smpp://SYSTEM_ID:PASSWORD@HOST:PORT?options")
        query = dict(parse_qsl(parts.query))
        known = {f.name for f in dataclasses.fields(cls)} | {"redis"}
        unknown = set(query) - known
        if unknown:
            raise ValueError(f"unknown smpp:// options: {', '.join(sorted(unknown))}")
        mode = query.get("mode", "transmitter")
        if mode not in ("transmitter", "receiver", "transceiver"):
            raise ValueError(f"mode must be transmitter, receiver or transceiver, not {mode!r}")
        return cls(
            host=parts.hostname, port=parts.port or 2775,
            system_id=unquote(parts.username or ""), password=unquote(parts.password or ""),
            system_type=query.get("system_type", ""), mode=mode,  # type: ignore[arg-type]
            tps=_number(query, "tps", 10.0), burst=_number(query, "burst", 1, int),
            window=_number(query, "window", 10, int),
            source_ton=_number(query, "source_ton", None, int),
            source_npi=_number(query, "source_npi", None, int),
            dest_ton=_number(query, "dest_ton", None, int),
            dest_npi=_number(query, "dest_npi", None, int),
            registered_delivery=_number(query, "registered_delivery", 1, int),
            enquire_link_s=_number(query, "enquire_link_s", 30.0),
            timeout_s=_number(query, "timeout_s", 5.0),
            resend_after_s=_number(query, "resend_after_s", 30.0),
            max_wait_s=_number(query, "max_wait_s", 2.0),
            throttle_pause_s=_number(query, "throttle_pause_s", 1.0),
            reconnect_min_s=_number(query, "reconnect_min_s", 1.0),
            reconnect_max_s=_number(query, "reconnect_max_s", 30.0),
            link=query.get("link", ""), redis_url=query.get("redis") or redis_url,
        )

    @property
    def name(self) -> str:
        """The link's name, for logs and the shared rate limit."""
        return self.link or f"{self.system_id}@{self.host}:{self.port}"


def address(value: str, ton: int | None, npi: int | None) -> tuple[str, int, int]:
    """The SMPP address, TON and NPI for a number or an alphanumeric sender id."""
    international = value.startswith("+") and value[1:].isdigit()
    digits = value[1:] if international else value
    if ton is not None:
        return digits, ton, 1 if npi is None else npi
    if international:
        return digits, 1, 1 if npi is None else npi
    if not value.isdigit():
        return value, 5, 0 if npi is None else npi   # alphanumeric, e.g. EGOV
    return value, 0, 1 if npi is None else npi


__all__ = ["Mode", "SmppConfig", "address"]
