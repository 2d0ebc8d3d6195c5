"""SB3VecEnv: a Gymnasium VectorEnv (such as WaypointVectorEnv) handed to stable-baselines3 as its VecEnv."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn


def _unbatch_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info dict (arrays plus `_key` masks) -> SB3's list of one dict per env."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(n, bool))
        parts = _unbatch_infos(value, n) if isinstance(value, dict) else value
        for i in range(n):
            if mask[i]:
                out[i][key] = parts[i].item() if isinstance(parts[i], np.generic) else parts[i]
    return out


def _take(obs: Any, i: int) -> Any:
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def _where(mask: np.ndarray, new: Any, old: Any) -> Any:
    if isinstance(new, dict):
        return {k: _where(mask, new[k], old[k]) for k in new}
    return np.where(mask.reshape(-1, *([1] * (new.ndim - 1))), new, old)


class SB3VecEnv(VecEnv):
    """Hands a Gymnasium VectorEnv (e.g. WaypointVectorEnv under an action wrapper) to stable-baselines3.

    SB3 resets an env in the step that ends it and reports the last observation as
    `info["terminal_observation"]`; this adapter does that with a partial `reset(options={"reset_mask": done})`,
    so the vector env's own next-step autoreset never fires. Truncations are reported as
    `info["TimeLimit.truncated"]`. Wrap it in `VecMonitor` for episode statistics.
    """

    def __init__(self, venv: gym.vector.VectorEnv):
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> Any:
        seed = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = None
        if any(self._options):  # SB3 keeps options per env; pass them on as per-env lists
            options = {k: [o.get(k) for o in self._options] for k in {k for o in self._options for k in o}}
        obs, info = self.venv.reset(seed=seed, options=options)
        self.reset_infos = _unbatch_infos(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos = _unbatch_infos(info, self.num_envs)
        for i in range(self.num_envs):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = _take(obs, i)
            reset_obs, reset_info = self.venv.reset(options={"reset_mask": dones})
            obs = _where(dones, reset_obs, obs)
            for i, ri in enumerate(_unbatch_infos(reset_info, self.num_envs)):
                if dones[i]:
                    self.reset_infos[i] = ri
        return obs, np.asarray(rewards, np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.venv.render() if self.venv.render_mode == "rgb_array" else None
        return list(frames) if frames is not None else [None] * self.num_envs

    # The batched env is one object: attributes and methods are the vector env's, reported once per env.

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.venv, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
