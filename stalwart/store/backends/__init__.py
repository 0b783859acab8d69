"""Key-value backends of the store: ``memory`` (tests) and ``rocksdb`` (the default)."""
