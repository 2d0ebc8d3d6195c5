"""Argument checks that the engine, the envs and the Ray driver share (numpy only: no torch to import)."""

from __future__ import annotations

from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """An int, Python's or numpy's, that is not a bool: `True` passes for 1 in Python but is never a count, an
    index or a seed."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
