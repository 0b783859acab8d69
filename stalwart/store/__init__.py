"""The shared store: one mail-level API (api.Store) over RocksDB (one writer process) or
memory. See docs/architecture.md and the module docstrings of api, engine and server."""

from .api import Store
from .errors import StoreError

__all__ = ["Store", "StoreError"]
