"""Rewards for a world model that has none: the `reward_fn` protocol and three built-ins.

A reward function is called once per step and environment as `reward_fn(prev_obs, action, obs, info)`:
`prev_obs` and `obs` are the agent's observations (uint8 HxWx3) before and after the step, `action` the
Dict action, and `info` the step's info plus two entries only reward functions see: `latent` and
`prev_latent`, the float32 latents [C, h, w] (torch tensors) of the new and the previous frame.
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np
import torch


class RewardFn(Protocol):
    def __call__(self, prev_obs: np.ndarray, action: dict[str, np.ndarray], obs: np.ndarray, info: dict) -> float:
        """The reward of one step."""
        ...


def zero_reward(prev_obs: np.ndarray, action: dict[str, np.ndarray], obs: np.ndarray, info: dict) -> float:
    """Always 0.0: the default while the world has no reward head."""
    return 0.0


class NoveltyReward:
    """How much the world changed: `scale` * mean squared difference of the new and the previous frame's latent.

    Rewards the agent for reaching views unlike the last one (moving, turning), in the model's own latent
    space, so it costs nothing beyond the step.
    """

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def __call__(self, prev_obs: np.ndarray, action: dict[str, np.ndarray], obs: np.ndarray, info: dict) -> float:
        z, z_prev = info["latent"], info["prev_latent"]
        return self.scale * float(torch.mean((z.float() - z_prev.float()) ** 2))

    def __repr__(self) -> str:
        return f"NoveltyReward(scale={self.scale})"


class GoalImageReward:
    """Similarity of the observation to a goal image: 1 - mean |obs - goal| / 255, in [0, 1] (1: identical).

    The goal (uint8 HxWx3, any size) is resized to the observation's size once, on first use.
    """

    def __init__(self, goal: np.ndarray):
        goal = np.asarray(goal)
        if goal.dtype != np.uint8 or goal.ndim != 3 or goal.shape[-1] != 3:
            raise ValueError(f"goal must be a uint8 HxWx3 image, got dtype {goal.dtype} and shape {goal.shape}")
        self.goal = goal
        self._resized: np.ndarray | None = None

    def __call__(self, prev_obs: np.ndarray, action: dict[str, np.ndarray], obs: np.ndarray, info: dict) -> float:
        if self._resized is None or self._resized.shape != obs.shape:
            h, w = obs.shape[:2]
            self._resized = cv2.resize(self.goal, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        return 1.0 - float(np.abs(obs.astype(np.float32) - self._resized).mean()) / 255.0


REWARDS: dict[str, Any] = {"zero": lambda: zero_reward, "novelty": NoveltyReward}


def make_reward_fn(reward_fn: RewardFn | str | None) -> RewardFn:
    """A reward function, or the name of a built-in one ("zero", "novelty"); None means zero."""
    if reward_fn is None:
        return zero_reward
    if isinstance(reward_fn, str):
        if reward_fn not in REWARDS:
            raise ValueError(f"unknown reward_fn {reward_fn!r}; built-in names: {sorted(REWARDS)} (or pass a callable)")
        return REWARDS[reward_fn]()
    if not callable(reward_fn):
        raise TypeError(f"reward_fn must be callable (prev_obs, action, obs, info) -> float, got {reward_fn!r}")
    return reward_fn
