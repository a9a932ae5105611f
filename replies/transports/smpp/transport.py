"""The SMPP transport: each SMS submitted over one bind, in parts, under the link's rate limit."""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis
import smpplib.client
import smpplib.consts as c

from replies import encoding
from replies.masking import mask_digits
from replies.transports.base import RateLimited, Sms, TransportError
from replies.transports.smpp.config import SmppConfig, address
from replies.transports.smpp.link import OnDeliver, Pdu, SmppLink, status_name
from replies.transports.smpp.unanswered import Doubt, PartKey, Unanswered
from replies.transports.throttle import Bucket, Connect, bucket, connect_plain

log = logging.getLogger(__name__)

# The operator asks us to slow down: pause the link, then retry.
SLOW_DOWN = {c.SMPP_ESME_RTHROTTLED: "ESME_RTHROTTLED", c.SMPP_ESME_RMSGQFUL: "ESME_RMSGQFUL"}
# Trying again later may help; every other status is final for this SMS.
TEMPORARY = {c.SMPP_ESME_RSYSERR: "ESME_RSYSERR", c.SMPP_ESME_RX_T_APPN: "ESME_RX_T_APPN",
             c.SMPP_ESME_RSUBMITFAIL: "ESME_RSUBMITFAIL", c.SMPP_ESME_RUNKNOWNERR: "ESME_RUNKNOWNERR",
             c.SMPP_ESME_RINVBNDSTS: "ESME_RINVBNDSTS"}


