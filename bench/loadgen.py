"""The load generator of `python -m bench`: realistic SMS posted to the ingest, in its own process.

`python -m bench.loadgen SPEC.json` reads one phase's spec (written by
bench/measure.py), posts messages to `POST /v1/messages/inbound` as the SMSC
bridge would (header X-Bridge-Token, a unique id each, the phase's tag as the
`smsc` link so the bench can find its rows) through a pool of keep-alive
connections (raw HTTP/1.1, `Connections`), and writes what it saw to the spec's `out` file:

- `open`: arrivals at `rate` a second (Poisson, as independent citizens send),
  whether or not the gateway keeps up; a request waits for a free connection
  when all are busy, and that wait is recorded (`lag_s`).
- `window`: closed loop end to end: at most `window` messages posted and not yet
  answered (the reply seen in the file transport's outbox); a new one goes out as
  soon as a reply comes in. The gateway runs flat out with a bounded backlog.

The traffic (`Traffic`) mixes the demo personas sending every row of seed tables
1-3 after every keyword of its service (`workers.local.demo.every_row_in_every_keyword`:
Latin, Cyrillic, Kazakh), synthetic citizens
of the demo dataset, 10% malformed texts and a little 8188 registration traffic.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.registry import default_registry
from workers.local import demo

TOKEN_HEADER = "X-Bridge-Token"
PATH = "/v1/messages/inbound"
RETRIES = 2  # times a bridge sends a message again after a connection error
TIMEOUT_S = 30.0  # for one request once it has a connection

# Texts no service can answer as sent: no keyword at all, or a keyword with a bad argument.
MALFORMED = ("Hello", "Spasibo", "Спасибо", "Привет", "Салем", "?", "", "45", "4a", "help",
             "9 123ABC01", "Ochered na kvartiru", "Очередь", "Где пройти техосмотр?",
             "Где мой детсад?", "Techosmotr 12AB", "Техосмотр абв", "Техосмотр", "5 123",
             "4 12345678901", "Ocheredd v detsad 050101500013", "8123ABC01", "Stop", "🙂")
# A share of each kind of traffic, summing to 1.
MIX = {"persona": 0.45, "citizen": 0.42, "malformed": 0.10, "registration_repeat": 0.015,
       "registration_malformed": 0.01, "registration_new": 0.005}
_CYRILLIC_LOOKALIKES = str.maketrans("ABCEHKMOPTXY", "АВСЕНКМОРТХУ")
_VN_NAMES = ("Nguyen Van An", "Nguyễn Văn An", "Tran Thi Bich Ngoc", "Trần Thị Bích Ngọc",
             "Le Duc Tho", "Lê Đức Thọ", "Pham Hoang Phuc", "Phạm Hoàng Phúc")
# 8188 senders with an account already (the bench creates them) who ask again: refused.
REGISTERED_PHONES = tuple(f"09{n:08d}" for n in range(40))


@dataclass
class Traffic:
    """Realistic (sender, short code, text, kind) tuples, the same for the same seed."""

    seed: int = 1414
    persons: int = 20_000
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.personas = demo.every_row_in_every_keyword()
        data = demo.dataset(persons=self.persons)
        self.phones = [row["phone"] for row in data["mbg"]]
        self.iins = {row["phone"]: row["iin"] for row in data["mbg"]}
        self.plates = [row["plate"] for row in data["vehicle_inspections"]]
        self.children = [row["child_iin"] for row in data["kindergarten_queue"]]
        self.keywords = {s.name: s.syntax.keywords for s in default_registry() if s.syntax.keywords}
        self.kinds = list(MIX)
        self.weights = list(MIX.values())
        self.registered = list(REGISTERED_PHONES)

    def next(self) -> tuple[str, str, str, str]:
        """One message: (sender as the operator writes it, short code, text, kind)."""
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "persona":
            persona, text, _ = rng.choice(self.personas)
            return persona.phone, "1414", text, kind
        if kind == "citizen":
            return (*self._citizen(), kind)
        if kind == "malformed":
            return rng.choice(self.personas)[0].phone, "1414", rng.choice(MALFORMED), kind
        if kind == "registration_malformed":
            text = rng.choice(("Dang ky", "TK,Nguyen Van An,12345,01.01.1990",
                               "TK,Nguyen Van An,123456789,31.02.1990", "TK Nguyen Van An"))
            return rng.choice(self.registered), "8188", text, kind
        phone = rng.choice(self.registered) if kind == "registration_repeat" else \
            f"09{rng.randrange(10**8):08d}"
        return phone, "8188", self._registration(), kind

    def _citizen(self) -> tuple[str, str, str]:
        rng = self.rng
        phone = rng.choice(self.phones)
        sender = phone if rng.random() < 0.7 else "8" + phone[2:]  # +7701... or 8701...
        service = rng.choices(("tech_inspection", "kindergarten_queue", "housing_queue"),
                              (0.5, 0.3, 0.2))[0]
        keyword = rng.choice(self.keywords[service])
        if service == "tech_inspection":
            plate = rng.choice(self.plates)
            if rng.random() < 0.4:
                plate = f"{plate[:3]} {plate[3:6]} {plate[6:]}" if plate[0].isdigit() else plate
            if rng.random() < 0.3:
                plate = plate.translate(_CYRILLIC_LOOKALIKES)
            argument = plate.lower() if rng.random() < 0.1 else plate
        elif service == "kindergarten_queue":
            argument = rng.choice(self.children)
        else:
            argument = "" if rng.random() < 0.6 else self.iins[rng.choice(self.phones)]
        return sender, "1414", f"{keyword} {argument}".strip()

    def _registration(self) -> str:
        rng = self.rng
        separator = rng.choice((",", ";", " , ", "; "))
        cmnd = "".join(rng.choice("0123456789") for _ in range(rng.choice((9, 12))))
        born = f"{rng.randrange(1, 29):02d}.{rng.randrange(1, 13):02d}.{rng.randrange(1950, 2005)}"
        return separator.join(("TK", rng.choice(_VN_NAMES), cmnd, born))


@dataclass
class Phase:
    """What one run of the load generator saw."""

    spec: dict[str, Any]
    records: list[list[Any]] = field(default_factory=list)  # [scheduled, start, end, status, id]
    completions: list[list[Any]] = field(default_factory=list)  # [inbound id, seen at]
    kinds: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    started_at: float = 0.0
    ended_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.spec["phase"], "mode": self.spec["mode"],
                "started_at": self.started_at, "ended_at": self.ended_at,
                "posted": len(self.records),
                "accepted": sum(1 for r in self.records if r[3] == 202),
                "errors": dict(self.errors), "kinds": dict(self.kinds),
                "records": self.records, "completions": self.completions}


Link = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Abandoned(Exception):
    """The phase ended while the request still waited for a connection: never sent."""


class Connections:
    """Keep-alive HTTP/1.1 connections to the ingest, each used by one request at a time.

    A bridge's requests are all alike, so each is written as bytes behind a fixed head and
    its answer read by `Content-Length`: the generator costs about what an SMSC's own
    client does, so the two cores serve the gateway (httpx cost 2 ms a message here).
    """

    def __init__(self, url: str, token: str, size: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (f"POST {PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"{TOKEN_HEADER}: {token}\r\nContent-Type: application/json\r\n"
                     "Content-Length: ").encode()
        self.idle: asyncio.Queue[Link | None] = asyncio.Queue()
        self.stopping = False  # once set, what still waits for a connection is not sent
        for _ in range(size):
            self.idle.put_nowait(None)  # opened when first used

    async def post(self, body: bytes) -> tuple[float, int, dict[str, Any]]:
        """(when a connection was free, status, JSON answer); OSError, TimeoutError or
        asyncio.IncompleteReadError when the link broke (it is opened again next time)."""
        link = await self.idle.get()
        got = time.time()
        try:
            if self.stopping:
                raise Abandoned("the bridge stopped before a connection was free")
            async with asyncio.timeout(TIMEOUT_S):
                if link is None:
                    link = await asyncio.open_connection(self.host, self.port)
                reader, writer = link
                writer.write(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))
                head = await reader.readuntil(b"\r\n\r\n")
                fields = head.lower()
                at = fields.find(b"content-length:")
                length = int(fields[at + 15:fields.index(b"\r\n", at)]) if at >= 0 else 0
                answer = await reader.readexactly(length) if length else b""
            if b"connection: close" in fields:
                writer.close()
                link = None
            return got, int(head[9:12]), json.loads(answer) if answer else {}
        except BaseException:
            if link is not None:
                link[1].close()
            link = None
            raise
        finally:
            self.idle.put_nowait(link)

    async def close(self) -> None:
        while not self.idle.empty():
            link = self.idle.get_nowait()
            if link is not None:
                link[1].close()


class Generator:
    """Posts one phase's messages and records each request."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.result = Phase(spec)
        self.traffic = Traffic(spec.get("seed", 1414), spec.get("persons", 20_000))
        self.seq = 0
        self.client = Connections(spec["url"], spec["token"], int(spec.get("connections", 16)))
        self.in_flight: set[asyncio.Task] = set()

    async def post(self, scheduled: float) -> int | None:
        """Post the next message; its inbound id on 202, else None (the error is counted)."""
        sender, shortcode, text, kind = self.traffic.next()
        self.seq += 1
        body = json.dumps({"from": sender, "to": shortcode, "text": text,
                           "id": f"{self.spec['tag']}-{self.seq}", "smsc": self.spec["tag"]},
                          ensure_ascii=False).encode()
        self.result.kinds[kind] += 1
        start: float | None = None  # once a connection is free: the wait before is `lag`
        inbound_id: int | None = None
        for attempt in range(RETRIES + 1):
            try:
                got, status, answer = await self.client.post(body)
                start = got if start is None else start
                inbound_id = answer.get("id") if status == 202 else None
                break
            except Abandoned:
                status = "abandoned"
                break
            except (OSError, ValueError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, TimeoutError) as error:  # a bridge sends it again, same id
                status = type(error).__name__
                if attempt < RETRIES:
                    self.result.errors[f"{status} (sent again)"] += 1
        end = time.time()
        start = end if start is None else start
        if status != 202:
            self.result.errors[str(status)] += 1
        self.result.records.append([scheduled, start, end, status, inbound_id])
        return inbound_id

    def launch(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def open_loop(self, start: float, end: float) -> None:
        """Poisson arrivals at `rate` a second from `start` to `end`, kept up whatever happens."""
        rng = random.Random(self.spec.get("seed", 1414) + 1)
        rate = float(self.spec["rate"])
        at = start
        while True:
            at += rng.expovariate(rate)
            if at >= end:
                break
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.launch(self.post(at))

    async def window_loop(self, end: float) -> None:
        """Keep `window` messages posted and unanswered until `end`."""
        window = int(self.spec["window"])
        outbox = Path(self.spec["outbox"])
        pending: set[int] = set()
        answered_early: set[int] = set()  # replies seen before the 202 was read
        outstanding = 0
        wake = asyncio.Event()

        def complete(inbound_id: int) -> None:
            nonlocal outstanding
            outstanding -= 1
            self.result.completions.append([inbound_id, time.time()])
            wake.set()

        async def one() -> None:
            nonlocal outstanding
            inbound_id = await self.post(time.time())
            if inbound_id is None:
                outstanding -= 1
                wake.set()
            elif inbound_id in answered_early:
                answered_early.discard(inbound_id)
                complete(inbound_id)
            else:
                pending.add(inbound_id)

        async def tail() -> None:
            offset = outbox.stat().st_size if outbox.exists() else 0
            buffered = b""
            while True:
                if outbox.exists():
                    with outbox.open("rb") as f:  # noqa: ASYNC230 - a local file, read at once
                        f.seek(offset)
                        chunk = f.read()
                    offset += len(chunk)
                    buffered += chunk
                    *lines, buffered = buffered.split(b"\n")
                    for line in lines:
                        inbound_id = json.loads(line).get("inbound_id")
                        if inbound_id in pending:
                            pending.discard(inbound_id)
                            complete(inbound_id)
                        elif inbound_id is not None:
                            answered_early.add(inbound_id)
                await asyncio.sleep(0.01)

        tailer = asyncio.get_running_loop().create_task(tail())
        try:
            while time.time() < end:
                while outstanding < window:
                    outstanding += 1
                    self.launch(one())
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), 0.05)
                except TimeoutError:
                    pass
        finally:
            tailer.cancel()

    async def run(self) -> Phase:
        start = float(self.spec.get("start_at") or time.time() + 0.05)
        duration = float(self.spec["seconds"])
        print(json.dumps({"start": start}), flush=True)  # the bench times its windows from it
        if start > time.time():
            await asyncio.sleep(start - time.time())
        self.result.started_at = time.time()
        end = start + duration
        if self.spec["mode"] == "window":
            await self.window_loop(end)
        else:
            await self.open_loop(start, end)
        if self.in_flight:  # a bridge's queue drains for a minute, then it stops sending
            await asyncio.wait(set(self.in_flight), timeout=60)
            self.client.stopping = True
        if self.in_flight:  # each on a connection ends within TIMEOUT_S, the rest at once
            await asyncio.wait(set(self.in_flight))
        self.result.ended_at = time.time()
        await self.client.close()
        return self.result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    try:
        import uvloop
    except ImportError:
        uvloop = None
    generator = Generator(spec)
    runner = uvloop.run if uvloop else asyncio.run
    result = runner(generator.run())
    out = Path(spec["out"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.as_dict()))
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
