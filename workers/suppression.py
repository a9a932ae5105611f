"""Which MOs get no reply, and why: decided in dispatch, before any service is asked.

    sender   not a person who could read a reply: letters (an operator's `BEELINE`), a
             short code, one of our own codes, anything else that is not E.164 once the
             ingest normalised it                             -> suppressed, never answered
    repeat   the same text from the same phone within `repeat_s` -> answered once
    flood    past `per_phone` MOs from one phone within a `window_s` window: the next one
             gets one reply saying so (`too_many`), the rest none until the window passes

So an auto-responder that answers our replies (a loop that costs both sides money) or a
phone that sends thousands of MOs is answered a few times, then recorded and left alone.
A suppressed MO is never dropped: its inbound row says `suppressed` and a `suppressions`
row its reason (the operator's `govsms status`, `govsms_suppressed_total{reason}`).

The counters are in Redis under a keyed digest of the phone (never the number), one round
trip a batch, and idempotent per message: a batch dispatched again (a retry, a redelivery,
the reconciler) gets the same verdicts. If Redis cannot be read, the batch is answered: a
citizen is never silenced because a counter could not be kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import redis

from workers.messages import Inbound

log = logging.getLogger(__name__)

ANSWER = "answer"
TOO_MANY = "too_many"
FLOOD, REPEAT = "flood", "repeat"
SENDER_REASONS = ("sender_alphanumeric", "sender_short_code", "sender_own_code",
                  "sender_malformed")
REASONS = (*SENDER_REASONS, FLOOD, REPEAT)
_VERDICTS = (ANSWER, TOO_MANY, FLOOD, REPEAT)  # the script's answers, by number

_E164 = re.compile(r"\+[1-9]\d{7,14}")
_SHORT_CODE = re.compile(r"\d{3,6}")


def sender_problem(sender: str, own_codes: Collection[str]) -> str | None:
    """Why `sender`, as the ingest stored it (E.164 when it parsed as a phone number), is no
    person a reply could reach, or None when it is one."""
    bare = sender.strip().removeprefix("+")
    if bare in own_codes:
        return "sender_own_code"
    if _E164.fullmatch(sender):
        return None
    if any(c.isalpha() for c in sender):
        return "sender_alphanumeric"
    if _SHORT_CODE.fullmatch(bare):
        return "sender_short_code"
    return "sender_malformed"


# Per message (KEYS: its repeat key, its flood key; ARGV: its id): 0 answer, 1 too many (the
# one reply saying so), 2 flood, 3 repeat. A key already holding this message's own id is a
# run again, not a repeat; the flood rank is the message's place by id in its window, whose
# set holds at most limit + 1 ids (and those of batches that raced it).
_SCRIPT = """
local limit, window, repeat_s = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local id, n = ARGV[i], i - 3
  local verdict = 0
  if repeat_s > 0 then
    local first = redis.call('GET', KEYS[2 * n - 1])
    if not first then
      redis.call('SET', KEYS[2 * n - 1], id, 'EX', repeat_s)
    elseif first ~= id then
      verdict = 3
    end
  end
  if verdict == 0 and limit > 0 then
    local key = KEYS[2 * n]
    if not redis.call('ZSCORE', key, id) and redis.call('ZCARD', key) > limit then
      verdict = 2  -- the window is full (answered, and told so): nothing more need be kept
    else
      redis.call('ZADD', key, id, id)
      redis.call('EXPIRE', key, window)
      local rank = redis.call('ZRANK', key, id)
      if rank == limit then verdict = 1 elseif rank > limit then verdict = 2 end
    end
  end
  out[n] = verdict
end
return out
"""


@dataclass
class Guard:
    """The rules above for one gateway: its short codes, and its limits in Redis (`client`
    None: the sender rule only)."""

    own_codes: frozenset[str]
    client: redis.Redis | None = None
    key: bytes = b""
    per_phone: int = 10
    window_s: int = 600
    repeat_s: int = 60
    _script: object = field(default=None, init=False, repr=False)

    def verdicts(self, rows: Sequence[Inbound]) -> list[str]:
        """For each row: ANSWER, TOO_MANY, or the reason it is suppressed."""
        out = [sender_problem(row.sender, self.own_codes) or ANSWER for row in rows]
        counted = [n for n, verdict in enumerate(out) if verdict == ANSWER]
        if not counted or self.client is None or (self.per_phone <= 0 and self.repeat_s <= 0):
            return out
        keys: list[str] = []
        for n in counted:
            row = rows[n]
            text = " ".join(row.text.split()).casefold()
            window = int(row.received_at.timestamp()) // max(self.window_s, 1)
            keys += [f"govsms:repeat:{self._digest(row.sender, text)}",
                     f"govsms:flood:{self._digest(row.sender)}:{window}"]
        if self._script is None:
            self._script = self.client.register_script(_SCRIPT)
        try:
            found = self._script(keys=keys, args=[  # type: ignore[operator]
                self.per_phone, self.window_s, self.repeat_s, *(rows[n].id for n in counted)])
        except redis.RedisError as error:
            log.warning("flood and repeat limits not counted (%s): the batch is answered",
                        type(error).__name__)
            return out
        for n, code in zip(counted, found, strict=True):
            out[n] = _VERDICTS[int(code)]
        return out

    def _digest(self, *parts: str) -> str:
        return hmac.new(self.key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()[:32]
