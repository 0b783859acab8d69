"""Store operations, one module per concern; each registers with engine.operation."""
