"""Argument checks that the engine, the envs, the games and the Ray driver share (numpy only: no torch to import)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """An int, Python's or numpy's, that is not a bool: `True` passes for 1 in Python but is never a count, an
    index or a seed."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def per_env_seeds(seed: int | Sequence[int | None] | None, n: int) -> list[int | None]:
    """The seed of each of `n` envs, as a vector env's reset takes it: an int gives env i `seed + i`, a list one
    each, None none."""
    if seed is None or is_int(seed):
        return [None if seed is None else _checked_seed(seed) + i for i in range(n)]
    if isinstance(seed, (Sequence, np.ndarray)) and not isinstance(seed, (str, bytes)) and len(seed) == n:
        return [check_seed(s) for s in seed]
    raise ValueError(f"seed must be None, an int, or a list of {n} seeds (one per env), got {seed!r}")


def check_seed(seed: Any) -> int | None:
    """A single env's reset seed: None or a non-negative int. Gymnasium itself would take `True` as seed 1."""
    return None if seed is None else _checked_seed(seed)


def _checked_seed(seed: Any) -> int:
    if not is_int(seed) or seed < 0:
        raise ValueError(f"a seed must be a non-negative int or None, got {seed!r}")
    return int(seed)
