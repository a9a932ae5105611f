"""The operators' console: `govsms console`, on its own address (127.0.0.1:8090), never the
bridge's door.

    door.py         who is asking (the session), how much they send, whose form it is (CSRF)
    sessions.py     sessions in PostgreSQL, their CSRF tokens
    operators.py    operators' accounts: argon2id hashes from the settings and the data dir
    app.py          the pages: status, search -> timelines, dead letters and their replay,
                    the audit trail; templates/ (Jinja2) and console.css beside it
"""
