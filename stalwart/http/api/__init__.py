"""The REST management API under /api (being written)."""
from ..router import Router


def build_router(config, store):
    return Router()
