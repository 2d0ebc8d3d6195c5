"""Seeds of a vector env's envs, as `reset(seed=...)` takes them (light: no torch, so the Ray driver can use it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from waypoint_gym.checks import is_int


def per_env_seeds(seed: int | Sequence[int | None] | None, n: int) -> list[int | None]:
    """The seed of each of `n` envs, as a vector env's reset takes it: an int gives env i `seed + i`, a list one
    each, None none."""
    if seed is None or is_int(seed):
        return [None if seed is None else _checked(seed) + i for i in range(n)]
    if isinstance(seed, (Sequence, np.ndarray)) and not isinstance(seed, str) and len(seed) == n:
        return [None if s is None else _checked(s) for s in seed]
    raise ValueError(f"seed must be None, an int, or a list of {n} seeds (one per env), got {seed!r}")


def _checked(seed) -> int:
    if not is_int(seed) or seed < 0:
        raise ValueError(f"a seed must be a non-negative int or None, got {seed!r}")
    return int(seed)
