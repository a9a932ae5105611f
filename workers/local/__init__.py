"""The gateway on one machine: `govsms run`, its supervisor, embedded servers, demo data and
the one way every harness starts the gateway's processes."""
