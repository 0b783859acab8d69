"""Shared helpers for the sans-IO protocol tests.

Every parser is fed each input in several ways (STYLE.md habit 2): whole, line by line,
byte by byte, and at random split points from a seeded generator, because a receiver that
works only when the network happens to deliver whole lines is wrong. ``feed_ways`` is the
one definition of those ways; a failing case names the way and the seed in its message.
"""

from __future__ import annotations

import random
from typing import Callable

import pytest

Chunking = tuple[str, list[bytes]]


def _lines(data: bytes) -> list[bytes]:
    """Split after every LF, keeping the LF (CR stays with its line)."""
    out, start = [], 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            break
        out.append(data[start:end + 1])
        start = end + 1
    if start < len(data):
        out.append(data[start:])
    return out


def random_split(data: bytes, rng: random.Random, max_piece: int = 16) -> list[bytes]:
    """Cut ``data`` into pieces of 0..max_piece bytes (empty pieces included on purpose)."""
    out, i = [], 0
    while i < len(data):
        k = rng.randint(0, max_piece)
        out.append(data[i:i + k])
        i += k
    return out


def split_ways(data: bytes, seed: int = 0, random_rounds: int = 3) -> list[Chunking]:
    """``[(label, chunks)]``: whole, by line, byte by byte and ``random_rounds`` random cuts."""
    ways: list[Chunking] = [
        ("whole", [data]),
        ("lines", _lines(data)),
        ("bytes", [data[i:i + 1] for i in range(len(data))]),
    ]
    for r in range(random_rounds):
        rng = random.Random(f"{seed}/{r}")
        ways.append((f"random seed={seed}/{r}", random_split(data, rng)))
    return ways


@pytest.fixture
def feed_ways() -> Callable[..., list[Chunking]]:
    """The function ``split_ways(data, seed=0, random_rounds=3)``."""
    return split_ways
