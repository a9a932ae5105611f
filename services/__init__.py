"""govsms services."""