class SmppTransport:
    """Submits each SMS (split into concatenated parts as needed) over one SMPP bind."""

    def __init__(self, config: SmppConfig, *, limit: Bucket | None = None,
                 unanswered: Unanswered | None = None, on_deliver: OnDeliver | None = None,
                 client_factory: Callable[..., smpplib.client.Client] = smpplib.client.Client,
                 connect: Connect = connect_plain) -> None:
        if config.mode not in ("transmitter", "transceiver"):
            raise ValueError("the SMPP transport binds as transmitter or transceiver")
        self.config = config
        self.limit = limit or bucket(config.name, config.tps, config.burst, config.redis_url,
                                     connect=connect)
        self.unanswered = unanswered or Unanswered(config.name, config.redis_url,
                                                   connect=connect)
        self.link = SmppLink(config, config.mode, on_deliver=on_deliver,
                             client_factory=client_factory)
        # Parts of a self-split SMS the SMSC already took, so a retry sends only the rest.
        self._accepted: OrderedDict[PartKey, str] = OrderedDict()

    @classmethod
    def from_url(cls, url: str, *, redis_url: str | None = None,
                 connect: Connect = connect_plain) -> SmppTransport:
        """From `smpp://SYSTEM_ID:PASSWORD@HOST:PORT?options` (see SmppConfig)."""
        return cls(SmppConfig.from_url(url, redis_url=redis_url), connect=connect)

    def set_on_deliver(self, handler: OnDeliver | None) -> None:
        """Who takes deliver_sm arriving on a transceiver bind (the SMPP ingest's handler)."""
        self.link.on_deliver = handler

    def _requests(self, sms: Sms) -> list[tuple[PartKey, dict[str, Any]]]:
        """(key, submit_sm fields) per part of `sms`."""
        source, source_ton, source_npi = address(sms.sender, self.config.source_ton,
                                                 self.config.source_npi)
        dest, dest_ton, dest_npi = address(sms.recipient, self.config.dest_ton,
                                           self.config.dest_npi)
        common = {"source_addr": source, "source_addr_ton": source_ton,
                  "source_addr_npi": source_npi, "destination_addr": dest,
                  "dest_addr_ton": dest_ton, "dest_addr_npi": dest_npi,
                  "registered_delivery": self.config.registered_delivery}
        try:
            if sms.parts > 1:   # one part the caller split: the whole text's coding and reference
                coding = sms.coding or encoding.coding_of(sms.text)
                reference = sms.outbound_id & 0xFF if sms.reference is None else sms.reference
                chunks = [(sms.part, encoding.concat_udh(reference, sms.parts, sms.part)
                           + encoding.encode(sms.text, coding))]  # type: ignore[arg-type]
            else:
                segmented = encoding.split(sms.text, sms.coding)  # type: ignore[arg-type]
                coding = segmented.coding
                reference = sms.outbound_id & 0xFF if sms.reference is None else sms.reference
                total = len(segmented.parts)
                chunks = [(n, (encoding.concat_udh(reference, total, n) if total > 1 else b"")
                           + encoding.encode(text, coding))
                          for n, text in enumerate(segmented.parts, 1)]
        except encoding.EncodingError as error:
            raise TransportError(f"cannot encode: {error}", retryable=False) from error
        data_coding = encoding.DATA_CODING[coding]  # type: ignore[index]
        concatenated = sms.parts > 1 or len(chunks) > 1
        return [((sms.outbound_id, n), {**common, "short_message": payload,
                                        "data_coding": data_coding,
                                        "esm_class": encoding.UDHI if concatenated else 0})
                for n, payload in chunks]

    def send(self, sms: Sms) -> str | None:
        """Submit every part not yet taken; the SMSC's message ids, comma-separated.

        A part whose submit went unanswered is in doubt: its late answer, when one
        comes, records it as taken; it is sent again only `resend_after_s` after,
        and once at most (see `_in_doubt`).
        """
        parts = self._requests(sms)
        doubts = self._doubts([key for key, _ in parts if key not in self._accepted])
        pending: list[tuple[PartKey, dict[str, Any]]] = []
        for key, request in parts:
            if key in self._accepted:
                continue
            doubt = doubts.get(key)
            if doubt is not None and doubt.message_id:
                self._remember(key, doubt.message_id)   # its answer came late: taken
                continue
            if doubt is not None and doubt.unanswered > 0:
                self._in_doubt(sms, key, doubt)
            pending.append((key, request))
        step = max(1, self.config.window)
        for start in range(0, len(pending), step):
            batch = pending[start:start + step]
            self.limit.acquire(len(batch), timeout=self.config.max_wait_s)
            responses = self.link.submit([request for _, request in batch],
                                         late=functools.partial(self._late, batch))
            self.link.start(reconnect=self.config.mode == "transceiver")   # keep-alive from now on
            self._record(sms, batch, responses)
        ids = [self._accepted.pop(key) for key, _ in parts]
        self._forget(list(doubts))
        log.debug("smpp %s took SMS %s to %s in %d part(s)", self.config.name, sms.outbound_id,
                  mask_digits(sms.recipient), len(ids))
        return ",".join(ids)

    def _doubts(self, keys: list[PartKey]) -> dict[PartKey, Doubt]:
        try:
            return self.unanswered.get(keys)
        except redis.RedisError as error:
            raise RateLimited(f"record of unanswered submits unavailable: "
                              f"{type(error).__name__}", retry_after=1.0) from error

    def _forget(self, keys: list[PartKey]) -> None:
        try:
            self.unanswered.forget(keys)
        except redis.RedisError as error:   # the SMS is sent: a stale doubt only expires later
            log.warning("smpp %s: doubts about %s kept: %s", self.config.name, keys,
                        type(error).__name__)

    def _in_doubt(self, sms: Sms, key: PartKey, doubt: Doubt) -> None:
        """Hold a part back while its late answer may come; let it go again once only."""
        waited = time.time() - doubt.since
        if doubt.unanswered >= 2:
            raise RateLimited(f"part {key[1]} submitted twice without an answer: not sent "
                              f"again, waiting for a late answer",
                              retry_after=self.config.resend_after_s, in_doubt=True)
        if waited < self.config.resend_after_s:
            raise RateLimited(f"part {key[1]} unanswered {waited:.1f} s ago: waiting for a "
                              f"late answer", retry_after=self.config.resend_after_s - waited,
                              in_doubt=True)
        log.warning("smpp %s: SMS %s part %d to %s sent again though the SMSC may have it "
                    "(its submit went unanswered): a possible duplicate", self.config.name,
                    sms.outbound_id, key[1], mask_digits(sms.recipient))

    def _record(self, sms: Sms, batch: list[tuple[PartKey, dict[str, Any]]],
                responses: list[Pdu | None]) -> None:
        """Keep what the SMSC took; raise for what it refused or left unanswered."""
        failure: Pdu | None = None
        unanswered: list[PartKey] = []
        # Parts after an unanswered one were not sent: zip stops with the responses.
        for (key, _), response in zip(batch, responses, strict=False):
            if response is None:
                unanswered.append(key)
            elif response.status == c.SMPP_ESME_ROK and response.command == "submit_sm_resp":
                self._remember(key, _text(response.message_id))
            elif failure is None:
                failure = response
        if unanswered:
            try:
                self.unanswered.went_unanswered(unanswered)
            except redis.RedisError as error:   # a retry then sends it again, unflagged
                log.error("smpp %s: unanswered submits of SMS %s not recorded: %s",
                          self.config.name, sms.outbound_id, type(error).__name__)
            log.warning("smpp %s: SMS %s to %s: no answer to submit_sm in %.1f s; the SMSC "
                        "may have taken it", self.config.name, sms.outbound_id,
                        mask_digits(sms.recipient), self.config.timeout_s)
            raise TransportError(f"no answer to submit_sm in {self.config.timeout_s:.1f} s "
                                 f"(in doubt)", retryable=True, in_doubt=True)
        if failure is not None:
            self._fail(sms, failure)

    def _late(self, batch: list[tuple[PartKey, dict[str, Any]]], index: int, pdu: Pdu) -> None:
        """An answer that came after its submit was given up: record what it says."""
        key = batch[index][0]
        taken = pdu.status == c.SMPP_ESME_ROK and pdu.command == "submit_sm_resp"
        message_id = _text(pdu.message_id) if taken else None
        self.unanswered.answered_late(key, message_id)
        log.warning("smpp %s: late answer for SMS %s part %d: %s", self.config.name, key[0],
                    key[1], f"taken as {message_id}" if taken else status_name(pdu.status))

    def _remember(self, key: PartKey, message_id: str) -> None:
        self._accepted[key] = message_id
        while len(self._accepted) > 10_000:
            self._accepted.popitem(last=False)

    def _fail(self, sms: Sms, response: Pdu) -> None:
        status = response.status
        reason = f"SMSC answered {status_name(status)} to {response.command}"
        if status in SLOW_DOWN:
            self.limit.pause(self.config.throttle_pause_s)
            log.warning("smpp %s: %s, holding the link off %.1f s", self.config.name,
                        SLOW_DOWN[status], self.config.throttle_pause_s)
            raise RateLimited(reason, retry_after=self.config.throttle_pause_s)
        log.warning("smpp %s: SMS %s to %s refused: %s", self.config.name, sms.outbound_id,
                    mask_digits(sms.recipient), reason)
        raise TransportError(reason, retryable=status in TEMPORARY)

    def close(self) -> None:
        """Unbind and close the link."""
        self.link.close()


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.rstrip(b"\x00").decode("ascii", errors="replace")
    return value or ""


__all__ = ["SmppTransport"]
