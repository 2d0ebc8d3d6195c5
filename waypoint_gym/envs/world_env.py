"""WaypointWorldEnv: one agent inside a generative world model, as a Gymnasium environment.

`WorldBatch` holds what the single env and the batched vector env share: the engine, the key table, input
checks for prompts and seed frames, starting episodes and generating frames for a set of environment rows.
The envs add the Gymnasium side: spaces, seeding, rewards, truncation, info and rendering.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from waypoint_gym.engine import CtrlInput, WorldEngine

from .rewards import RewardFn, make_reward_fn
from .spaces import (
    action_space,
    check_actions,
    check_mouse_scale,
    default_keys,
    default_mouse_scale,
    resolve_keys,
    to_ctrl,
)

log = logging.getLogger(__name__)

# The world `Waypoint-v0` opens when no model is named, shipped in waypoint_gym/assets/ (bundled-world issue).
BUNDLED_WORLD = "default_world"
# Short names for published worlds.
MODEL_ALIASES = {"waypoint-1-small": "Overworld/Waypoint-1-Small"}
# A checkpoint folder may ship its default start: uint8 [n, H, W, 3] (or one HxWx3 frame) in this file.
START_FRAMES_FILE = "start_frames.npy"
DEFAULT_START_GREY = 128
# A checkpoint folder may ship a reward and termination head (waypoint_gym.training.reward_head) here.
REWARD_HEAD_DIR = "reward_head"
DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}
PROMPT_CACHE_SIZE = 16

Prompt = str | np.ndarray | torch.Tensor | None


def resolve_model(model: str | os.PathLike | None) -> str | os.PathLike:
    """A model argument -> what WorldEngine loads: the bundled world for None, hub ids for short names."""
    if model is None:
        folder = Path(__file__).resolve().parents[1] / "assets" / BUNDLED_WORLD
        if not (folder / "config.yaml").is_file():
            raise FileNotFoundError(
                f"no model given and the bundled default world is missing ({folder} has no config.yaml); "
                "pass model=<hub id, checkpoint folder or preset name>"
            )
        return folder
    if isinstance(model, str) and model.lower() in MODEL_ALIASES:
        return MODEL_ALIASES[model.lower()]
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a hub id, a folder path or a preset name, got {type(model).__name__}")
    return model


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise ValueError(f"unknown dtype {dtype!r}; use a torch dtype or one of {sorted(DTYPES)}")


def _pair(size: Any, name: str) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size) if isinstance(size, Sequence) else ()
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


def check_max_episode_steps(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"max_episode_steps must be a positive int or None, got {value!r}")
    return int(value)


def describe_prompt(prompt: Prompt) -> str | None:
    """What `info["prompt"]` shows: the text, a note for an embedding, or None."""
    if prompt is None or isinstance(prompt, str):
        return prompt
    return f"<prompt embedding {list(prompt.shape)}>"


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 HxWx3 -> size (H, W) with OpenCV (area averaging when shrinking); the same array when it fits."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    shrink = h < img.shape[0] and w < img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class WorldBatch:
    """The engine and the per-row bookkeeping shared by WaypointWorldEnv (1 row) and WaypointVectorEnv (N rows)."""

    def __init__(
        self,
        model: str | os.PathLike | None,
        device: str | torch.device,
        dtype: torch.dtype | str,
        batch_size: int,
        keys: Sequence[str] | None,
        mouse_scale: float | None,
        n_denoise_steps: int | None,
        obs_size: int | tuple[int, int] | None,
        prompt_encoder: Callable | None,
    ):
        obs_hw = _pair(obs_size, "obs_size")
        uri = resolve_model(model)
        # seed=0: the engine's own generator is never used (noise comes from the env's np_random), and an
        # unseeded engine would re-seed torch's global generator.
        self.engine = WorldEngine(
            uri, device=device, dtype=resolve_dtype(dtype), batch_size=batch_size,
            n_denoise_steps=n_denoise_steps, seed=0,
        )
        self.ae = self.engine.autoencoder
        if self.ae is None:
            raise ValueError(
                f"model {model!r} has no autoencoder (its config names no ae_uri): it generates latents only, "
                "and WaypointWorldEnv needs images; use WorldEngine.gen_latent for latent-space work"
            )
        if prompt_encoder is not None:
            if not callable(prompt_encoder):
                raise TypeError(f"prompt_encoder must be callable texts -> (emb, pad), got {prompt_encoder!r}")
            self.engine._prompt_encoder = prompt_encoder  # the engine has no public setter
        cfg = self.engine.config
        self.config = cfg
        self.keys, self.keycodes = resolve_keys(keys if keys is not None else default_keys(cfg), cfg.n_buttons)
        self.mouse_scale = check_mouse_scale(default_mouse_scale(cfg) if mouse_scale is None else mouse_scale)
        self.frame_size = tuple(self.ae.output_size)  # (H, W) of decoded frames: what render() shows
        self.input_size = tuple(self.ae.encoder.config.input_size)  # (H, W) seed frames are resized to
        self.obs_size = obs_hw or self.frame_size
        self.latent_shape = self.engine.latent_shape
        self._prompt_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._applied: list[Any] = [object()] * batch_size  # the prompt each row's engine state holds
        self._warned_prompt = False
        self._default_start = self._load_default_start()
        self._default_latents = self._encode(self._default_start)  # encoded once, reused every reset
        self.reward_head = self._load_reward_head()
        # The prompt of episodes that name none: the checkpoint's `default_prompt` field, if it has one.
        self.default_prompt = cfg.extra.get("default_prompt") if cfg.prompt_conditioning else None

    # ------------------------------------------------------------------------------------ input checks

    def check_prompt(self, prompt: Any) -> Prompt:
        """None, a str, or an embedding [P, prompt_embedding_dim] (float array); anything else raises."""
        if prompt is None or isinstance(prompt, str):
            return prompt
        if isinstance(prompt, (np.ndarray, torch.Tensor)):
            Dp = self.config.prompt_embedding_dim
            if not torch.as_tensor(prompt[:0]).is_floating_point():
                raise TypeError(f"a prompt embedding must be floating point, got dtype {prompt.dtype}")
            if prompt.ndim != 2 or prompt.shape[1] != Dp or prompt.shape[0] < 1:
                raise ValueError(f"a prompt embedding must have shape [P, {Dp}], got {list(prompt.shape)}")
            return prompt
        raise TypeError(f"prompt must be a str, an embedding array [P, D] or None, got {type(prompt).__name__}")

    def check_seed_frames(self, frames: Any) -> np.ndarray | None:
        """One uint8 HxWx3 image, a sequence of them, or an array [n, H, W, 3] -> [n, *input_size, 3] uint8."""
        if frames is None:
            return None
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            frames = [frames]
        elif isinstance(frames, np.ndarray) and frames.ndim == 4:
            frames = list(frames)
        elif not isinstance(frames, (list, tuple)):
            raise TypeError(
                f"seed_frames must be a uint8 HxWx3 image, a sequence of them, or an array [n, H, W, 3], "
                f"got {type(frames).__name__}"
            )
        if len(frames) == 0:
            raise ValueError("seed_frames is empty: give at least one frame, or None for the default start")
        out = []
        for i, f in enumerate(frames):
            if not isinstance(f, np.ndarray):
                raise TypeError(f"seed frame {i} must be a numpy uint8 image, got {type(f).__name__}")
            if f.dtype != np.uint8:
                raise TypeError(f"seed frame {i} must be uint8 (0..255), got dtype {f.dtype}")
            if f.ndim != 3 or f.shape[-1] != 3 or min(f.shape[:2]) < 1:
                raise ValueError(f"seed frame {i} must be HxWx3 (RGB), got shape {f.shape}")
            out.append(resize(f, self.input_size))
        return np.stack(out)

    def _load_default_start(self) -> np.ndarray:
        folder = self.engine.folder
        path = Path(folder) / START_FRAMES_FILE if folder is not None else None
        if path is not None and path.is_file():
            return self.check_seed_frames(np.load(path))
        return np.full((1, *self.input_size, 3), DEFAULT_START_GREY, dtype=np.uint8)

    # ------------------------------------------------------------------------------------ prompts

    def prompt_rows(self, prompt: Prompt) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """A checked prompt -> the (embedding [P, Dp], pad mask [P]) the engine takes; None: unconditioned model."""
        if not self.config.prompt_conditioning:
            if prompt is not None and not self._warned_prompt:
                log.warning("this world has no prompt conditioning; prompts are ignored")
                self._warned_prompt = True
            return None
        if prompt is None:  # no prompt: one all-zero row, what the engine starts from
            return torch.zeros(1, self.config.prompt_embedding_dim), None
        if isinstance(prompt, str):
            return self._encode_text(prompt)
        return torch.as_tensor(prompt).float(), None

    def _encode_text(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        if text not in self._prompt_cache:
            try:
                encoder = self.engine.prompt_encoder
            except (ImportError, OSError) as e:
                raise RuntimeError(
                    f"this world cannot encode text prompts ({e}); pass prompt_encoder=..., or a prompt "
                    f"embedding array [P, {self.config.prompt_embedding_dim}] instead of text"
                ) from e
            emb, pad = encoder([text])
            if len(self._prompt_cache) >= PROMPT_CACHE_SIZE:
                self._prompt_cache.pop(next(iter(self._prompt_cache)))
            self._prompt_cache[text] = (emb[0], pad[0])
        return self._prompt_cache[text]

    def _apply_prompt(self, row: int, prompt: Prompt, emb_pad) -> None:
        if emb_pad is None or (isinstance(prompt, str) and self._applied[row] == prompt):
            return
        self.engine.set_prompt_embedding(emb_pad[0], emb_pad[1], env_ids=[row])
        self._applied[row] = prompt if isinstance(prompt, str) else object()

    # ------------------------------------------------------------------------------------ frames

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return self.ae.encode(frames).float()  # [n, C, h, w]

    def opens_from_prompt(self, prompt: Prompt, frames: np.ndarray | None) -> bool:
        """Whether an episode's first frame is generated from its prompt alone: it has no seed frames and a
        prompt other than the default one, which the checkpoint's start frames show."""
        if frames is not None or prompt is None or not self.config.prompt_conditioning:
            return False
        return not (isinstance(prompt, str) and prompt == self.default_prompt)

    def start(self, rows: list[int], prompts: list[Prompt], seed_frames: list[np.ndarray | None],
              rngs: list[np.random.Generator]):
        """Begin episodes in `rows`: forget their history, set prompts, append seed frames (one cache pass each).

        A row without seed frames starts from the default start frames if its prompt is the default one, else
        from a frame generated from its prompt alone with no keys held (noise from its `rngs` entry).
        Every input must be checked already. -> (first frames uint8 [n, *frame_size, 3], their latents [n, C, h, w]).
        """
        embs = [self.prompt_rows(p) for p in prompts]  # may encode text: fails before any state changes
        opening = [self.opens_from_prompt(p, f) for p, f in zip(prompts, seed_frames)]
        seeds = [[] if o else self._default_latents if f is None else self._encode(f)
                 for o, f in zip(opening, seed_frames)]
        self.engine.reset(rows)
        for row, prompt, emb in zip(rows, prompts, embs):
            self._apply_prompt(row, prompt, emb)
        for k in range(max(len(z) for z in seeds)):  # frame k of every row that has one, in one pass
            have = [i for i, z in enumerate(seeds) if len(z) > k]
            self.engine.append_latent(torch.stack([seeds[i][k] for i in have]), None, [rows[i] for i in have])
        firsts = [None if o else self._default_start[-1] if f is None else f[-1] for o, f in zip(opening, seed_frames)]
        latents = [None if o else z[-1] for o, z in zip(opening, seeds)]
        new = [i for i, o in enumerate(opening) if o]
        if new:  # their first frame, with no keys held (None: the engine's empty control)
            noise = np.stack([rngs[i].standard_normal(self.latent_shape, dtype=np.float32) for i in new])
            frames, z = self.generate([rows[i] for i in new], None, noise)
            for j, i in enumerate(new):
                firsts[i], latents[i] = frames[j], z[j]
        return np.stack([resize(f, self.frame_size) for f in firsts]), torch.stack(latents)

    def generate(self, rows: list[int] | None, ctrls: list[CtrlInput] | None, noise: np.ndarray):
        """Generate the next frame of `rows` (None: all) under `ctrls` (None: no keys held) from noise [n, C, h, w]
        -> (uint8 [n, H, W, 3], latents)."""
        z = self.engine.gen_latent(ctrls, noise=torch.from_numpy(noise), env_ids=rows)
        z = z[None] if z.ndim == 3 else z
        with torch.inference_mode():
            frames = self.ae.decode(z.to(self.engine.dtype))
        return frames, z

    def observe(self, frame: np.ndarray) -> np.ndarray:
        return resize(frame, self.obs_size)

    def _load_reward_head(self):
        """The checkpoint's reward and termination head (`reward_head/` beside config.yaml), if it ships one."""
        folder = self.engine.folder
        if folder is None or not (folder / REWARD_HEAD_DIR).is_dir():
            return None
        from waypoint_gym.training.reward_head import RewardHead

        head = RewardHead.from_pretrained(folder / REWARD_HEAD_DIR, device=self.engine.device)
        names = head.config.keys or list(self.keys)
        # Which of the agent's key columns feeds each of the head's key inputs (-1: not pressable here).
        self._head_columns = np.array([self.keys.index(k) if k in self.keys else -1 for k in names])
        return head

    def head_outcomes(self, prev_latents, latents, pressed: np.ndarray, mouse: np.ndarray):
        """The reward head's (reward [n], terminated [n]) for steps prev_latents -> latents under the actions."""
        cols = self._head_columns
        keys = np.where(cols >= 0, np.asarray(pressed, np.float32)[:, np.maximum(cols, 0)], 0.0)
        reward, terminated = self.reward_head.predict(prev_latents, latents, keys, np.asarray(mouse, np.float32))
        return reward.cpu().numpy().astype(np.float64), terminated.cpu().numpy()

    def ctrl(self, pressed: np.ndarray, mouse: np.ndarray) -> CtrlInput:
        return to_ctrl(pressed, mouse, self.keycodes, self.mouse_scale)


