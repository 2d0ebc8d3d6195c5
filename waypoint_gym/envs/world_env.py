"""WaypointWorldEnv: one agent inside a generative world model, as a Gymnasium environment."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from waypoint_gym.checks import check_seed
from waypoint_gym.display import require_display, usable_render_modes

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


class WaypointWorldEnv(gym.Env[np.ndarray, dict[str, np.ndarray]]):
    """
    ## Description

    An agent inside a real-time generative world model of the Waypoint family: every step, the model denoises
    the next video frame conditioned on the frames so far, the keys the agent holds and its mouse motion.
    There is no simulator behind the pictures; the world is what the model imagines. The model runs on
    `device` through `waypoint_gym.engine.WorldEngine`, and its image autoencoder turns latents into frames.

    ## Action Space

    `Dict({"keys": MultiBinary(len(keys)), "mouse": Box(-1, 1, (2,), float32)})`.

    - `keys[i] = 1` holds the key named `keys[i]` for this frame (default `("W", "A", "S", "D", "SPACE",
      "SHIFT")`, or the model config's `default_keys`). Names map to the model's keycodes through
      `waypoint_gym.engine.KEYCODES`.
    - `mouse = (dx, dy)`: the mouse velocity, multiplied by `mouse_scale` (default: the model config's
      `mouse_scale`, else 1.0) to the model's velocity units.

    An action outside the space (wrong entries or shapes, keys other than 0/1, a NaN, infinite or
    out-of-range mouse) raises a `TypeError`/`ValueError` naming the problem, before the model is touched:
    the episode continues as if the step had not been asked for.

    ## Observation Space

    `Box(0, 255, (H, W, 3), uint8)`: the generated RGB frame, resized with OpenCV to `obs_size` if given,
    else at the autoencoder's output size.

    ## Rewards

    A checkpoint that ships a reward and termination head (`reward_head/` beside its config, see
    `waypoint_gym.engine.reward_head`) gives the reward by default: the head reads the previous and the new
    frame's latents and the action. Otherwise, or when `reward_fn` is given, the reward is
    `reward_fn(prev_obs, action, obs, info) -> float` (see `waypoint_gym.envs.rewards`); built-ins: `"zero"`
    (the default without a head), `"novelty"` (latent change between frames) and `GoalImageReward(goal)`
    (similarity to a goal image).

    ## Starting State

    `reset` forgets the world's history, sets the episode's prompt and appends the seed frames, one cache
    pass each, with no keys held; the first observation is the last seed frame. Without seed frames, an
    episode under the checkpoint's `default_prompt` (or no prompt) starts from the model's default start: the
    frames in `start_frames.npy` of the checkpoint folder (uint8 `[n, H, W, 3]`) if it ships one, otherwise
    one mid-grey frame (all pixels 128). Under any other prompt the world generates its first frame from the
    prompt alone (no keys held), since the start frames show the default prompt's world. With a `seed`, the
    whole episode is reproducible: the denoising noise of every step is drawn from `self.np_random`.

    ## Episode End

    The episode terminates when the checkpoint's reward head predicts the end (a world without one never
    terminates). It is truncated after `max_episode_steps` steps if that is set.

    ## Arguments

    - `model`: a hub repo id, a local checkpoint folder, or a short name (`"waypoint-1-small"`); None opens
      the bundled default world (`waypoint_gym/assets/default_world`).
    - `device`, `dtype` (`torch.dtype` or `"float32"`, `"bfloat16"`, `"float16"`), `n_denoise_steps`
      (fewer than the checkpoint's schedule trades quality for speed).
    - `prompt`: a text (needs the model's prompt encoder), an embedding `[P, prompt_embedding_dim]`, or None
      (the checkpoint's `default_prompt` if its config has one, else an all-zero embedding). Ignored, with a
      warning, by a model without prompt conditioning.
    - `seed_frames`: one uint8 HxWx3 image (any size: resized to the model's input), a sequence, or None.
    - `keys`, `mouse_scale`, `obs_size` (int or (height, width)), `max_episode_steps`, `reward_fn`
      (callable or built-in name), `render_mode` (`"rgb_array"`, or `"human"`: an OpenCV window).
    - `prompt_encoder`: a callable `texts -> (embedding [N, P, Dp], pad mask [N, P])` used instead of the
      encoder the checkpoint names (e.g. a smaller or cached one).
    - `timing`: add `step_time` to `info`, the wall-clock seconds of the step (or reset) spent in the model and
      decoder. Off by default, because Gymnasium's `check_env` requires the same info for the same seed;
      `self.step_time` holds it either way.

    `reset(seed=None, options=None, prompt=None, seed_frames=None)`: `prompt` and `seed_frames` may also be
    given in `options`; those not given fall back to the constructor's. `info` holds `frame_index` (frames
    in the world's history, seed frames included) and `prompt` (the text, or a note for an embedding).

    The env pickles by its constructor arguments: an unpickled copy builds its engine anew and must be reset.

    ## Version History

    - v0: first version.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: Prompt = None,
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
            model=model, device=device, dtype=dtype, prompt=prompt, seed_frames=seed_frames, keys=keys,
            mouse_scale=mouse_scale, n_denoise_steps=n_denoise_steps, obs_size=obs_size,
            max_episode_steps=max_episode_steps, reward_fn=reward_fn, render_mode=render_mode,
            prompt_encoder=prompt_encoder, timing=timing, start_fn=start_fn, frames_per_step=frames_per_step,
        )
        if start_fn is not None and not callable(start_fn):
            raise TypeError(f"start_fn must be a callable np_random -> dict, got {type(start_fn).__name__}")
        self.start_fn = start_fn
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if render_mode == "human":
            require_display("render_mode='human'")
        self.metadata = usable_render_modes(self.metadata)  # what gymnasium's check_env tries
        self.render_mode = render_mode
        self.max_episode_steps = check_max_episode_steps(max_episode_steps)
        self.world = WorldBatch.load(model, device, dtype, 1, keys, mouse_scale, n_denoise_steps, obs_size,
                                     prompt_encoder, frames_per_step)
        self.metadata = {**self.metadata, "render_fps": step_rate(self.world)}
        self.engine = self.world.engine
        self.reward_fn = default_reward_fn(reward_fn, self.world)
        self.keys = self.world.keys
        self.macro_actions = self.world.config.extra.get("macro_actions")  # the checkpoint's discrete action table
        self.action_space = action_space(len(self.keys))
        self.observation_space = spaces.Box(0, 255, self.world.obs_shape, np.uint8)
        self.prompt = self.world.check_prompt(self.world.default_prompt if prompt is None else prompt)
        self.world.prompt_rows(self.prompt)  # encode a text prompt now, so a missing encoder fails here
        self.seed_frames = self.world.check_seed_frames(seed_frames)
        self._started = False
        self._window: str | None = None
        self.timing = bool(timing)
        self.step_time = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None, prompt: Prompt = None,
        seed_frames: Any = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        opts = episode_options(prompt, seed_frames, options)
        prompt = self.world.check_prompt(opts["prompt"]) if opts.get("prompt") is not None else None
        frames = self.world.check_seed_frames(opts.get("seed_frames"))
        super().reset(seed=check_seed(seed))
        prompt, frames = episode_start(self.world, self.start_fn, self.np_random, prompt, frames, self.prompt,
                                       self.seed_frames)
        t0 = perf_counter()
        self.world.start([0], [prompt], [frames], [self.np_random])
        self._started = True
        if self.render_mode == "human":
            self.render()
        return self.world.obs[0].copy(), self._info(perf_counter() - t0)

    def step(self, action: dict[str, np.ndarray]) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        pressed, mouse = self.world.keymap.check(action)
        step = self.world.step([0], pressed[None], mouse[None], [self.np_random])
        info = self._info(step.seconds)
        reward, terminated = step_rewards(self.reward_fn, [0], self.world.obs, [action], step, [info])
        truncated = bool(self.max_episode_steps is not None and self.world.steps[0] >= self.max_episode_steps)
        if self.render_mode == "human":
            self.render()
        done = bool(terminated[0])
        return self.world.obs[0].copy(), float(reward[0]), done, truncated and not done, info

    def _info(self, seconds: float) -> dict[str, Any]:
        self.step_time = seconds
        frame = int(self.engine.frame_index(0)[0])
        info = {"frame_index": frame, "prompt": describe_prompt(self.world.prompts[0])}
        if self.world.frames_per_latent > 1:
            info["video_frames"] = video_frames(self.world, np.array([frame]), self.world.steps[:1])[0]
        if self.timing:
            info["step_time"] = seconds
        return info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='rgb_array' or 'human'")
            return None
        if not self._started:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "rgb_array":
            return self.world.frames[0].copy()
        self._window = self._window or f"Waypoint ({id(self):x})"
        clip = self.world.clips[0]  # the step's video frames, shown at the video frame rate
        for frame in clip:
            cv2.imshow(self._window, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            cv2.waitKey(max(1, math.floor(1000 / (self.metadata["render_fps"] * len(clip)))))
        return None

    def close(self) -> None:
        if self._window is not None:
            cv2.destroyWindow(self._window)
            self._window = None

    def __getstate__(self) -> dict[str, Any]:
        return {"init_kwargs": self._init_kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["init_kwargs"])
