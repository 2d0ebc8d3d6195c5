"""Seeds of a vector env's envs, as `reset(seed=...)` takes them (light: no torch, so the Ray driver can use it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def per_env_seeds(seed: int | Sequence[int | None] | None, n: int) -> list[int | None]:
    """The seed of each of `n` envs, as a vector env's reset takes it: an int gives env i `seed + i`, a list one
    each, None none."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return [None if seed is None else int(seed) + i for i in range(n)]
    if isinstance(seed, (Sequence, np.ndarray)) and len(seed) == n:
        return [None if s is None else int(s) for s in seed]
    raise ValueError(f"seed must be None, an int, or a list of {n} seeds (one per env), got {seed!r}")
