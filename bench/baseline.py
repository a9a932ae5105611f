"""The baselines beside the end-to-end figures: the broker's own ceiling, and the pipeline's
steps called in one process (no HTTP, no broker, no logging)."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench.gateway import System
from bench.loadgen import Traffic
from replies.transports import FileTransport
from services.phones import to_e164
from workers import messages, pipeline
from workers.app import Runtime
from workers.local import embedded
from workers.messages import reports


def measure_broker(seconds: float = 2.0) -> float:
    """Unpipelined LPUSH+RPOP pairs per second on a private Redis, counted as two operations."""
    folder = Path(tempfile.mkdtemp(prefix="govsms-bench-"))
    spec = embedded.redis_spec(folder)
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        embedded.wait_ready(spec, lambda: server.poll() is None)
        client = redis.Redis.from_url(spec.url)
        operations, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(100):
                client.lpush("bench", b"x" * 200)
                client.rpop("bench")
            operations += 200
        return operations / (time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", str(folder)], check=False)



def measure_pipeline(system: System, seconds: float, *, persons: int, batch: int) -> dict[str, Any]:
    """The pipeline's own work, no HTTP, no broker, no logging: this process records each
    message (a commit each, as the ingest does), then calls dispatch, answer and deliver
    on `batch` messages at a time, as the tasks would, with the file transport."""
    settings = system.settings
    p = Runtime(settings).pipeline
    p.pool.wait()
    transport = FileTransport(system.folder / f"inproc-{batch}.jsonl")
    traffic = Traffic(seed=99 + batch, persons=persons)
    tag = f"inproc-{uuid.uuid4().hex[:8]}-{batch}"
    done = 0
    steps: Counter = Counter()
    clock = time.process_time
    try:
        before, cpu_before = system.snapshot(), clock()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            ids = []
            t0 = clock()
            for _ in range(batch):
                sender, shortcode, text, _ = traffic.next()
                tariff = settings.tariffs.get(shortcode)
                with p.pool.connection() as conn:
                    ids.append(messages.record_inbound(
                        conn, source=tag, external_id=str(done + len(ids)),
                        sender=to_e164(sender, settings.regions.get(shortcode, "KZ")) or sender,
                        shortcode=shortcode, text=text,
                        tariff=(tariff.amount, tariff.currency) if tariff else None).id)
            t1 = clock()
            routed = pipeline.dispatch(p, ids)
            t2 = clock()
            queued = list(routed.outbound)
            for service, service_ids in routed.services.items():
                queued += pipeline.answer(p, service, service_ids)
            t3 = clock()
            pipeline.deliver(p.pool, transport, p.sealer, queued, settings.visibility_timeout)
            t4 = clock()
            steps.update({"record": t1 - t0, "dispatch": t2 - t1, "answer": t3 - t2,
                          "deliver": t4 - t3})
            done += batch
        elapsed, cpu = time.perf_counter() - start, clock() - cpu_before
        after = system.snapshot()
        with system.connect() as conn:
            answered = reports.answered(conn, tag)
    finally:
        p.pool.close()
        transport.close()
    postgres = after.backends.get("bench", 0.0) - before.backends.get("bench", 0.0)
    return {"batch": batch, "messages": done, "answered": answered,
            "msgs_per_s": round(done / elapsed, 1),
            "python_cpu_ms_per_msg": round(cpu * 1000 / done, 2),
            "python_cpu_ms_per_msg_by_step": {k: round(v * 1000 / done, 2)
                                              for k, v in steps.items()},
            "postgres_cpu_ms_per_msg": round(postgres * 1000 / done, 2),
            "wall_ms_per_msg": round(elapsed * 1000 / done, 2)}
