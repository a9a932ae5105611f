"""docs/benchmarks.md and docs/benchmarks.json from one run's report, and the table printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.cpu import KERNEL, OTHER, STEAL

TARGETS = {"parser_msgs_per_s": ">= 50,000 on one core",
           "e2e_msgs_per_s": ">= 1,000 on 2 cores",
           "gateway_cpu_ms_per_msg": "<= 1.6",
           "loadgen_cpu_ms_per_msg": "<= 0.15",
           "p99_latency_s_at_half_load": "<= 0.25",
           "e2e_msgs_per_s_with_flower": "reported",
           "burst_sla_ok_ratio": "1.0 (every reply within the SLA)",
           "kannel_burst_sla_ok_ratio": "1.0 (every accepted MO answered within the SLA)"}


def write(report: dict[str, Any], figures: list[str], out: Path) -> None:
    """Write `out/benchmarks.json` and `out/benchmarks.md`; print `figures` against targets."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "benchmarks.md").write_text(markdown(report))
    print(f"\n{'figure':<30}{'measured':>14}  target")
    for key in figures:
        print(f"{key:<30}{_fmt(report[key]):>14}  {TARGETS.get(key, 'reported')}")
    integrity = report["details"]["integrity"]
    print(f"{'exactly one reply each':<30}{integrity['exactly_one_reply']!s:>14}  "
          f"({integrity['inbound']:,} messages, {integrity['missing']} missing, "
          f"{report['duplicates']} duplicated)")
    print(f"written: {out / 'benchmarks.md'}, {out / 'benchmarks.json'} "
          f"({report['bench_wall_s']:.0f} s)")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value < 10:
        return f"{value:.4g}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def _cpu_table(cpu: dict[str, Any] | None) -> str:
    if not cpu:
        return "(not measured)"
    machine = cpu["machine_cores"]
    rows = [f"| {name} | {cores:.2f} | {cores / machine:.0%} |"
            for name, cores in cpu["cores"].items() if cores >= 0.005]
    backends = ", ".join(f"{name} {cores:.2f}" for name, cores in
                         cpu["postgres_backends_by_client"].items() if cores >= 0.005)
    return ("| process (with its children) | cores | share of the machine |\n|---|---|---|\n"
            + "\n".join(rows)
            + f"\n| **machine busy** | {cpu['machine_busy_cores']:.2f} | "
              f"{cpu['machine_busy_cores'] / machine:.0%} |\n\n"
              f"PostgreSQL backends by the process they serve (cores): {backends or 'n/a'}.")


