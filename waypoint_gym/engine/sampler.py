"""Rectified-flow sampling: the few-step schedule and its Euler steps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from waypoint_gym.checks import is_int


def sub_schedule(sigmas: list[float], n_steps: int | None) -> list[float]:
    """`n_steps` denoising steps chosen from a checkpoint's schedule (evenly spaced indices, ends kept).

    The schedule of N steps has N + 1 sigmas from 1.0 down to 0.0; asking for k <= N steps keeps sigmas
    at indices round(linspace(0, N, k + 1)), so 1 step jumps from 1.0 straight to 0.0.
    """
    n_full = len(sigmas) - 1
    if n_steps is None:
        return list(sigmas)
    if not is_int(n_steps) or not 1 <= n_steps <= n_full:
        raise ValueError(f"n_denoise_steps must be an integer in [1, {n_full}] for this checkpoint, got {n_steps!r}")
    idx = np.round(np.linspace(0, n_full, n_steps + 1)).astype(int)
    return [sigmas[i] for i in idx]


def euler_denoise(
    x: torch.Tensor, sigmas: list[float], velocity: Callable[[torch.Tensor, int], torch.Tensor]
) -> torch.Tensor:
    """x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v(x_i, step i), from pure noise at sigmas[0] to sigmas[-1]."""
    for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:])):
        x = x + (s_next - s) * velocity(x, i)
    return x
