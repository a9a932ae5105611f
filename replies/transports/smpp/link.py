"""SMPP 3.4 to the operator's SMSC (smpplib): bind, submit_sm, keep-alive, reconnect, rate limit.

URL: `smpp://SYSTEM_ID:PASSWORD@HOST:PORT?mode=transmitter&tps=20&...`, options in
`SmppConfig` (and docs/delivery.md). One `SmppLink` is one bind; the transport
submits on it, the SMPP ingest (workers/smpp_ingest.py) receives on one.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import smpplib.client
import smpplib.command
import smpplib.consts as c
import smpplib.exceptions
import smpplib.smpp

from replies import encoding
from replies.masking import mask_digits
from replies.transports.base import RateLimited, Sms, TransportError
from replies.transports.throttle import Bucket, bucket

log = logging.getLogger(__name__)

Mode = Literal["transmitter", "receiver", "transceiver"]
Pdu = smpplib.command.Command
OnDeliver = Callable[[Pdu], int]

# The operator asks us to slow down: pause the link, then retry.
SLOW_DOWN = {c.SMPP_ESME_RTHROTTLED: "ESME_RTHROTTLED", c.SMPP_ESME_RMSGQFUL: "ESME_RMSGQFUL"}
# Trying again later may help; every other status is final for this SMS.
TEMPORARY = {c.SMPP_ESME_RSYSERR: "ESME_RSYSERR", c.SMPP_ESME_RX_T_APPN: "ESME_RX_T_APPN",
             c.SMPP_ESME_RSUBMITFAIL: "ESME_RSUBMITFAIL", c.SMPP_ESME_RUNKNOWNERR: "ESME_RUNKNOWNERR",
             c.SMPP_ESME_RINVBNDSTS: "ESME_RINVBNDSTS"}
NAMES = {value: name.removeprefix("SMPP_") for name, value in vars(c).items()
         if name.startswith("SMPP_ESME_R")}
UDHI = 0x40
RESPONSES = {"submit_sm_resp", "generic_nack", "enquire_link_resp", "unbind_resp"}
# A part of an SMS: (outbound id, part number).
PartKey = tuple[int, int]
# Errors that mean the socket or the session is gone.
LINK_ERRORS = (OSError, smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError,
               smpplib.exceptions.UnknownCommandError, AttributeError)


def status_name(status: int) -> str:
    """`ESME_RTHROTTLED (0x58)` for 0x58."""
    return f"{NAMES.get(status, 'status')} (0x{status:02X})"


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


@dataclass(frozen=True, slots=True)
class Doubt:
    """What is known of a part whose submit_sm went unanswered."""

    unanswered: int       # its submits with no answer yet (a late refusal takes one off)
    since: float          # when the latest of them went out (epoch seconds)
    message_id: str = ""  # the SMSC's id, once a late answer said it took the part


class Unanswered:
    """The parts whose submit_sm got no answer in time, for every process on the link.

    Their answer may still come, on the bind that sent them, while the part is being
    retried by another process: so they are kept in Redis when the link has one
    (else in this process), a day at most.
    """

    TTL_S = 86_400
    LOCAL_MAX = 10_000

    def __init__(self, name: str, redis_url: str | None = None) -> None:
        self._prefix = f"govsms:smpp:{name}:unanswered:"
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5) if redis_url else None
        self._local: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def _name(self, key: PartKey) -> str:
        return f"{self._prefix}{key[0]}:{key[1]}"

    def _update(self, key: PartKey, *, add: int = 0, message_id: str = "") -> None:
        name = self._name(key)
        if self._redis is not None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hincrby(name, "unanswered", add)
            if add > 0:
                pipe.hset(name, "since", repr(time.time()))
            if message_id:   # the first answer that came is the one recorded
                pipe.hsetnx(name, "message_id", message_id)
            pipe.expire(name, self.TTL_S)
            pipe.execute()
            return
        with self._lock:
            fields = self._local.setdefault(name, {})
            fields["unanswered"] = str(int(fields.get("unanswered", "0")) + add)
            if add > 0:
                fields["since"] = repr(time.time())
            if message_id:
                fields.setdefault("message_id", message_id)
            while len(self._local) > self.LOCAL_MAX:
                self._local.popitem(last=False)

    def went_unanswered(self, keys: list[PartKey]) -> None:
        """These parts were submitted and no answer came in time."""
        for key in keys:
            self._update(key, add=1)

    def answered_late(self, key: PartKey, message_id: str | None) -> None:
        """A late answer: the SMSC took the part (its id), or refused it (None)."""
        if message_id:
            self._update(key, message_id=message_id)
        else:
            self._update(key, add=-1)

    def get(self, keys: list[PartKey]) -> dict[PartKey, Doubt]:
        """The doubts about these parts, for those that have one."""
        names = [self._name(key) for key in keys]
        if self._redis is not None:
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            found = [{k.decode(): v.decode() for k, v in row.items()} for row in pipe.execute()]
        else:
            with self._lock:
                found = [dict(self._local.get(name, {})) for name in names]
        return {key: Doubt(int(f.get("unanswered", "0")), float(f.get("since", "0")),
                           f.get("message_id", ""))
                for key, f in zip(keys, found, strict=True) if f}

    def forget(self, keys: list[PartKey]) -> None:
        """The parts were recorded as sent: nothing is in doubt any more."""
        names = [self._name(key) for key in keys]
        if not names:
            return
        if self._redis is not None:
            self._redis.delete(*names)
            return
        with self._lock:
            for name in names:
                self._local.pop(name, None)


class SmppLink:
    """One bind to the SMSC: bound on demand with backoff, kept alive, answering what it is sent.

    Every use of the socket holds `lock`; a background thread reads what the SMSC
    sends unasked (enquire_link, deliver_sm, unbind, answers that came too late) and
    sends enquire_link when idle.
    """

    def __init__(self, config: SmppConfig, mode: Mode, *, on_deliver: OnDeliver | None = None,
                 client_factory: Callable[..., smpplib.client.Client] = smpplib.client.Client
                 ) -> None:
        self.config = config
        self.mode = mode
        self.on_deliver = on_deliver
        self.lock = threading.RLock()
        self._factory = client_factory
        self._client: smpplib.client.Client | None = None
        self._backoff = config.reconnect_min_s
        self._retry_at = 0.0
        self._last_io = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Submits whose answer did not come in time, by sequence: who takes it if it does.
        self._late: OrderedDict[int, Callable[[Pdu], None]] = OrderedDict()
        self.binds = 0   # successful binds so far, for logs and tests

    @property
    def bound(self) -> bool:
        """Whether a bind is up right now."""
        return self._client is not None

    def client(self) -> smpplib.client.Client:
        """The bound client, binding first if need be; TransportError (retryable) while it cannot."""
        with self.lock:
            if self._client is not None:
                return self._client
            now = time.monotonic()
            if now < self._retry_at:
                raise TransportError(f"smpp {self.config.name} down, next bind in "
                                     f"{self._retry_at - now:.1f} s", retryable=True)
            client = self._factory(self.config.host, self.config.port,
                                   timeout=self.config.timeout_s, allow_unknown_opt_params=True,
                                   logger_name=f"smpp.{self.mode}")
            try:
                client.connect()
                getattr(client, f"bind_{self.mode}")(
                    system_id=self.config.system_id, password=self.config.password,
                    system_type=self.config.system_type, interface_version=0x34)
            except LINK_ERRORS as error:
                self._close(client)
                self._retry_at = now + self._backoff
                self._backoff = min(self._backoff * 2, self.config.reconnect_max_s)
                reason = error.args[0] if error.args else type(error).__name__
                log.warning("smpp %s bind as %s failed: %s", self.config.name, self.mode, reason)
                raise TransportError(f"smpp {self.config.name} bind failed: {reason}",
                                     retryable=True) from error
            self._client, self._backoff, self._last_io = client, self.config.reconnect_min_s, now
            self.binds += 1
            log.info("smpp %s bound as %s", self.config.name, self.mode)
            return client

    def submit(self, requests: list[dict[str, Any]], *,
               late: Callable[[int, Pdu], None] | None = None) -> list[Pdu | None]:
        """Send each submit_sm, at most `window` awaiting a response; their responses, in order.

        None stands for a response that did not come within `timeout_s`: the SMSC may
        have taken that submit all the same, so the link stays up and the answer, if it
        comes later, goes to `late(index, pdu)`. Requests after it are not sent, and
        the list stops there.
        """
        with self.lock:
            client = self.client()
            responses: list[Pdu | None] = []
            waiting: dict[int, tuple[int, float]] = {}   # sequence -> (index, answer due by)
            try:
                while len(responses) < len(requests) or waiting:
                    while (len(responses) < len(requests)
                           and len(waiting) < max(1, self.config.window)):
                        pdu = client.send_message(**requests[len(responses)])
                        waiting[pdu.sequence] = (len(responses),
                                                 time.monotonic() + self.config.timeout_s)
                        responses.append(None)
                    due = min(at for _, at in waiting.values())
                    response = self._read_response(client, until=due)
                    if response is None:
                        break
                    if response.sequence in waiting:
                        responses[waiting.pop(response.sequence)[0]] = response
            except LINK_ERRORS as error:
                self.drop(f"{type(error).__name__} during submit")
                raise TransportError(f"smpp {self.config.name} link lost during submit",
                                     retryable=True) from error
            for sequence, (index, _) in waiting.items():
                self._expect_late(sequence, functools.partial(late, index) if late else None)
            return responses

    def _expect_late(self, sequence: int, handler: Callable[[Pdu], None] | None) -> None:
        self._late[sequence] = handler or (lambda pdu: None)
        while len(self._late) > 10_000:
            self._late.popitem(last=False)

    def _read_response(self, client: smpplib.client.Client, until: float) -> Pdu | None:
        """The next response PDU before `until` (monotonic), else None; requests the SMSC
        sends meanwhile are answered, and answers that came too late handed over."""
        while (remaining := until - time.monotonic()) > 0 and _readable(client, remaining):
            pdu = self._read(client)
            if pdu is not None:
                return pdu
        return None

    def _read(self, client: smpplib.client.Client) -> Pdu | None:
        """Read one PDU: a response someone may wait for, else None (dealt with here)."""
        pdu = client.read_pdu()
        self._last_io = time.monotonic()
        if not _is_response(pdu):
            self._answer(client, pdu)
            return None
        handler = self._late.pop(pdu.sequence, None)
        if handler is None:
            return pdu
        try:
            handler(pdu)
        except Exception:  # recording a late answer must not take the link down
            log.exception("smpp %s: a late %s not recorded", self.config.name, pdu.command)
        return None

    def _answer(self, client: smpplib.client.Client, pdu: Pdu) -> None:
        if pdu.command == "enquire_link":
            reply = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
        elif pdu.command == "deliver_sm":
            status = self._delivered(pdu)
            reply = smpplib.smpp.make_pdu("deliver_sm_resp", client=client, status=status)
        elif pdu.command == "unbind":
            reply = smpplib.smpp.make_pdu("unbind_resp", client=client)
            reply.sequence = pdu.sequence
            client.send_pdu(reply)
            raise smpplib.exceptions.ConnectionError("the SMSC unbound")
        elif pdu.command == "alert_notification":
            return
        else:
            reply = smpplib.smpp.make_pdu("generic_nack", client=client,
                                          status=c.SMPP_ESME_RINVCMDID)
        reply.sequence = pdu.sequence
        client.send_pdu(reply)

    def _delivered(self, pdu: Pdu) -> int:
        if self.on_deliver is None:
            # Not ours to take: a temporary error makes the SMSC deliver it again, to the receiver.
            return c.SMPP_ESME_RX_T_APPN
        try:
            return self.on_deliver(pdu)
        except Exception:  # a receiver bug must not take the link down
            log.exception("smpp %s: deliver_sm handler failed", self.config.name)
            return c.SMPP_ESME_RX_T_APPN

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` for what the SMSC sends and answer it; enquire_link when idle."""
        client = self._client
        if client is None:
            return
        try:
            select.select([client._socket], [], [], timeout)
        except (OSError, ValueError, TypeError):
            pass   # closed under us: reading below will tell
        with self.lock:
            if self._client is not client:
                return
            try:
                # Looked at again under the lock: a sender may have read the PDU meanwhile.
                while _readable(client):
                    pdu = self._read(client)
                    if pdu is not None:   # a response no one waits for: never answered
                        log.debug("smpp %s: unexpected %s (%s)", self.config.name, pdu.command,
                                  status_name(pdu.status))
                if time.monotonic() - self._last_io >= self.config.enquire_link_s:
                    client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
                    due = time.monotonic() + self.config.timeout_s
                    if self._read_response(client, due) is None:
                        raise smpplib.exceptions.ConnectionError("no answer to enquire_link")
            except LINK_ERRORS as error:
                self.drop(f"{type(error).__name__}: {error}")

    def serve(self, stop: threading.Event, *, reconnect: bool,
              tick: Callable[[], None] | None = None, step_s: float = 0.5) -> None:
        """Keep the link answered (and bound, with `reconnect`) until `stop` is set."""
        step = min(step_s, self.config.enquire_link_s / 2)
        while not stop.is_set():
            if self._client is None:
                if not reconnect:
                    stop.wait(step)
                    continue
                try:
                    self.client()
                except TransportError:
                    stop.wait(max(0.05, min(step, self._retry_at - time.monotonic())))
                    continue
            self.poll(step)
            if tick is not None:
                tick()

    def start(self, *, reconnect: bool, tick: Callable[[], None] | None = None) -> None:
        """Serve the link from a daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve, args=(self._stop,),
                                            kwargs={"reconnect": reconnect, "tick": tick},
                                            name=f"smpp-{self.mode}", daemon=True)
            self._thread.start()

    def drop(self, reason: str) -> None:
        """Forget the bind (the next use binds again)."""
        with self.lock:
            if self._client is not None:
                log.warning("smpp %s link dropped: %s", self.config.name, reason)
                self._close(self._client)
                self._client = None
                # Answers come on the session that was asked; a new one numbers afresh.
                self._late.clear()

    @staticmethod
    def _close(client: smpplib.client.Client) -> None:
        try:
            client.disconnect()
        except Exception as error:  # noqa: BLE001 - closing a broken socket may fail any way
            log.debug("smpp: closing the socket failed: %s", error)

    def close(self) -> None:
        """Unbind politely, stop the thread, close the socket."""
        self._stop.set()
        with self.lock:
            client, self._client = self._client, None
            if client is not None:
                try:
                    client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
                    self._read_response(client, time.monotonic() + self.config.timeout_s)
                except LINK_ERRORS:
                    pass
                self._close(client)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
            self._thread = None


class SmppTransport:
    """Submits each SMS (split into concatenated parts as needed) over one SMPP bind."""

    def __init__(self, config: SmppConfig, *, limit: Bucket | None = None,
                 unanswered: Unanswered | None = None, on_deliver: OnDeliver | None = None,
                 client_factory: Callable[..., smpplib.client.Client] = smpplib.client.Client
                 ) -> None:
        if config.mode not in ("transmitter", "transceiver"):
            raise ValueError("the SMPP transport binds as transmitter or transceiver")
        self.config = config
        self.limit = limit or bucket(config.name, config.tps, config.burst, config.redis_url)
        self.unanswered = unanswered or Unanswered(config.name, config.redis_url)
        self.link = SmppLink(config, config.mode, on_deliver=on_deliver,
                             client_factory=client_factory)
        # Parts of a self-split SMS the SMSC already took, so a retry sends only the rest.
        self._accepted: OrderedDict[PartKey, str] = OrderedDict()

    @classmethod
    def from_url(cls, url: str, *, redis_url: str | None = None) -> SmppTransport:
        """From `smpp://SYSTEM_ID:PASSWORD@HOST:PORT?options` (see SmppConfig)."""
        return cls(SmppConfig.from_url(url, redis_url=redis_url))

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
                                        "esm_class": UDHI if concatenated else 0})
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


def _is_response(pdu: Pdu) -> bool:
    return pdu.command in RESPONSES or pdu.command.endswith("_resp")


def _readable(client: smpplib.client.Client, timeout: float = 0.0) -> bool:
    sock = client._socket
    if sock is None:
        raise smpplib.exceptions.ConnectionError("socket closed")
    return bool(select.select([sock], [], [], timeout)[0])


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.rstrip(b"\x00").decode("ascii", errors="replace")
    return value or ""


__all__ = ["SmppConfig", "SmppLink", "SmppTransport", "address", "status_name"]