def _stage_table(profile: dict[str, Any]) -> str:
    labels = {
        "http_accept": "HTTP accept (client: POST -> 202)",
        "ingest_to_enqueue": "ingest: INSERT committed -> dispatch task published",
        "inbound_queue_wait": "queue `inbound`: published -> dispatch started",
        "dispatch_run": "dispatch: parse, route, UPDATE",
        "service_queue_wait": "queue `svc.<service>`: published -> answer started",
        "answer_run": "answer: registry look-ups, reply INSERT",
        "outbound_queue_wait": "queue `outbound`: published -> deliver started",
        "deliver_run": "deliver: claim, commit, transport, mark sent",
        "received_to_sent": "**received -> sent (total)**",
    }
    rows = []
    for stage, label in labels.items():
        s = profile["stages_s"].get(stage, {"n": 0})
        if s.get("n"):
            rows.append(f"| {label} | {s['n']:,} | {s['mean'] * 1000:.1f} | "
                        f"{s['p50'] * 1000:.1f} | {s['p95'] * 1000:.1f} | "
                        f"{s['p99'] * 1000:.1f} |")
    stored = profile["stored_timestamps_s"]
    for key, label in (("received_to_reply_created", "stored: received_at -> reply created_at"),
                       ("reply_created_to_claimed", "stored: created_at -> claimed_at"),
                       ("claimed_to_sent", "stored: claimed_at -> sent_at")):
        s = stored[key]
        if s.get("n"):
            rows.append(f"| {label} | {s['n']:,} | {s['mean'] * 1000:.1f} | "
                        f"{s['p50'] * 1000:.1f} | {s['p95'] * 1000:.1f} | "
                        f"{s['p99'] * 1000:.1f} |")
    return ("| stage | messages | mean ms | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows))


def markdown(report: dict[str, Any]) -> str:
    """docs/benchmarks.md: the figures, how they were measured, the profile and the analysis."""
    d = report["details"]
    figures = [k for k in ("parser_msgs_per_s", "broker_ops_per_s", "e2e_msgs_per_s",
                           "gateway_cpu_ms_per_msg", "loadgen_cpu_ms_per_msg",
                           "e2e_msgs_per_s_with_flower",
                           "p50_latency_s_at_half_load", "p95_latency_s_at_half_load",
                           "p99_latency_s_at_half_load", "burst_sla_ok_ratio",
                           "e2e_to_broker_ratio", "kannel_ceiling_msgs_per_s",
                           "kannel_cpu_ms_per_msg", "kannel_e2e_msgs_per_s",
                           "kannel_burst_sla_ok_ratio", "e2e_to_kannel_ratio") if k in report]
    rows = "\n".join(f"| `{k}` | {_fmt(report[k])} | {TARGETS.get(k, 'reported')} |"
                     for k in figures)
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    integrity = d["integrity"]
    checks = "\n".join(f"| {c['offered_per_s']:,.1f} | {c['accepted_per_s']:,.1f} | "
                       f"{c['completed_per_s']:,.1f} | {c['backlog_growth']:+d} | "
                       f"{'yes' if c['held'] else 'no'} |" for c in d["sustain_checks"])
    burst = d["burst"]
    kinds = d["saturate"]["kinds"]
    total_kinds = sum(kinds.values()) or 1
    mix = ", ".join(f"{k} {v / total_kinds:.1%}" for k, v in kinds.items())
    exactly_one = "yes" if integrity["exactly_one_reply"] else "NO"
    none_held = "" if d["sustained_held"] else " (none held: the reply rate of the last step)"
    accept = d["saturate"]["http_accept_s"]
    return f"""# Benchmarks

Written by `make bench` ({report['measured_at']}, {report['bench_wall_s']:.0f} s) on
{report['cores']} cores ({report['cpu_model']}, {report['machine']}); {versions}.
`--seconds {report['seconds_per_figure']:g}`; the machine had
{report['machine_busy_cores_before']:.2f} cores busy before the run. Every number here, the
analysis included, is regenerated by each run; the reasoning of the analysis was
written from runs on this machine.

| figure | measured | target |
|---|---|---|
{rows}

{_perturbation(d)}Every message exactly one reply: **{exactly_one}**:
{integrity['posted']:,} posted, {integrity['accepted']:,} accepted (202), {integrity['inbound']:,}
recorded, {integrity['answered']:,} answered, {integrity['missing']} missing,
{integrity['duplicated']} duplicated in PostgreSQL, {integrity['outbox_duplicate_sms']} SMS written
twice by the transport, {integrity['outbox_missing']} missing from the outbox,
{integrity['failed']} failed, {integrity['dead_letters']} dead letters, HTTP errors
{integrity['http_errors'] or 'none'}.

## What runs

`python -m bench` starts a private Redis and PostgreSQL in a temporary folder (or uses
GOVSMS_REDIS_URL / GOVSMS_DATABASE_URL), applies the migrations, loads the demo
dataset ({d['persons']:,} synthetic people, through `workers.extracts`) and starts the
gateway's own processes as `workers.local.gateway.processes()` lists them, but beat and flower
({', '.join(f'`{n}`' for n in d['processes'])}), with the file transport, a generated
bridge secret and secret key, and the settings of the environment (GOVSMS_CONCURRENCY,
GOVSMS_LOG_LEVEL, ...; the defaults here).

The load generator (`bench/loadgen.py`) is a process of its own on the same two
cores: asyncio + httpx, {d['loadgen_connections']} keep-alive connections, posting to
`POST /v1/messages/inbound` with `X-Bridge-Token`, each message with a unique id. The
traffic: the demo personas sending every row of seed tables 1-3 after every keyword of
its service (Latin, Cyrillic and Kazakh spellings), citizens of the demo dataset asking
about their own cars, children and housing places (plates in Latin or Cyrillic look-alike
letters, spaced or not), 10% malformed texts, and a little 8188 registration traffic
(0.5% new accounts, each an argon2id hash of about 30 ms of CPU). This run's mix: {mix}.
The personas are three phones sending half the traffic, standing in for many citizens:
the flood limit is counted for every MO (one Redis script a dispatch batch, as deployed)
but set past their reach, and the repeat rule is off, so each of them is answered as a
citizen's would be.

## How each figure is measured

- `e2e_msgs_per_s`: first **saturate**: a closed loop keeps {d['window_in_flight']} messages
  posted and not yet answered (a reply counts once the file transport wrote it), so the
  gateway runs flat out with a bounded backlog; replies per second over a
  {d['durations_s']['saturate']:g} s window after a {d['durations_s']['warmup']:g} s warm-up:
  **{d['saturate']['completed_per_s']:,.1f}/s**. Then **sustain**: an open loop (Poisson
  arrivals, whatever the gateway does) at that rate for {d['durations_s']['sustain']:g} s
  after the warm-up; it holds when the replies keep pace (>= 95% of the accepted rate) and
  the backlog grows by less than a second of traffic; else 10% lower. The figure is the
  reply rate of the step that held{none_held}.

  | offered /s | accepted /s | replies /s | backlog growth | held |
  |---|---|---|---|---|
{_indent(checks, 2)}

- `p50/p95/p99_latency_s_at_half_load`: an open loop at half that rate
  ({d['half']['offered_per_s']:,.1f}/s) for {d['durations_s']['half']:g} s after the warm-up;
  latency is `outbound.sent_at - inbound.received_at` (the last part) of the
  {d['half']['messages_in_window']:,} messages received in that window
  ({d['half']['unsent_in_window']} not sent).
- `burst_sla_ok_ratio`: an open loop at {report['burst_factor']:g}x that rate
  ({burst['offered_per_s']:,.1f}/s offered) for **{burst['seconds']:g} s**, then drained. The share of its {burst['messages']:,} messages sent within
  {burst['sla_s']:g} s of receipt (a message never sent counts as late). Latency in the burst:
  p50 {_fmt(burst['latency_s'].get('p50'))} s, p99 {_fmt(burst['latency_s'].get('p99'))} s,
  max {_fmt(burst['latency_s'].get('max'))} s; replies went out at
  {burst['drain_rate_per_s']:,.1f}/s from the start of the burst to the last reply.
  The ingest took {burst['accepted_per_s']:,.1f}/s, so the burst reached it over
  {burst['receipt_span_s']:g} s: the load generator (the bridge) held requests back for a free
  connection for up to {_fmt(burst['client_lag_s'].get('max'))} s (p99
  {_fmt(burst['client_lag_s'].get('p99'))} s) before the gateway received them. That wait is not
  in the ratio, which counts from receipt as the SLA does; counted from when the bridge
  had the message, {burst['sla_ok_ratio_from_offer']:.1%} were answered within
  {burst['sla_s']:g} s; {burst.get('abandoned', 0):,} still waited for a connection a minute
  after the burst and were never sent (counted late there).
- `e2e_msgs_per_s_with_flower`: the saturating closed loop again, with Flower started as
  `govsms run` starts it (it turns every worker's task events on while it watches):
  {d.get('flower', {}).get('saturated_per_s', 0):,.1f} replies/s against
  {d.get('flower', {}).get('saturated_without_per_s', 0):,.1f} without it in the same run (the
  saturated rate, not the stepped-down sustained one: both sides measured alike).
- `gateway_cpu_ms_per_msg`, `loadgen_cpu_ms_per_msg`: CPU per reply over the saturation
  window; the gateway's is every gateway process with its PostgreSQL backends, Redis and
  the kernel's interrupt handling, the load generator's its own process.
- `parser_msgs_per_s`: `KeywordIndex.parse` alone, one process, over a mix of every
  service in every script with about 10% malformed texts (`bench/parser.py`).
- `broker_ops_per_s`: a private Redis's own ceiling in this run, unpipelined
  LPUSH+RPOP of 200-byte messages from one client, each counted as one operation.
- `e2e_to_broker_ratio`: `e2e_msgs_per_s / broker_ops_per_s`.
{kannel_method(report)}

## Where the CPU goes (saturated)

CPU of each process tree from `/proc/<pid>/stat` (Redis from its own `INFO cpu`) over
the {d['durations_s']['saturate']:g} s saturation window; PostgreSQL backends are attributed to
the client process holding the other end of their socket.

{_cpu_table(d['saturate']['cpu'])}

Mean queue depths (Redis lists; `unacked` = tasks workers hold):
{_depths(d['saturate']['queues_mean_depth'])}. HTTP accept at saturation (client, POST -> 202):
p50 {_fmt(accept.get('p50'))} s, p99 {_fmt(accept.get('p99'))} s.

## Where a message spends its time (half load)

From Celery's own task events (`task-sent`, `task-started`, `task-succeeded`, the ones
Flower reads; the bench turns the workers' events on for this window, as Flower does),
captured from Redis during the half-load window and joined to the stored rows by the
ids each task carries and each deliver task's parent, for
{d['half']['profile']['messages_traced']:,} messages. The stages overlap a little (a task
publishes the next one before it logs and acknowledges), and not-found replies skip
the answer task; the `stored` rows use PostgreSQL's `now()` of each transaction.

{_stage_table(d['half']['profile'])}

CPU at half load:

{_cpu_table(d['half']['cpu'])}

{kannel_section(report)}
{analysis(report)}
"""


def _not_measured(part: dict[str, Any] | None, skipped: str | None) -> str | None:
    """Why a Kannel part has no figures, or None when it has them."""
    if skipped:
        return f"not measured: {skipped}"
    if not part:
        return "not measured in this run"
    if part.get("error"):
        return f"not measured: it failed ({part['error']})"
    return None


def _kannel_perturbation(ceiling: dict[str, Any] | None, through: dict[str, Any] | None) -> str:
    """A warning when something else used the machine during a Kannel window."""
    busy: dict[str, float] = {}
    if ceiling and ceiling.get("cpu_in_window"):
        busy["ceiling"] = ceiling["cpu_in_window"]["cores"].get(OTHER, 0.0)
    if through and not through.get("error"):
        for n, c in enumerate(through["steady_checks"], 1):
            busy[f"steady{n}"] = c["cpu"]["cores"].get(OTHER, 0.0)
        busy["burst"] = through["burst"]["cpu"]["cores"].get(OTHER, 0.0)
    return _busy_warning(busy, "\n  **Warning: something else used the machine during the "
                               "Kannel windows** (cores outside the processes measured: ",
                         "); these figures are lower than on a quiet machine.")


def kannel_method(report: dict[str, Any]) -> str:
    """The Kannel figures' bullets of "How each figure is measured"."""
    k = report["details"].get("kannel") or {}
    skipped = k.get("skipped")
    ceiling, through = k.get("ceiling"), k.get("through")
    out = []
    why = _not_measured(ceiling, skipped)
    if why:
        out.append(f"- `kannel_ceiling_msgs_per_s`, `kannel_cpu_ms_per_msg`: {why}.")
    else:
        c = ceiling
        unreliable = (f" **Not reliable in this run ({c['unreliable']}): written as n/a.**"
                      if c.get("unreliable") else "")
        by = c["cpu_ms_per_reply_by_process"]
        again = (" Kannel's queue emptied before half the window in a first run (the probe had "
                 "caught a slow moment): these are a second run's, N sized from the first's "
                 "rate." if c.get("runs", 1) > 1 else "")
        out.append(f"""- `kannel_ceiling_msgs_per_s`: Debian's Kannel on its own: bearerbox
  with one fake SMSC link and smsbox with a static-text sms-service (`text = "ok"`: smsbox answers
  each MO itself, no HTTP), log files at info, consoles at panic only (`-v 4`, as Debian's
  init script starts them). fakesmsc, Kannel's test SMSC, writes
  {c['mos']:,} MOs of the bench's traffic at full speed (`-i 0 -m N`, about
  {c['mos_written_per_s']:,} a second; N sized from a {c['probe_mos']:,}-MO probe,
  {c['probe_replies_per_s']:,}/s, so MOs still wait in Kannel when the window ends:
  {c['waiting_at_window_end']:,} did). The replies fakesmsc logs (`Got message N`) over a
  {c['window_s']:g} s window after a {c['durations_s']['warmup']:g} s warm-up:
  {c['replies_in_window']:,}. fakesmsc cannot pace thousands a second (it waits between sends
  polling with a timeout rounded to 0 ms, a core of its own), so it writes them at once and
  Kannel works through its queue.{again}{unreliable}
- `kannel_cpu_ms_per_msg`: CPU of bearerbox + smsbox + fakesmsc (`/proc/<pid>/stat`) from
  the first MO written to the last of the {c['replies']:,} replies received, per reply: every
  MO read and every reply written is in it (bearerbox {by['bearerbox']:.3f} ms, smsbox
  {by['smsbox']:.3f} ms, fakesmsc {by['fakesmsc']:.3f} ms).""")
    why = _not_measured(through, skipped)
    if why:
        out.append(f"- `kannel_e2e_msgs_per_s`, `kannel_burst_sla_ok_ratio`: {why}.")
    else:
        t = through
        s = t["kannel_settings"]
        steady = t["steady_checks"][-1]
        held = "" if t["held"] else " (none held: the reply rate of the last step)"
        b = t["burst"]
        late = sum(c["late"] for c in t["steady_checks"])
        accepted = sum(c["accepted"] for c in t["steady_checks"])
        cut = (f" MOs Kannel handed over more than {t['durations_s']['burst_feed_cap']:g} s after"
               f" the last was written are not counted: {b['accepted_after_cut']:,} came that "
               "late, and are counted as not accepted." if b.get("accepted_after_cut") else "")
        out.append(f"""- `kannel_e2e_msgs_per_s`: the gateway driven through real Kannel as
  deployed: a second start of the gateway (the same demo data) whose transport is smsbox's
  sendsms (`kannel+http://...`, a dlr-url to the ingest's `/sms/dlr`), and Kannel configured
  with deploy/kannel/smsbox.conf itself: the catch-all get-url to `/sms/inbound` with the
  token, `http-request-retry = {s['http-request-retry']}`, `http-queue-delay =
  {s['http-queue-delay']}`, `mo-recode = {s['mo-recode']}`, the sendsms-user (only ports, the
  ingest's address, the token, the password and log files put in). fakesmsc writes
  {t['mo_lines']:,} distinct MOs of the load generator's traffic (`bench.loadgen.Traffic`;
  Cyrillic and Kazakh as UCS-2, as a handset sends them), one at random each time, at a fixed
  rate (`-i 1/rate -m N`), first at `e2e_msgs_per_s` ({t['started_at_per_s']:,.1f}/s). A rate
  holds when the replies fakesmsc receives over a {t['durations_s']['window']:g} s window
  after a {t['durations_s']['warmup']:g} s warm-up keep pace (>= 95% of the MOs written) and
  the MOs without their reply grow by less than a second of traffic. One that clearly does
  not (more than {t['abort_backlog_s']:g} s of its traffic waiting for replies) is stopped
  early, a second fakesmsc taking the replies still to come, and drained; the next rate is
  {t['step_down']:.0%} of it, or 95% of the replies seen if more. The figure is the first rate
  that held{held}. Each step restarts bearerbox with a `smsc-id` of its own, which Kannel
  hands the ingest as `smsc`, so PostgreSQL's rows of a step are found by it.
  {late} of the steps' {accepted:,} MOs were answered past the {steady['sla_s']:g} s SLA
  (`outbound.sent_at - inbound.received_at`), {steady['late']} in the last step.
- `kannel_burst_sla_ok_ratio`: fakesmsc at {t['burst_factor']:g}x that rate
  ({b['offered_per_s']:,.1f}/s) for {t['durations_s']['burst']:g} s, Kannel retrying what the
  gateway refuses (503 while more wait for their reply than it can answer within the SLA)
  and holding in its queue what the gateway has not taken yet; then drained: the share of the
  {b['accepted']:,} MOs the gateway accepted that were answered within {b['sla_s']:g} s of
  receipt.{cut} {b['not_accepted']:,} of the {b['written']:,} MOs written never reached the
  gateway while counted (Kannel gave up after its retries, or still held them).""")
    busy = _kannel_perturbation(ceiling, through)
    if busy:
        out.append(busy)
    out.append("- `e2e_to_kannel_ratio`: `e2e_msgs_per_s / kannel_ceiling_msgs_per_s`: the share "
               "of what Kannel alone can carry that the gateway answers.")
    return "\n".join(out)


def _messages(smsbox: dict[str, Any]) -> str:
    found = smsbox.get("messages") or {}
    if not found:
        return ""
    return " (" + "; ".join(f"{n:,}x `{m}`" for m, n in found.items()) + ")"


def _ms(values: dict[str, Any], key: str) -> str:
    return f"{values[key] * 1000:.1f}" if values.get(key) is not None else "n/a"


def kannel_section(report: dict[str, Any]) -> str:
    """Through Kannel: the steps, the burst, every MO's one reply and where the CPU went."""
    k = report["details"].get("kannel") or {}
    through = k.get("through")
    if _not_measured(through, k.get("skipped")):
        return ""
    t = through
    rows = "\n".join(
        f"| {c['offered_per_s']:,.1f} | {c['written_per_s']:,.1f} | {c['replies_per_s']:,.1f} | "
        f"{c['backlog_growth']:+d}{' (stopped)' if c.get('aborted') else ''} | "
        f"{_ms(c['send_s'], 'p50')} | {_ms(c['send_s'], 'p99')} | {c['late']} | "
        f"{'(burst)' if c['held'] is None else 'yes' if c['held'] else 'no'} |"
        for c in [*t["steady_checks"], {**t["burst"], "held": None}])
    b, i = t["burst"], t["integrity"]
    steady = t["steady_checks"][-1]
    per = steady.get("cpu_ms_per_reply") or {}
    exactly_one = "yes" if i["exactly_one_reply"] else "NO"
    sends = [c["send_s"]["p50"] for c in [*t["steady_checks"], b] if c["send_s"].get("p50")]
    held_send = steady["send_s"].get("p50") if t["held"] else None
    slow = (f"While the gateway took in less than was offered (MOs waiting in Kannel) the send "
            f"took up to {max(sends) * 1000:.0f} ms (p50 of a step), against "
            f"{held_send * 1000:.0f} ms in the step that held.\n"
            if held_send and sends and max(sends) > 2 * held_send else "")
    cpu_line = slow + (f"CPU per reply in the last step's window: {per['gateway']:.1f} ms in the "
                f"gateway's processes (with PostgreSQL, Redis), {per['kannel']:.2f} ms in "
                f"bearerbox + smsbox + fakesmsc, {per['machine']:.1f} ms on the machine."
                if per else "")
    return f"""## Through Kannel

| offered /s | MOs written /s | replies at fakesmsc /s | unanswered growth | send p50 ms | send p99 ms | late | held |
|---|---|---|---|---|---|---|---|
{rows}

"send": the transport's part of a one-part reply, `claimed_at -> sent_at`: the GET to
smsbox's sendsms answered (smsbox answers once bearerbox has the MT). A deliver task has all its
parts in flight at once (the transport's window, 64), and the outbound worker runs twice
`GOVSMS_CONCURRENCY` tasks at once on threads, so a task costs about its slowest answer.
{cpu_line}

Burst: {b['written']:,} MOs written at {b['written_per_s']:,.1f}/s; the gateway accepted
{b['accepted']:,} over {b['receipt_span_s']:g} s from the burst's start,
{b['within_sla']:,} answered within {b['sla_s']:g} s of receipt ({_fmt(b['sla_ok_ratio'])}),
{b['unsent']} not answered when the bench stopped waiting;
latency p50 {_fmt(b['latency_s'].get('p50'))} s, p99 {_fmt(b['latency_s'].get('p99'))} s, max
{_fmt(b['latency_s'].get('max'))} s. smsbox logged {b['smsbox']['warning_lines']:,} warnings and
{b['smsbox']['error_lines']:,} errors in the burst{_messages(b['smsbox'])}.

Every MO exactly one reply through Kannel: **{exactly_one}**: {i['written']:,} written by
fakesmsc, {i['inbound']:,} accepted, {i['answered']:,} answered, {i['missing']} missing,
{i['duplicated']} duplicated, {i['failed']} failed, {i['dead_letters']} dead letters in PostgreSQL;
{i['unanswered']:,} of the burst's counted MOs not answered when the bench stopped waiting (all
past the SLA); {i['phone_checked_replies']:,} replies at fakesmsc for the
{i['phone_checked_inbound']:,} MOs of the steps checked there
({', '.join(i['phone_checked_steps']) or 'none'}; a step stopped early, whose first fakesmsc
loses the MTs in its socket, and a burst still being fed when the bench stopped counting are
not); {i.get('delivered', 0):,} reply parts with Kannel's delivery report back.
"""


def _perturbation(details: dict[str, Any]) -> str:
    """A warning when something else used the machine during a measuring window."""
    busy = {name: details[name]["cpu"]["cores"].get(OTHER, 0.0)
            for name in ("saturate", "half", "burst") if details[name].get("cpu")}
    return _busy_warning(busy, "**Warning: something else used the machine during the run** "
                               "(cores outside the bench's processes: ",
                         "); the figures are lower than on a quiet machine.\n\n")


def _busy_warning(busy: dict[str, float], opening: str, closing: str) -> str:
    """`opening`, the cores used outside the measured processes per window, `closing`: or
    nothing when no window saw 0.2 cores or more of them."""
    if max(busy.values(), default=0.0) < 0.2:
        return ""
    return opening + ", ".join(f"{k} {v:.2f}" for k, v in busy.items()) + closing


def _depths(depths: dict[str, float]) -> str:
    return ", ".join(f"`{k}` {v:g}" for k, v in depths.items()) or "n/a"


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def _per_msg(cores: float, rate: float) -> float:
    return cores * 1000 / rate if rate else 0.0


def analysis(report: dict[str, Any]) -> str:
    """The bottleneck and what would raise throughput, from this run's own numbers."""
    d = report["details"]
    sat = d["saturate"]
    cpu = sat["cpu"]
    rate = sat["completed_per_s"]
    if not cpu or not rate or not d.get("inproc"):
        return "## Analysis\n\nNot enough data in this run for an analysis.\n"
    cores, backends = cpu["cores"], cpu["postgres_backends_by_client"]
    machine = _per_msg(cpu["machine_busy_cores"], rate)
    other = _per_msg(cores.get(OTHER, 0.0) + cores.get(STEAL, 0.0), rate)
    kernel = _per_msg(cores.get(KERNEL, 0.0), rate)
    loadgen = _per_msg(cores.get("loadgen", 0.0) + cores.get("bench", 0.0), rate)
    own = machine - other - loadgen
    one, fifty = d["inproc"][0], d["inproc"][-1]
    inproc = one["python_cpu_ms_per_msg"] + one["postgres_cpu_ms_per_msg"]
    steps = one["python_cpu_ms_per_msg_by_step"]
    services = [k for k in cores if k.startswith("worker-svc.")]
    stages = [("ingest (HTTP, INSERT, publish)", ["ingest"], "record"),
              ("dispatch task", ["worker-inbound"], "dispatch"),
              ("answer task", services, "answer"),
              ("deliver task", ["worker-outbound"], "deliver")]
    rows, hop_overheads = [], []
    for label, names, step in stages:
        python = sum(_per_msg(cores.get(n, 0.0), rate) for n in names)
        database = sum(_per_msg(backends.get(n, 0.0), rate) for n in names)
        alone = steps.get(step, 0.0)
        rows.append(f"| {label} | {python:.1f} | {database:.1f} | {alone:.2f} | "
                    f"{python - alone:.1f} |")
        if step in ("dispatch", "deliver"):
            hop_overheads.append(python - alone)
    hop = sum(hop_overheads) / len(hop_overheads)
    redis_ms = _per_msg(cores.get("redis", 0.0), rate)
    busy = cpu["machine_busy_cores"] / cpu["machine_cores"]
    bound = (f"At saturation the machine is {busy:.0%} busy (CPU-bound)"
             if busy > 0.9 else f"At saturation the machine is only {busy:.0%} busy (the "
                                 f"processes wait on each other more than on the CPU)")
    half = d["half"]["profile"]["stages_s"]
    slowest = max((k for k in half if k not in ("received_to_sent", "http_accept")
                   and half[k].get("n")), key=lambda k: half[k]["mean"], default=None)
    slowest_ms = half[slowest]["mean"] * 1000 if slowest else 0.0
    burst = d["burst"]
    target_ms = 1000 * (report["cores"] or 1) / 1000
    per_task = sat.get("messages_per_task", {})
    batches = ", ".join(f"{name} {n:g}" for name, n in per_task.items()) or "n/a"
    services_ms = sum(_per_msg(cores.get(n, 0.0) + backends.get(n, 0.0), rate)
                      for n in services)
    largest = sorted(((_per_msg(v + backends.get(k, 0.0), rate), k) for k, v in cores.items()
                      if k not in ("loadgen", "bench", OTHER, STEAL, KERNEL, "postgres")),
                     reverse=True)[:3]
    return f"""## Analysis

{bound} and a message costs {machine:.1f} ms of CPU (all cores together):
{own:.1f} ms in the gateway's own processes, Redis, PostgreSQL and the kernel's interrupt
handling of their loopback traffic ({kernel:.1f} ms), {loadgen:.2f} ms in the load generator
and the bench (on a real deployment the SMSC bridge runs elsewhere), and {other:.1f} ms in
other processes on the machine. The pipeline's own work, the same steps called in one
process with no HTTP, no broker and no logging, costs {inproc:.1f} ms per message in
batches of one ({one['python_cpu_ms_per_msg']:.1f} ms Python,
{one['postgres_cpu_ms_per_msg']:.1f} ms PostgreSQL) and
{fifty['python_cpu_ms_per_msg'] + fifty['postgres_cpu_ms_per_msg']:.1f} ms in batches of 50;
the parser's share is {1000 / report['parser_msgs_per_s']:.3f} ms. Redis takes
{redis_ms:.2f} ms per message (`e2e_to_broker_ratio` {report['e2e_to_broker_ratio']:.4f}).

**Batches.** Messages per task at saturation, counted from the workers' own "received"
lines over the window: {batches}. The ingest gathers a batch for 10 ms, and for up to
50 ms while tasks wait on `inbound` or `outbound`; each dispatch task then fans out one
answer task per service it found, and each answer task one deliver task. So the hops'
cost is shared by that many messages, and the steps' own CPU falls toward the batch-of-50
figure as the batches grow.

CPU per message at saturation, by stage (ms; Python = the process and its pool children,
PostgreSQL = the backends serving it; "alone" = the same step's Python in one process,
batches of one):

| stage | Python | PostgreSQL | alone | overhead |
|---|---|---|---|---|
{chr(10).join(rows)}

The largest consumers per message: {", ".join(f"{k} {v:.2f} ms" for v, k in largest)};
the four service workers together {services_ms:.2f} ms, of which the 8188 registrations'
argon2id hashes (about 30 ms of CPU each, 0.5% of the traffic) are about
{0.005 * 30:.2f} ms per message on average. A Celery hop beyond its work costs about
{hop:.1f} ms per message at these batch sizes (dispatch and deliver rows).

Latency at half load: p50 {_fmt(report.get('p50_latency_s_at_half_load'))} s, p99
{_fmt(report.get('p99_latency_s_at_half_load'))} s; the largest stage on average is
`{slowest}` ({slowest_ms:.1f} ms). In the burst ({burst['offered_per_s']:,.0f}/s offered)
the ingest took {burst['accepted_per_s']:,.0f}/s and replies went out at about
{burst['drain_rate_per_s']:,.0f}/s: {report['burst_sla_ok_ratio']:.1%} within the SLA of
receipt ({burst['sla_ok_ratio_from_offer']:.1%} counted from when the bridge had the
message). While the workers are behind, the ingest's longer batches hold each of the
bridge's {d['loadgen_connections']} connections longer, so the door takes about what the
workers clear and the rest waits at the bridge (up to
{_fmt(burst['client_lag_s'].get('max'))} s here), as an SMSC's store-and-forward would hold it.

The target of 1,000 msgs/s on {report['cores']} cores leaves {target_ms:.1f} ms of CPU per
message for everything. This run: {report['e2e_msgs_per_s']:,.0f} msgs/s, about
{1000 / max(report['e2e_msgs_per_s'], 1):.1f}x short.

## What would raise throughput

In order of expected gain, each estimated from the numbers above:

1. **Through Kannel, the door's cost per request.** Every reply through Kannel is three
   HTTP transactions (smsbox's get-url with the MO, the sendsms, the dlr-url with the
   receipt), two of them into the ingest, and smsbox, bearerbox and fakesmsc together
   spend 1.1-1.5 ms of CPU a reply on that path (0.16 ms with a static reply): at 800
   replies a second on {report['cores']} cores that leaves the gateway about 1 ms a reply.
   In the ingest's profile about a third of each request goes to FastAPI's and
   Starlette's middleware stack before the door is reached; serving the door and the lane
   as the outermost ASGI app, the app's routes behind them, takes that part.
2. **Fewer answer and deliver tasks.** Dispatch fans out per service, answer per batch:
   one worker consuming every `svc.*` queue could take a dispatch batch's services in one
   task, and fewer processes would share the cores; per-service workers stay one setting
   away for isolation. At half load the batches are smaller and each message pays more
   of a hop, which is what holds the p99 there.
3. **Logging per batch.** Celery's "received" and "succeeded" per task, and ours per
   message (received, routed, answered, sent), each formatted as JSON and masked (about
   0.07 ms a line): one line per batch at INFO, the per-message lines at DEBUG, a
   message's history read from PostgreSQL.
4. **The steps' own statements.** In one process, batches of 50 cost
   {fifty['python_cpu_ms_per_msg'] + fifty['postgres_cpu_ms_per_msg']:.1f} ms per message;
   the look-ups and inserts of a batch are already one statement each, the rest is
   pydantic and psycopg per row.
"""
