"""WaypointVectorEnv: N environments in one batched forward pass of one WorldEngine."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from waypoint_gym.checks import is_int, per_env_seeds
from waypoint_gym.display import require_display

from .rewards import RewardFn
from .spaces import action_space
from .world_batch import (
    Prompt,
    WorldBatch,
    check_max_episode_steps,
    default_reward_fn,
    describe_prompt,
    episode_options,
    episode_start,
    step_rate,
    step_rewards,
    video_frames,
)

log = logging.getLogger(__name__)


class WaypointVectorEnv(VectorEnv):
    """`num_envs` copies of WaypointWorldEnv that share one model: each step is one batched forward pass.

    Every sub-environment has its own history (KV cache rows), frame index, prompt, seed frames and random
    generator, so its rollout equals that of a WaypointWorldEnv with the same arguments and seed (up to
    float rounding of batched matrix products). The arguments are WaypointWorldEnv's, with `num_envs` and:

    - `prompt`: one prompt for all, or a list of `num_envs` (per env; entries may be None);
    - `seed_frames`: one image or an array [n, H, W, 3] for all, or a list of `num_envs` entries (each None,
      an image, or a sequence of images) per env.

    With `timing`, `info["step_time"]` is the wall-clock seconds of the whole batched step, the same for every env.

    `reset(seed, options)`: an int seed gives env i the seed `seed + i`, a list gives one each; `options`
    may hold `prompt` and `seed_frames` as above, and `reset_mask` (bool [num_envs]) to reset some envs only.
    Autoreset is Gymnasium's next-step mode: the step after an env ends resets it (its action is ignored,
    reward 0), to a start drawn by `start_fn` (with that env's generator) if given, else back to the
    constructor's prompt and seed frames.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        model: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: Prompt | list[Prompt] = None,
        seed_frames: Any = None,
        keys: Sequence[str] | None = None,
        mouse_scale: float | None = None,
        n_denoise_steps: int | None = None,
        obs_size: int | tuple[int, int] | None = None,
        max_episode_steps: int | None = None,
        reward_fn: RewardFn | str | None = None,
        render_mode: str | None = None,
        prompt_encoder: Callable | None = None,
        timing: bool = False,
        start_fn: Callable[[np.random.Generator], dict] | None = None,
        frames_per_step: int = 1,
    ):
        self._init_kwargs = dict(
            num_envs=num_envs, model=model, device=device, dtype=dtype, prompt=prompt, seed_frames=seed_frames,
            keys=keys, mouse_scale=mouse_scale, n_denoise_steps=n_denoise_steps, obs_size=obs_size,
            max_episode_steps=max_episode_steps, reward_fn=reward_fn, render_mode=render_mode,
            prompt_encoder=prompt_encoder, timing=timing, start_fn=start_fn, frames_per_step=frames_per_step,
        )
        if start_fn is not None and not callable(start_fn):
            raise TypeError(f"start_fn must be a callable np_random -> dict, got {type(start_fn).__name__}")
        self.start_fn = start_fn
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if render_mode == "human":
            require_display("render_mode='human'")
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.max_episode_steps = check_max_episode_steps(max_episode_steps)
        self.world = WorldBatch.load(
            model, device, dtype, self.num_envs, keys, mouse_scale, n_denoise_steps, obs_size, prompt_encoder,
            frames_per_step,
        )
        self.metadata = {**self.metadata, "render_fps": step_rate(self.world)}
        self.engine = self.world.engine
        self.reward_fn = default_reward_fn(reward_fn, self.world)
        self.keys = self.world.keys
        self.macro_actions = self.world.config.extra.get("macro_actions")  # the checkpoint's discrete action table
        self.single_action_space = action_space(len(self.keys))
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = spaces.Box(0, 255, self.world.obs_shape, np.uint8)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.prompts = self._per_env_prompts(self.world.default_prompt if prompt is None else prompt)
        for p in self.prompts:
            self.world.prompt_rows(p)  # encode text prompts now, so a missing encoder fails here
        self.seed_frames = self._per_env_frames(seed_frames)

        n = self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._autoreset = np.zeros(n, bool)
        self._started = np.zeros(n, bool)
        self._window: str | None = None
        self.timing = bool(timing)
        self.step_time = 0.0

    # ------------------------------------------------------------------------------------ per-env inputs

    def _per_env_prompts(self, prompt: Any) -> list[Prompt]:
        if isinstance(prompt, (list, tuple)):
            if len(prompt) != self.num_envs:
                raise ValueError(f"a list of prompts must have one per env ({self.num_envs}), got {len(prompt)}")
            return [self.world.check_prompt(p) for p in prompt]
        return [self.world.check_prompt(prompt)] * self.num_envs

    def _per_env_frames(self, frames: Any) -> list[np.ndarray | None]:
        if isinstance(frames, list):
            if len(frames) != self.num_envs:
                raise ValueError(
                    f"a list of seed_frames gives one entry per env ({self.num_envs}), got {len(frames)}; "
                    "for one sequence shared by all envs pass an array [n, H, W, 3]"
                )
            return [self.world.check_seed_frames(f) for f in frames]
        return [self.world.check_seed_frames(frames)] * self.num_envs

    def _rng(self, i: int) -> np.random.Generator:
        if self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random()
        return self._rngs[i]

    # ------------------------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        n = self.num_envs
        opts = episode_options(None, None, options, extra=("reset_mask",))
        mask = opts.get("reset_mask")
        if mask is None:
            mask = np.ones(n, bool)
        elif not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,) or not mask.any():
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({n},) with a True, got {mask!r}")
        seeds = per_env_seeds(seed, n)
        rows = [int(i) for i in np.flatnonzero(mask)]
        # None, or a None entry of a per-env list, falls back to the constructor's prompt and seed frames.
        prompts = self._per_env_prompts(opts.get("prompt"))
        frames = self._per_env_frames(opts.get("seed_frames"))
        for i in rows:
            if seeds[i] is not None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        if is_int(seed):
            super().reset(seed=int(seed))
        t0 = perf_counter()
        starts = [self._episode_start(i, prompts[i], frames[i]) for i in rows]
        self._start(rows, [p for p, _ in starts], [f for _, f in starts])
        self._autoreset[rows] = False
        return self.world.obs.copy(), self._infos(rows, perf_counter() - t0)

    def _episode_start(self, i: int, prompt: Prompt, frames: np.ndarray | None) -> tuple[Prompt, np.ndarray | None]:
        """Env i's prompt and seed frames: those given, else drawn by `start_fn`, else the constructor's."""
        return episode_start(self.world, self.start_fn, self._rng(i), prompt, frames, self.prompts[i],
                             self.seed_frames[i])

    def _start(self, rows: list[int], prompts: list[Prompt], frames: list[np.ndarray | None]) -> None:
        self.world.start(rows, prompts, frames, [self._rng(i) for i in rows])
        self._started[rows] = True

    def step(
        self, actions: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started.all():
            never = np.flatnonzero(~self._started).tolist()
            raise RuntimeError(f"call reset() before step() (envs {never} were never reset)")
        n = self.num_envs
        pressed, mouse = self.world.keymap.check(actions, batch=n)
        stepping = [int(i) for i in np.flatnonzero(~self._autoreset)]
        resetting = [int(i) for i in np.flatnonzero(self._autoreset)]
        rewards = np.zeros(n, np.float64)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        t0 = perf_counter()
        if stepping:
            step = self.world.step(stepping, pressed[stepping], mouse[stepping], [self._rng(i) for i in stepping])
        if resetting:
            starts = [self._episode_start(i, None, None) for i in resetting]
            self._start(resetting, [p for p, _ in starts], [f for _, f in starts])
        seconds = perf_counter() - t0
        infos = self._infos(list(range(n)), seconds)
        if stepping:
            per_env = [{k: v[i] for k, v in infos.items() if not k.startswith("_")} for i in stepping]
            acts = [{k: np.asarray(v)[i] for k, v in actions.items()} for i in stepping]
            rewards[stepping], terminated[stepping] = step_rewards(self.reward_fn, stepping, self.world.obs, acts,
                                                                   step, per_env)
        if self.max_episode_steps is not None:
            steps = self.world.steps[stepping]
            truncated[stepping] = (steps >= self.max_episode_steps) & ~terminated[stepping]
        self._autoreset = terminated | truncated
        if self.render_mode == "human":
            self.render()
        return self.world.obs.copy(), rewards, terminated, truncated, infos

    def _infos(self, rows: list[int], seconds: float) -> dict[str, Any]:
        """Gymnasium's vector info layout: an array per key and a `_key` mask of the envs that report it."""
        n = self.num_envs
        mask = np.zeros(n, bool)
        mask[rows] = True
        prompts = np.full(n, None, dtype=object)
        for i in rows:
            prompts[i] = describe_prompt(self.world.prompts[i])
        self.step_time = seconds
        infos = {
            "frame_index": np.where(mask, self.engine.frame_index(), 0), "_frame_index": mask,
            "prompt": prompts, "_prompt": mask.copy(),
        }
        if self.world.frames_per_latent > 1:
            covered = video_frames(self.world, self.engine.frame_index(), self.world.steps)
            infos.update(video_frames=np.where(mask[:, None], covered, 0), _video_frames=mask.copy())
        if self.timing:
            infos.update(step_time=np.where(mask, seconds, 0.0), _step_time=mask.copy())
        return infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='rgb_array' or 'human'")
            return None
        if self.render_mode == "rgb_array":
            return tuple(f.copy() for f in self.world.frames)
        self._window = self._window or f"Waypoint x{self.num_envs} ({id(self):x})"
        cv2.imshow(self._window, cv2.cvtColor(cv2.hconcat(list(self.world.frames)), cv2.COLOR_RGB2BGR))
        cv2.waitKey(1)
        return None

    def close_extras(self, **kwargs: Any) -> None:
        if self._window is not None:
            cv2.destroyWindow(self._window)
            self._window = None

    def __getstate__(self) -> dict[str, Any]:
        return {"init_kwargs": self._init_kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["init_kwargs"])
