"""A real SMPP 3.4 server for the tests: smpp34's SMSC engine (Rust/tokio, from PyPI).

smpp34 does the protocol (binds, sequence windows, enquire_link, PDU codec, a
different implementation from the smpplib our transport uses); this module only
decides what an operator's SMSC would: accept or refuse each submit_sm (with
ESME_RTHROTTLED above a configured rate), answer it late or never, send its
delivery receipt before or after the answer, record what arrived, and push
deliver_sm (MO or receipts) to a bound receiver, returning its deliver_sm_resp
status. It runs on a free port in a thread with its own event loop, starts in
milliseconds, and `deploy/ensure-peers` installs it.

Its decisions run in Python, in the test's process: busy threads of the test
(a load of HTTP posts) delay its answers by up to a hundred milliseconds, so a
test that loads the gateway does it from another process, as real clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from replies import encoding
from tests.support.gateway import Gateway, gateway_settings
from tests.support.keys import SECRET
from tests.support.servers import claimed_redis_db
from workers.local.embedded import free_port

smpp34 = pytest.importorskip(
    "smpp34", reason="SMPP SERVER MISSING: the SMPP tests need the smpp34 package; "
                     "run deploy/ensure-peers (make test does)")

NEVER = math.inf     # in `answer_after`: that submit_sm is never answered
RECEIPT = 0x04       # esm_class of an SMSC delivery receipt


@dataclass(frozen=True, slots=True)
class Submit:
    """One submit_sm as the SMSC received it."""

    at: float
    session_id: str
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    status: int   # what the SMSC answered
    message_id: str = ""   # the id it gave, when it took the message

    @property
    def concat(self) -> encoding.Concat | None:
        """The concatenation UDH, when the UDHI bit is set."""
        return encoding.strip_udh(self.short_message)[0] if self.esm_class & 0x40 else None

    @property
    def text(self) -> str:
        """The user data decoded by data_coding, without the UDH."""
        body = self.short_message
        if self.esm_class & 0x40:
            body = encoding.strip_udh(body)[1]
        return encoding.decode(body, self.data_coding)


class Smsc:
    """An SMSC on 127.0.0.1:`port`: what it got in `submits`, who bound in `binds`."""

    def __init__(self, *, throttle_tps: float | None = None,
                 receipts: Literal["before", "after"] | None = None,
                 auto_reply: Callable[[Submit], str | None] | None = None) -> None:
        self.port = free_port()
        self.throttle_tps = throttle_tps
        # An auto-responder on the phones' side: for each message taken, the text the phone
        # answers with (an MO back to the sender, pushed to the first receiver), or None.
        self.auto_reply = auto_reply
        self.auto_replies: list[tuple[float, str, int]] = []  # (when, phone, resp status)
        # A DELIVRD receipt for each message taken, pushed to the first receiver before
        # or after the submit_sm_resp; None: no receipts (an SMSC that never sends one).
        self.receipts = receipts
        self.submits: list[Submit] = []
        self.binds: list[tuple[str, str, bool]] = []   # (system_id, session_id, can_receive)
        self.refuse: deque[int] = deque()              # statuses to answer the next submits with
        self.answer_after: deque[float] = deque()      # seconds before answering the next ones
        self.answered: list[tuple[float, str]] = []    # (when, message id) of each answer sent
        self.receipted: list[tuple[float, str, int]] = []   # (when, message id, resp status)
        self.held: list[tuple[Any, int, str]] = []     # submits never answered (NEVER)
        self._tasks: set[asyncio.Task] = set()
        self._esmes: dict[str, Any] = {}
        self._accepted_at: deque[float] = deque()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: Any = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="smsc", daemon=True)
        self._counter = 0

    def start(self) -> Smsc:
        """Listen, and return once the port accepts binds."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("smpp34 server did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._serve())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass

    async def _serve(self) -> None:
        self._server = smpp34.Server("127.0.0.1", self.port, system_id="govsms-test-smsc")
        await self._server.start()
        self._ready.set()
        while True:
            event = await self._server.next()
            if isinstance(event, smpp34.Esme):
                self._esmes[event.session_id] = event
                self.binds.append((event.system_id, event.session_id, event.can_receive))
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._submitted(event)
            elif isinstance(event, smpp34.Unbound):
                self._esmes.pop(event.session_id, None)

    def _submitted(self, event: Any) -> None:
        now = time.monotonic()
        while self._accepted_at and self._accepted_at[0] <= now - 1.0:
            self._accepted_at.popleft()
        if self.refuse:
            status = self.refuse.popleft()
        elif self.throttle_tps is not None and len(self._accepted_at) >= self.throttle_tps:
            status = smpp34.ESME_RTHROTTLED
        else:
            status = smpp34.ESME_ROK
        message_id = ""
        if status == smpp34.ESME_ROK:
            self._accepted_at.append(now)
            self._counter += 1
            message_id = f"{self._counter:08X}"
        self.submits.append(Submit(
            time.time(), event.session_id, event.source_addr, event.source_addr_ton,
            event.source_addr_npi, event.destination_addr, event.dest_addr_ton,
            event.dest_addr_npi, event.esm_class, event.data_coding, event.registered_delivery,
            bytes(event.short_message), status, message_id))
        if message_id and self.auto_reply is not None:
            self._spawn(self._auto_reply(self.submits[-1]))
        delay = self.answer_after.popleft() if self.answer_after else 0.0
        if delay or (message_id and self.receipts):
            self._spawn(self._answer_later(event, status, message_id, delay))
        else:   # at once, in this turn of the loop: the common case stays as fast as it can
            self._answer(event, status, message_id)

    def _spawn(self, coroutine: Any) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_reply(self, submit: Submit) -> None:
        text = self.auto_reply(submit) if self.auto_reply is not None else None
        if text is None or not self.receivers():
            return
        await asyncio.sleep(0.05)  # a phone's auto-responder is not instant
        response = await self.receivers()[0].deliver_sm(
            submit.source_addr, encoding.encode_gsm7(text), source_addr=submit.destination_addr,
            source_addr_ton=1, data_coding=0)
        self.auto_replies.append((time.time(), submit.destination_addr, response.command_status))

    def _answer(self, event: Any, status: int, message_id: str) -> None:
        if message_id:
            event.accept(message_id=message_id)
        else:
            event.reject(status)
        self.answered.append((time.time(), message_id))

    async def _answer_later(self, event: Any, status: int, message_id: str,
                            delay: float) -> None:
        if message_id and self.receipts == "before":
            await self._receipt(event, message_id)
        if delay == NEVER:
            self.held.append((event, status, message_id))   # a dropped event gets answered
            return
        await asyncio.sleep(delay)
        self._answer(event, status, message_id)
        if message_id and self.receipts == "after":
            await self._receipt(event, message_id)

    async def _receipt(self, event: Any, message_id: str) -> None:
        """Push a DELIVRD receipt for `message_id` to the first receiver bound, if any."""
        if not self.receivers():
            return
        stamp = time.strftime("%y%m%d%H%M")
        text = (f"id:{message_id} sub:001 dlvrd:001 submit date:{stamp} done date:{stamp} "
                f"stat:DELIVRD err:000 text:")
        response = await self.receivers()[0].deliver_sm(
            event.source_addr, text.encode(), source_addr=event.destination_addr,
            esm_class=RECEIPT)
        self.receipted.append((time.time(), message_id, response.command_status))

    def answer_held(self) -> None:
        """Answer now the submits held without an answer (as an SMSC that catches up)."""
        async def answer() -> None:
            held, self.held = self.held, []
            for event, status, message_id in held:
                self._answer(event, status, message_id)

        self._call(answer())

    def _call(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def receivers(self) -> list[Any]:
        """The bound sessions that take deliver_sm."""
        return [e for e in self._esmes.values() if e.can_receive]

    def wait_for_receiver(self, timeout: float = 10) -> None:
        """Until some session is bound as receiver or transceiver."""
        deadline = time.monotonic() + timeout
        while not self.receivers():
            if time.monotonic() > deadline:
                raise AssertionError("no receiver bound to the SMSC")
            time.sleep(0.02)

    def deliver(self, source: str, destination: str, payload: bytes, *, timeout: float = 10,
                **fields: Any) -> int:
        """Push one deliver_sm to the first receiver; the command_status it answered."""
        self.wait_for_receiver()
        esme = self.receivers()[0]

        async def push() -> int:
            response = await esme.deliver_sm(destination, payload, source_addr=source, **fields)
            return response.command_status

        return self._call(push(), timeout)

    def unbind_all(self) -> None:
        """The SMSC ends every session (as on an operator's restart)."""
        async def unbind() -> None:
            for esme in list(self._esmes.values()):
                await esme.unbind()
            self._esmes.clear()

        self._call(unbind())

    def stop(self) -> None:
        """Close the port and the loop."""
        if self._server is not None:
            with contextlib.suppress(Exception):   # stopping twice or a closed loop: nothing to do
                self._call(self._server.stop(), 5)
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)


def running_smsc(**options: Any) -> Iterator[Smsc]:
    """Body of a fixture: a started SMSC, stopped after."""
    smsc = Smsc(**options).start()
    try:
        yield smsc
    finally:
        smsc.stop()


def smpp_gateway(smsc: Smsc, database_url: str, redis_server: str, folder: Path,
                 **settings: Any) -> Iterator[Gateway]:
    """Body of a fixture: a gateway sending and taking SMS over SMPP with `smsc`, on a Redis
    db of its own, with `settings` overridden; stopped after."""
    with claimed_redis_db(redis_server) as redis_url:
        configured = gateway_settings(database_url, redis_url, folder, SECRET).model_copy(
            update={
                "transport": f"smpp://govsms-tx:pw@127.0.0.1:{smsc.port}"
                             "?mode=transmitter&tps=50",
                # smpp34 takes deliver_sm answers only from a transceiver (docs/delivery.md).
                "smpp_receiver": f"smpp://govsms-rx:pw@127.0.0.1:{smsc.port}?mode=transceiver",
                **settings})
        gw = Gateway(configured, folder)
        try:
            yield gw.start()
        finally:
            gw.stop()
