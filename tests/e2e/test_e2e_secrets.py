"""No secret and no unmasked number in anything the gateway writes, with every transport.

One gateway per transport (file, Kannel, SMPP): 8188 issues a password, the client API
sends a one-time code and a notice; then every log file of the gateway, the banner of
`govsms run`, the file transport's outbox and the logs of the peers that carry the texts
as deployed (Kannel's bearerbox and smsbox, with deploy/kannel/smsbox.conf's log settings)
are scanned for the bridge secret, the transport's password, the password, the code, the
notice's text and unmasked numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.support.gateway import PORTAL_SECRET, Gateway, gateway_settings, wait_for
from tests.support.keys import SECRET
from tests.support.peers import kannel as kannel_peer
from tests.support.peers.smsc import running_smsc
from tests.support.servers import claimed_redis_db
from workers.local import run

pytestmark = pytest.mark.e2e

CITIZEN, LOCAL_CITIZEN, PHONE, IIN = "+84905123456", "0905123456", "+77011234567", "880102300452"
NOTICE_TO, NOTICE = "+77019998877", "Vash dokument gotov k vydache v CON nomer 4"
# What the scenario passes through: 8188 registration, codes (outbound), the notice (bulk).
PROCESSES = ("ingest", "worker-inbound", "worker-svc.account_registration", "worker-outbound",
             "worker-bulk")
SMPP_PASSWORD = "smPw-831"  # SMPP 3.4 passwords are at most 8 characters
# A number of 10 to 15 digits in a row (a masked one has `***` in the middle).
UNMASKED = re.compile(r"(?<![\w-])\+?\d{10,15}(?![\w-])")
# What of the numbers above only an unmasked form shows, in one run or in groups.
UNMASKED_PARTS = ("1234567", "123-45-67", "123 4567", "905123456", "905 123 456", "9998877",
                  "300452")


@dataclass
class Link:
    """A gateway on one transport, and what reached the phones through it."""

    gw: Gateway
    password: str | None
    texts_to: Callable[[str], list[str]]
    peer_logs: Callable[[], dict[str, str]] = dict


def _kannel_link(gw: Gateway, folder: Path) -> Iterator[Link]:
    if kannel_peer.missing() is not None:
        pytest.skip(kannel_peer.missing())
    peer = kannel_peer.Kannel(folder / "kannel", gw.settings.ingest_url, SECRET)
    (folder / "kannel").mkdir(exist_ok=True)
    # The delivery reports come back with the bridge token in the dlr-url's query.
    dlr = quote(f"{gw.settings.ingest_url}/sms/dlr?token={SECRET}&outbound={{outbound_id}}"
                "&type=%d", safe="")
    gw.settings = gw.settings.model_copy(update={"transport": f"{peer.transport_url}?dlr-url={dlr}"})
    peer.start()
    try:
        yield Link(gw.start(PROCESSES), kannel_peer.SENDSMS_PASSWORD,
                   lambda phone: [r.text() for r in peer.received() if r.receiver == phone],
                   peer.logs)
    finally:
        gw.stop()
        peer.stop()


def _smpp_link(gw: Gateway) -> Iterator[Link]:
    for smsc in running_smsc():
        gw.settings = gw.settings.model_copy(update={
            "transport": f"smpp://govsms-tx:{SMPP_PASSWORD}@127.0.0.1:{smsc.port}"
                         "?mode=transmitter&tps=50"})
        try:
            yield Link(gw.start(PROCESSES), SMPP_PASSWORD, lambda phone: [
                s.text for s in smsc.submits if s.destination_addr == phone.lstrip("+")])
        finally:
            gw.stop()


@pytest.fixture(params=["file", "kannel", "smpp"])
def link(request, database_url: str, redis_server: str, tmp_path: Path, conn) -> Iterator[Link]:
    folder = tmp_path / "gateway"
    folder.mkdir()
    with claimed_redis_db(redis_server) as redis_url:
        gw = Gateway(gateway_settings(database_url, redis_url, folder, SECRET), folder)
        if request.param == "file":
            try:
                yield Link(gw.start(PROCESSES), None,
                           lambda phone: [s["text"] for s in gw.sent() if s["to"] == phone])
            finally:
                gw.stop()
        elif request.param == "kannel":
            yield from _kannel_link(gw, tmp_path)
        else:
            yield from _smpp_link(gw)


def _one(link: Link, phone: str, what: str) -> str:
    return wait_for(lambda: link.texts_to(phone), 30, what)[0]


def test_no_secret_or_number_in_logs_banner_or_outbox(link, capsys):
    gw = link.gw
    base, portal = gw.settings.ingest_url, {"Authorization": f"Bearer {PORTAL_SECRET}"}
    gw.post(**{"from": LOCAL_CITIZEN, "to": "8188", "id": "secrets-1",
               "text": "TK, Nguyễn Văn An ; 123456789 ; 01/02/1990"})
    issued = _one(link, CITIZEN, "the 8188 account")
    password = re.search(r"MK: (\S+) la tai khoan", issued)[1]
    # The number as a person writes it: the logs must not show it in any form.
    assert httpx.post(f"{base}/v1/otp", headers=portal, json={
        "phone": "8 (701) 123-45-67", "purpose": "link_number", "iin": IIN}).status_code == 202
    code = re.search(r"Kod: (\d{6})", _one(link, PHONE, "the code"))[1]
    assert httpx.post(f"{base}/v1/otp/verify", headers=portal,
                      json={"phone": "+7 701 123 4567", "code": code}).json()["ok"] is True
    assert httpx.post(f"{base}/v1/messages/outbound", headers={**portal, "Idempotency-Key": "s1"},
                      json={"to": NOTICE_TO, "text": NOTICE, "sender": "EGOV"}).status_code == 202
    assert _one(link, NOTICE_TO, "the notice") == NOTICE

    run._print_banner(gw.settings, gw.settings.redis_url or "", gw.settings.database_url or "",
                      gw.logs)
    banner = capsys.readouterr().out
    logs = {path.name: path.read_text(errors="replace") for path in gw.logs.glob("*.log")}
    logs.update(link.peer_logs())
    outbox = gw.settings.outbox.read_text() if gw.settings.outbox.exists() else ""
    assert set(logs) >= {"ingest.log", "worker-outbound.log", "worker-inbound.log"}
    secrets = {"the bridge secret": SECRET, "the password": password, "the code": code,
               "the portal's secret": PORTAL_SECRET,
               **({"the transport's password": link.password} if link.password else {})}
    found = [(what, where) for what, value in secrets.items()
             for where, text in {**logs, "banner": banner, "outbox": outbox}.items()
             if value in text]
    assert found == []
    texts = [(name, piece) for name, text in logs.items()
             for piece in (NOTICE, "MK:", "Kod:", "Nguyễn") if piece in text]
    assert texts == []
    unmasked = [(name, m[0]) for name, text in logs.items() for m in UNMASKED.finditer(text)]
    assert unmasked == []
    parts = [(name, part) for name, text in logs.items() for part in UNMASKED_PARTS
             if part in text]
    assert parts == []
