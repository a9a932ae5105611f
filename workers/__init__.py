"""govsms workers."""
