"""One seed in config, split into independent named random streams."""

from __future__ import annotations

import zlib

import numpy as np


def stream_seed(seed: int, *names: str | int) -> int:
    """A 31-bit seed for the stream ``names`` derived from the run's one ``seed``.

    numpy's SeedSequence ignores trailing zero words, so ``(seed, "x", 0)`` is the stream ``(seed, "x")``: give one
    stream's names in one form only (every caller passes a fixed number of names per stream name)."""
    keys = [int(seed)] + [zlib.crc32(n.encode()) if isinstance(n, str) else int(n) for n in names]
    return int(np.random.SeedSequence(keys).generate_state(1, dtype=np.uint32)[0] >> 1)


def stream_rng(seed: int, *names: str | int) -> np.random.Generator:
    """A numpy Generator for the stream ``names``."""
    return np.random.default_rng(stream_seed(seed, *names))
