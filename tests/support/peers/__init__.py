"""Real peers the tests start: Kannel (bearerbox, smsbox, fakesmsc) and an SMPP server (SMSC)."""
