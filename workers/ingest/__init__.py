"""The doors through which messages come in: the bridge's HTTP routes, the client API and
the SMPP receiver, all recording and enqueueing through one `accept.Ingest`."""
