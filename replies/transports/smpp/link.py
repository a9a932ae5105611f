"""One SMPP session, shared by the transmitter and the receiver: bind, keep-alive, answers."""

from __future__ import annotations

import functools
import logging
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import smpplib.client
import smpplib.command
import smpplib.consts as c
import smpplib.exceptions
import smpplib.smpp

from replies.transports.base import TransportError
from replies.transports.smpp.config import Mode, SmppConfig

log = logging.getLogger(__name__)

Pdu = smpplib.command.Command
OnDeliver = Callable[[Pdu], int]
NAMES = {value: name.removeprefix("SMPP_") for name, value in vars(c).items()
         if name.startswith("SMPP_ESME_R")}
RESPONSES = {"submit_sm_resp", "generic_nack", "enquire_link_resp", "unbind_resp"}
# Errors that mean the socket or the session is gone.
LINK_ERRORS = (OSError, smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError,
               smpplib.exceptions.UnknownCommandError, AttributeError)


def status_name(status: int) -> str:
    """`ESME_RTHROTTLED (0x58)` for 0x58."""
    return f"{NAMES.get(status, 'status')} (0x{status:02X})"


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


def _is_response(pdu: Pdu) -> bool:
    return pdu.command in RESPONSES or pdu.command.endswith("_resp")


def _readable(client: smpplib.client.Client, timeout: float = 0.0) -> bool:
    sock = client._socket
    if sock is None:
        raise smpplib.exceptions.ConnectionError("socket closed")
    return bool(select.select([sock], [], [], timeout)[0])


__all__ = ["LINK_ERRORS", "OnDeliver", "Pdu", "SmppLink", "status_name"]
