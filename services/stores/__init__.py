"""SQL of the backing stores, one module per store."""
