"""govsms replies."""
