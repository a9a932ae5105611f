"""SMPP 3.4 to the operator's SMSC (smpplib): bind, submit_sm, keep-alive, reconnect, rate limit.

URL: `smpp://SYSTEM_ID:PASSWORD@HOST:PORT?mode=transmitter&tps=20&...`, options in
`config.SmppConfig` (and docs/delivery.md). One `link.SmppLink` is one bind; the
`transport.SmppTransport` submits on it (recording in `unanswered` the submits whose
answer is late), the SMPP ingest (workers/ingest/smpp.py) receives on one.

Nothing is imported here, so that the receiver takes the link without the transport.
"""