def default_reward_fn(reward_fn: RewardFn | str | None, world: WorldBatch) -> RewardFn | None:
    """None where the world's reward head gives the reward; otherwise the named or given function (zero if none)."""
    if reward_fn is None and world.reward_head is not None:
        return None
    return make_reward_fn(reward_fn)


def episode_options(prompt: Any, seed_frames: Any, options: dict | None, extra: tuple[str, ...] = ()) -> dict:
    """Merge reset's keyword arguments with `options` (which pass through gymnasium.make wrappers)."""
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    opts = dict(options or {})
    known = ("prompt", "seed_frames", *extra)
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise ValueError(f"unknown reset options {unknown}; known: {list(known)}")
    for name, value in (("prompt", prompt), ("seed_frames", seed_frames)):
        if value is not None:
            if opts.get(name) is not None:
                raise ValueError(f"{name} given both as a keyword and in options; give it once")
            opts[name] = value
    return opts


def episode_start(world: WorldBatch, start_fn: Callable | None, rng: np.random.Generator, prompt: Prompt,
                  frames: np.ndarray | None, default_prompt: Prompt,
                  default_frames: np.ndarray | None) -> tuple[Prompt, np.ndarray | None]:
    """An episode's prompt and seed frames: those given (checked already), else drawn by `start_fn(rng)` (a dict
    with `prompt` and/or `seed_frames`), else the defaults."""
    if (prompt is None or frames is None) and start_fn is not None:
        drawn = start_fn(rng)
        if not isinstance(drawn, dict) or not set(drawn) <= {"prompt", "seed_frames"}:
            raise ValueError(f"start_fn must return a dict with 'prompt' and/or 'seed_frames', got {drawn!r:.200}")
        if prompt is None and drawn.get("prompt") is not None:
            prompt = world.check_prompt(drawn["prompt"])
        if frames is None:
            frames = world.check_seed_frames(drawn.get("seed_frames"))
    return (default_prompt if prompt is None else prompt), (default_frames if frames is None else frames)


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
    `waypoint_gym.training.reward_head`) gives the reward by default: the head reads the previous and the new
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
    ):
        self._init_kwargs = dict(
            model=model, device=device, dtype=dtype, prompt=prompt, seed_frames=seed_frames, keys=keys,
            mouse_scale=mouse_scale, n_denoise_steps=n_denoise_steps, obs_size=obs_size,
            max_episode_steps=max_episode_steps, reward_fn=reward_fn, render_mode=render_mode,
            prompt_encoder=prompt_encoder, timing=timing, start_fn=start_fn,
        )
        if start_fn is not None and not callable(start_fn):
            raise TypeError(f"start_fn must be a callable np_random -> dict, got {type(start_fn).__name__}")
        self.start_fn = start_fn
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.max_episode_steps = check_max_episode_steps(max_episode_steps)
        self.world = WorldBatch(model, device, dtype, 1, keys, mouse_scale, n_denoise_steps, obs_size, prompt_encoder)
        self.engine = self.world.engine
        self.reward_fn = default_reward_fn(reward_fn, self.world)
        self.keys = self.world.keys
        self.action_space = action_space(len(self.keys))
        self.observation_space = spaces.Box(0, 255, (*self.world.obs_size, 3), np.uint8)
        self.prompt = self.world.check_prompt(self.world.default_prompt if prompt is None else prompt)
        self.world.prompt_rows(self.prompt)  # encode a text prompt now, so a missing encoder fails here
        self.seed_frames = self.world.check_seed_frames(seed_frames)
        self._frame: np.ndarray | None = None  # the latest frame at full size
        self._obs: np.ndarray | None = None
        self._latent: torch.Tensor | None = None
        self._episode_prompt: Prompt = None
        self._steps = 0
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
        super().reset(seed=seed)
        prompt, frames = episode_start(self.world, self.start_fn, self.np_random, prompt, frames, self.prompt,
                                       self.seed_frames)
        t0 = perf_counter()
        first, latents = self.world.start([0], [prompt], [frames], [self.np_random])
        self._frame, self._latent = first[0], latents[0]
        self._obs = self.world.observe(self._frame)
        self._episode_prompt, self._steps = prompt, 0
        if self.render_mode == "human":
            self.render()
        return self._obs, self._info(perf_counter() - t0)

    def step(self, action: dict[str, np.ndarray]) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        pressed, mouse = check_actions(action, len(self.keys))
        noise = self.np_random.standard_normal(self.world.latent_shape, dtype=np.float32)
        t0 = perf_counter()
        frames, latents = self.world.generate(None, [self.world.ctrl(pressed, mouse)], noise[None])
        info = self._info(perf_counter() - t0)
        prev_obs, prev_latent = self._obs, self._latent
        self._frame, self._latent = frames[0], latents[0]
        self._obs = self.world.observe(self._frame)
        self._steps += 1
        terminated = False
        if self.world.reward_head is not None:  # the world's own reward and termination
            head_reward, head_done = self.world.head_outcomes(prev_latent[None], self._latent[None], pressed[None],
                                                              mouse[None])
            reward, terminated = head_reward[0], bool(head_done[0])
        if self.reward_fn is not None:
            reward_info = {**info, "latent": self._latent, "prev_latent": prev_latent}
            reward = self.reward_fn(prev_obs, action, self._obs, reward_info)
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        if self.render_mode == "human":
            self.render()
        return self._obs, float(reward), terminated, truncated and not terminated, info

    def _info(self, seconds: float) -> dict[str, Any]:
        self.step_time = seconds
        info = {"frame_index": int(self.engine.frame_index(0)[0]), "prompt": describe_prompt(self._episode_prompt)}
        if self.timing:
            info["step_time"] = seconds
        return info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='rgb_array' or 'human'")
            return None
        if self._frame is None:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "rgb_array":
            return self._frame.copy()
        self._window = self._window or f"Waypoint ({id(self):x})"
        cv2.imshow(self._window, cv2.cvtColor(self._frame, cv2.COLOR_RGB2BGR))
        cv2.waitKey(max(1, math.floor(1000 / self.metadata["render_fps"])))
        return None

    def close(self) -> None:
        if self._window is not None:
            cv2.destroyWindow(self._window)
            self._window = None

    def __getstate__(self) -> dict[str, Any]:
        return {"init_kwargs": self._init_kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["init_kwargs"])
