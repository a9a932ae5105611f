"""`govsms trace`: what became of each message of one phone or one id, read from PostgreSQL,
the record of truth, as a timeline a support desk can read to a citizen.

For each MO: when and how it came (link, the bridge's id), what the parser made of it
(service and arguments, masked), each reply part (created, claimed, sent with the
operator's id, its receipt, attempts and errors, a possible duplicate flagged), dead
letters and what replayed them, a suppression and its reason; received -> sent and
received -> delivered. The SMS of the gateway's own to that phone (codes, notices, client
messages) follow. Phone numbers, IINs and plates are masked, a sealed text shows as
sealed, a client's own text as its length, a purged one as purged (found through its
number's keyed digest).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers
import psycopg

from parsers import KeywordIndex
from replies.masking import mask_numbers, mask_plate
from workers import audit, retention
from workers.messages import trace as store

_PART_TIMES = ("created_at", "claimed_at", "sent_at", "delivery_at")


@dataclass(frozen=True)
class Query:
    """Whose messages: a phone (any form a citizen says it in), or one id."""

    phone: str | None = None
    inbound: int | None = None
    outbound: int | None = None
    external: tuple[str, str] | None = None  # (link, the bridge's id)
    since: dt.datetime | None = None
    limit: int = 50


def phone_forms(raw: str, regions: Iterable[str]) -> list[str]:
    """`87010000001`, `+7 701 000 0001`, `0905123456`: the E.164 numbers it is in the
    senders' countries (each short code's region)."""
    forms: list[str] = []
    for region in dict.fromkeys(regions):
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if e164 not in forms:
                forms.append(e164)
    return forms


def asked(query: Query, key: str, regions: Iterable[str]) -> tuple[str, audit.Phone | None]:
    """What `query` asks, as the audit trail writes it down: numbers masked, a phone as its
    masked form and keyed digest (that of its first form in the senders' countries)."""
    if query.phone is not None:
        forms = phone_forms(query.phone, regions)
        phone = retention.masker(retention.digest_key(key))(forms[0]) if forms else None
        since = f" since {query.since:%Y-%m-%d %H:%M}" if query.since else ""
        return f"phone {phone[0] if phone else '(not a number)'}{since}", phone
    if query.outbound is not None:
        return f"outbound {query.outbound}", None
    if query.external is not None:
        return f"external {query.external[0]}:{mask_numbers(query.external[1])}", None
    return f"inbound {query.inbound}", None


def timelines(conn: psycopg.Connection, index: KeywordIndex, key: str, query: Query,
              regions: Iterable[str]) -> list[dict[str, Any]]:
    """Every message the query names, oldest first, as JSON-ready timelines."""
    inbound_ids, own_ids = _find(conn, key, query, list(regions))
    inbound, parts, dead = store.details(conn, inbound_ids, own_ids)
    out = [_inbound(index, row, parts.get(row["id"], []),
                    [d for d in dead if d["inbound_id"] == row["id"]]) for row in inbound]
    for group, rows in parts.items():
        if isinstance(group, str):  # an SMS of its own, by its key
            ids = {p["id"] for p in rows}
            out.append(_own(rows, [d for d in dead if d["outbound_id"] in ids]))
    return sorted(out, key=lambda item: item["at"])


def _find(conn: psycopg.Connection, key: str, query: Query,
          regions: list[str]) -> tuple[list[int], list[int]]:
    if query.phone is not None:
        forms = phone_forms(query.phone, regions)
        masked = retention.masker(retention.digest_key(key))
        since = query.since or dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)
        return store.for_phone(conn, forms, [masked(f)[1] for f in forms], since, query.limit)
    if query.outbound is not None:
        inbound, exists = store.of_outbound(conn, query.outbound)
        if inbound is not None:
            return [inbound], []
        return [], [query.outbound] if exists else []
    if query.external is not None:
        found = store.by_external(conn, *query.external)
        return [found] if found is not None else [], []
    return [query.inbound] if query.inbound is not None else [], []


def _inbound(index: KeywordIndex, row: dict, parts: list[dict], dead: list[dict]
             ) -> dict[str, Any]:
    received: dt.datetime = row["received_at"]
    purged = row["purged_at"] is not None
    sent = [p["sent_at"] for p in parts if p["sent_at"] is not None]
    delivered = [p["delivery_at"] for p in parts if p["delivery"] == "delivered"]
    complete = bool(parts) and len(sent) == len(parts)
    return {
        "kind": "inbound", "id": row["id"], "at": received.isoformat(),
        "from": mask_numbers(row["sender"]), "to": row["shortcode"],
        "link": row["source"], "external_id": mask_numbers(row["external_id"]),
        "state": row["state"], "purged": purged,
        "parsed": None if purged else _parsed(index, row["shortcode"], row["text"]),
        "service": row["service"], "suppressed": row["suppressed"],
        "replies": [_part(p, received) for p in parts],
        "dead_letters": [_dead(d) for d in dead],
        "received_to_sent_s": _seconds(received, max(sent)) if complete else None,
        "received_to_delivered_s": (_seconds(received, max(delivered))
                                    if parts and len(delivered) == len(parts) else None),
    }


