"""Kannel's ceiling as `make bench` measures it, for about two seconds: a positive rate and CPU
per reply, and its keys in what the bench writes. Nothing here asserts a speed."""

from __future__ import annotations

import json
import time

import pytest

from bench import kannel
from bench import report as written

pytestmark = pytest.mark.skipif(kannel.missing() is not None, reason=str(kannel.missing()))


@pytest.mark.timeout(60)
def test_kannels_ceiling_is_measured_and_written() -> None:
    started = time.monotonic()
    result = kannel.measure(1.0, e2e_rate=None, through=False, log=lambda line: None)
    assert time.monotonic() - started < 20

    figures = result["figures"]
    assert set(figures) == set(kannel.FIGURES)
    assert figures["kannel_ceiling_msgs_per_s"] is not None, result["details"]
    assert figures["kannel_ceiling_msgs_per_s"] > 0
    assert figures["kannel_cpu_ms_per_msg"] > 0
    assert figures["kannel_e2e_msgs_per_s"] is None  # not asked for: None, never a guess
    ceiling = result["details"]["ceiling"]
    assert ceiling["unreliable"] is None
    assert ceiling["drained"] and ceiling["replies"] == ceiling["mos"] > 0
    assert ceiling["waiting_at_window_end"] > 0  # Kannel was still busy when the window closed
    assert set(ceiling["cpu_ms_per_reply_by_process"]) == {"bearerbox", "smsbox", "fakesmsc"}

    # As bench.measure.run writes them: the figures beside the details, in JSON and the text.
    report = json.loads(json.dumps({**figures, "details": {"kannel": result["details"]}}))
    assert report["kannel_ceiling_msgs_per_s"] == figures["kannel_ceiling_msgs_per_s"]
    text = written.kannel_method(report)
    assert "`kannel_ceiling_msgs_per_s`: Debian's Kannel on its own" in text
    assert f"{ceiling['replies']:,} replies received" in text
    assert "`kannel_e2e_msgs_per_s`, `kannel_burst_sla_ok_ratio`: not measured" in text
    assert written.kannel_section(report) == ""


def test_the_deployed_smsbox_conf_is_what_kannel_runs(tmp_path) -> None:
    """The through-Kannel run takes deploy/kannel/smsbox.conf whole: only this run's ports,
    the ingest's address, the token, the password and the log files are put in."""
    deployed = kannel.Deployed.read()
    ports = kannel.Ports.free()
    text = deployed.config(tmp_path, ports, smsc_id="bench-x-steady1",
                           ingest="http://127.0.0.1:4321", token="tok-en", password="pw")
    assert 'get-url = "http://127.0.0.1:4321/sms/inbound?' in text and "token=tok-en" in text
    assert "TOKEN" not in text and "PASSWORD" not in text and ":8080" not in text
    assert f"sendsms-port = {ports.sendsms}" in text and f"bearerbox-port = {ports.smsbox}" in text
    assert "smsc-id = bench-x-steady1" in text
    for group, key in (("smsbox", "http-request-retry"), ("smsbox", "mo-recode"),
                       ("smsbox", "log-level"),
                       ("sms-service", "catch-all"), ("sms-service", "max-messages"),
                       ("sendsms-user", "concatenation")):
        assert f"{key} = {deployed.get(group, key)}" in text


def test_replies_are_counted_whole_at_the_phone(tmp_path) -> None:
    """fakesmsc logs every SMS it gets; a reply Kannel split counts once, at its last part."""
    log = tmp_path / "fakesmsc.log"
    log.write_bytes(
        b"2026-01-01 00:00:00 [1] [0] DEBUG: fakesmsc: sent message 1\n"
        b"2026-01-01 00:00:00 [1] [0] DEBUG: fakesmsc: sent message 2\n"
        b"2026-01-01 00:00:00 [1] [0] DEBUG: Got message 1: <1414 +77011230001 text ok>\n"
        b"2026-01-01 00:00:00 [1] [0] DEBUG: Got message 2: <1414 +77011230002 udh "
        b"%05%00%03%A7%02%01 data abc>\n"
        b"2026-01-01 00:00:00 [1] [0] DEBUG: Got message 3: <1414 +77011230002 udh "
        b"%05%00%03%A7%02%02 data def>\n"
        b"2026-01-01 00:00:00 [1] [0] INFO: Got message 4: <1414 +7701123")  # not yet whole
    phone = kannel.Phone(child=None, log_path=log, count=3, started=0.0)  # type: ignore[arg-type]
    _, sent, replies = phone.read()
    assert (sent, phone.got, replies) == (2, 3, 2)
    with log.open("ab") as f:
        f.write(b"0003>\n")
        f.write(b"2026-01-01 00:00:01 [1] [0] INFO: fakesmsc: sent message 3\n")
        # What it logs when it stops is no MO count.
        f.write(b"2026-01-01 00:00:01 [1] [0] INFO: fakesmsc: 3 messages sent and 4 received\n"
                b"2026-01-01 00:00:01 [1] [0] INFO: fakesmsc: from first to last sent message "
                b"2.4 s, 400.0 msgs/s\n")
    assert phone.read()[1:] == (3, 3)