def _own(parts: list[dict], dead: list[dict]) -> dict[str, Any]:
    first = parts[0]
    return {"kind": "sms", "id": first["id"], "at": first["created_at"].isoformat(),
            "to": mask_numbers(first["recipient"]), "from": first["sender"],
            "client": first["client"], "service": first["service"],
            "outcome": first["outcome"], "purged": first["purged_at"] is not None,
            "replies": [_part(p, first["created_at"]) for p in parts],
            "dead_letters": [_dead(d) for d in dead]}


def _parsed(index: KeywordIndex, shortcode: str, text: str) -> dict[str, Any]:
    result = index.parse(shortcode, text).as_dict()
    if "args" in result:
        result["args"] = {name: None if value is None else mask_plate(value)
                          if "plate" in name else mask_numbers(str(value))
                          for name, value in result["args"].items()}
    return {**result, "characters": len(text)}


def _part(part: dict, start: dt.datetime) -> dict[str, Any]:
    text = ("(purged)" if part["purged_at"] is not None else "(sealed)" if part["sealed"]
            # A client's own text may carry anything (names, addresses): only its length.
            else f"(the client's text, {len(part['text'])} characters)"
            if part["client"] and not part["service"] else mask_numbers(part["text"]))
    return {"id": part["id"], "part": part["part"], "parts": part["parts"], "text": text,
            "outcome": part["outcome"], "state": part["state"], "attempts": part["attempts"],
            "operator_id": part["transport_id"], "error": part["error"],
            "possible_duplicate": part["possible_duplicate"], "delivery": part["delivery"],
            **{name.removesuffix("_at") + "_s": _seconds(start, part[name])
               for name in _PART_TIMES}}


def _dead(letter: dict) -> dict[str, Any]:
    return {"id": letter["id"], "task": letter["task"], "reason": mask_numbers(letter["reason"]),
            "at": letter["created_at"].isoformat(),
            "replayed_at": letter["replayed_at"].isoformat() if letter["replayed_at"] else None,
            "replayed_as": letter["replayed_as"]}


def _seconds(start: dt.datetime, end: dt.datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds(), 3)


def render(items: list[dict[str, Any]]) -> str:
    """The timelines as text, one block a message."""
    lines: list[str] = []
    for item in items:
        if item["kind"] == "inbound":
            lines.append(f"inbound {item['id']}  {item['at']}  from {item['from']} to "
                         f"{item['to']} via {item['link']} (id {item['external_id']})  "
                         f"[{item['state']}]" + ("  (purged)" if item["purged"] else ""))
            if item["parsed"] is not None:
                parsed = item["parsed"]
                what = (f"{parsed['service'] or 'no service'}: {parsed['error']}"
                        if "error" in parsed else
                        f"{parsed['service']} {parsed['args']}")
                lines.append(f"  parsed: {what} ({parsed['characters']} characters)")
            if item["suppressed"]:
                lines.append(f"  suppressed: {item['suppressed']} (no reply, by design)")
        else:
            lines.append(f"sms {item['id']}  {item['at']}  to {item['to']} from {item['from']}"
                         f"  ({item['service'] or 'client ' + str(item['client'])}"
                         f"{'.' + item['outcome'] if item['outcome'] else ''})")
        for part in item["replies"]:
            lines.append(_part_line(part))
        for letter in item["dead_letters"]:
            replay = (f"; replayed {letter['replayed_at']} as inbound {letter['replayed_as']}"
                      if letter["replayed_at"] else "; not replayed")
            lines.append(f"  dead letter {letter['id']} ({letter['task']}): {letter['reason']}"
                         f"{replay}")
        if item["kind"] == "inbound" and item["replies"]:
            lines.append(f"  received -> sent {_s(item['received_to_sent_s'])}, received -> "
                         f"delivered {_s(item['received_to_delivered_s'])}")
    return "\n".join(lines) if lines else "no messages"


def _part_line(part: dict[str, Any]) -> str:
    times = ", ".join(f"{name} +{part[name + '_s']:.3f} s" for name in
                      ("created", "claimed", "sent", "delivery") if part[name + "_s"] is not None)
    extra = "".join([
        f"; operator id {part['operator_id']}" if part["operator_id"] else "",
        f"; receipt {part['delivery']}" if part["delivery"] else "",
        f"; {part['attempts']} attempts" if part["attempts"] > 1 else "",
        f"; error {part['error']}" if part["error"] else "",
        "; POSSIBLE DUPLICATE" if part["possible_duplicate"] else ""])
    return (f"  reply part {part['part']}/{part['parts']} (outbound {part['id']}, "
            f"{part['outcome'] or '-'}) [{part['state']}]: {times}{extra}\n"
            f"    {part['text']}")


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f} s"
