"""WorldBatch: rows of one WorldEngine played as episodes, with keys and mouse in and images out.

It holds what the single env, the batched vector env, the evaluation and the reward head's training data share:
the engine, the key map, checks of prompts and seed frames, the default start, starting episodes, dreaming the
next frame of a set of rows under key and mouse arrays, and the reward head a checkpoint ships. The envs add
the Gymnasium side: spaces, seeding, reward functions, truncation, info and rendering.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch

from waypoint_gym.checks import is_int
from waypoint_gym.engine import WorldEngine
from waypoint_gym.engine.controls import KeyMap
from waypoint_gym.engine.reward_head import RewardHead, checkpoint_reward_head
from waypoint_gym.engine.world_engine import NO_PROMPT_15

from .rewards import RewardFn, make_reward_fn

log = logging.getLogger(__name__)

# A checkpoint folder may ship its default start: uint8 [n, H, W, 3] (or one HxWx3 frame) in this file.
START_FRAMES_FILE = "start_frames.npy"
DEFAULT_START_GREY = 128
DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}

Prompt = str | np.ndarray | torch.Tensor | None
Rows = list[int] | None  # engine rows; None: all of them


def _one_thread_after_fork() -> None:
    """A process forked after torch ran its thread pool hangs in the pool's first parallel region. Gymnasium's
    AsyncVectorEnv forks its workers after building one env in the parent, so each forked worker runs torch on
    one thread (as many workers share the cores anyway)."""
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise ValueError(f"unknown dtype {dtype!r}; use a torch dtype or one of {sorted(DTYPES)}")


def _pair(size: Any, name: str) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if is_int(size) else tuple(size) if isinstance(size, Sequence) else ()
    if len(pair) != 2 or not all(is_int(v) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


def check_max_episode_steps(value: Any) -> int | None:
    if value is None:
        return None
    if not is_int(value) or value < 1:
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


class Step(NamedTuple):
    """What a step of some rows leaves besides the rows' new state."""

    prev_obs: np.ndarray  # [n, H, W, 3] the observations before the step
    prev_latents: torch.Tensor  # [n, C, h, w]
    latents: torch.Tensor  # [n, C, h, w] the new frames' latents
    outcomes: tuple[np.ndarray, np.ndarray] | None  # the reward head's (reward [n], terminated [n]), if it has one
    seconds: float  # spent in the model and the decoder


class WorldBatch:
    """Rows of one engine as episodes: each row has its prompt, latest frame, observation, latent and step count."""

    def __init__(
        self,
        engine: WorldEngine,
        keys: Sequence[str] | None = None,
        mouse_scale: float | None = None,
        obs_size: int | tuple[int, int] | None = None,
        frames_per_step: int = 1,
    ):
        obs_hw = _pair(obs_size, "obs_size")
        # Video frames per step: 4 where one latent frame is 4 video frames (Waypoint-1.5), else 1.
        self.frames_per_latent = k = engine.frames_per_latent
        if not is_int(frames_per_step) or frames_per_step not in (1, k):
            raise ValueError(f"frames_per_step must be 1 (the step's last frame) or {k} (all its frames) for this "
                             f"world, got {frames_per_step!r}")
        self.frames_per_step = int(frames_per_step)
        self.engine = engine
        self.config = cfg = engine.config
        self.ae = engine.autoencoder
        self.keymap = KeyMap.for_model(cfg, keys, mouse_scale)
        self.keys, self.keycodes, self.mouse_scale = self.keymap.keys, self.keymap.keycodes, self.keymap.mouse_scale
        self.latent_shape = engine.latent_shape
        self.reward_head = self._load_reward_head()
        # The prompt of episodes that name none: the checkpoint's `default_prompt` field, if it has one.
        self.default_prompt = cfg.extra.get("default_prompt") if cfg.prompt_conditioning else None
        self._applied: list[Any] = [object()] * engine.batch_size  # the prompt each row's engine state holds
        self._warned_prompt = False
        if self.ae is not None:
            if k > 1:  # a video autoencoder: seed frames are taken, and frames made, at the world's video size
                self.frame_size = self.input_size = tuple(engine.video_size())
            else:
                self.frame_size = tuple(self.ae.output_size)  # (H, W) of decoded frames: what render() shows
                self.input_size = tuple(self.ae.encoder.config.input_size)  # (H, W) seed frames are resized to
            self.obs_size = obs_hw or self.frame_size
            # One observation: the step's last frame (H, W, 3), or all its frames (frames_per_step, H, W, 3).
            self.obs_shape = (*self.obs_size, 3) if self.frames_per_step == 1 else (k, *self.obs_size, 3)
            n = engine.batch_size
            self.frames = np.zeros((n, *self.frame_size, 3), np.uint8)  # the latest frame of each row
            self.clips = np.zeros((n, k, *self.frame_size, 3), np.uint8)  # the latest step's k frames of each row
            self.obs = np.zeros((n, *self.obs_shape), np.uint8)
            self.default_start = self._load_default_start()
            # encoded once, reused every reset (a video autoencoder's streams are per episode: encoded at start)
            self._default_latents = self.encode(self.default_start) if k == 1 else None
        self.latents = torch.zeros(engine.batch_size, *self.latent_shape, device=engine.device)  # latest latents
        self.prompts: list[Prompt] = [None] * engine.batch_size  # each row's episode prompt
        self.steps = np.zeros(engine.batch_size, np.int64)  # steps since each row's episode began

    @classmethod
    def load(
        cls,
        model: str | os.PathLike | None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        batch_size: int = 1,
        keys: Sequence[str] | None = None,
        mouse_scale: float | None = None,
        n_denoise_steps: int | None = None,
        obs_size: int | tuple[int, int] | None = None,
        prompt_encoder: Callable | None = None,
        frames_per_step: int = 1,
    ) -> WorldBatch:
        """The world an env plays: its engine loaded from `model` (None: the bundled world); needs an autoencoder."""
        _pair(obs_size, "obs_size")
        # seed=0: the engine's own generator is never used (noise comes from the env's np_random), and an
        # unseeded engine would re-seed torch's global generator.
        engine = WorldEngine(model, device=device, dtype=resolve_dtype(dtype), batch_size=batch_size,
                             n_denoise_steps=n_denoise_steps, seed=0)
        if engine.autoencoder is None:
            raise ValueError(
                f"model {model!r} has no autoencoder (its config names no ae_uri): it generates latents only, "
                "and WaypointWorldEnv needs images; use WorldEngine.gen_latent for latent-space work"
            )
        if prompt_encoder is not None:
            engine.prompt_encoder = prompt_encoder
        return cls(engine, keys, mouse_scale, obs_size, frames_per_step)

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
            if not torch.isfinite(torch.as_tensor(prompt)).all():
                raise ValueError("a prompt embedding must be finite; it holds NaN or inf")
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
            shape = f" of shape {frames.shape}" if isinstance(frames, np.ndarray) else ""
            hint = " (a grey image? give it 3 channels, e.g. np.repeat(img[..., None], 3, -1))" if shape and \
                frames.ndim == 2 else ""
            raise TypeError(
                f"seed_frames must be a uint8 HxWx3 image, a sequence of them, or an array [n, H, W, 3], "
                f"got {type(frames).__name__}{shape}{hint}"
            )
        if len(frames) == 0:
            raise ValueError("seed_frames is empty: give at least one frame, or None for the default start")
        k = self.frames_per_latent
        if k > 1 and len(frames) != 1 and len(frames) % k:
            raise ValueError(
                f"this world takes {k} video frames per latent frame: seed_frames must be one image (repeated {k} "
                f"times) or a multiple of {k} frames, got {len(frames)}"
            )
        out = []
        for i, f in enumerate(frames):
            if not isinstance(f, np.ndarray):
                raise TypeError(f"seed frame {i} must be a numpy uint8 image, got {type(f).__name__}")
            if f.dtype != np.uint8:
                raise TypeError(f"seed frame {i} must be uint8 (0..255), got dtype {f.dtype}")
            if f.ndim != 3 or f.shape[-1] != 3 or min(f.shape[:2]) < 1:
                raise ValueError(f"seed frame {i} must be HxWx3 (RGB), got shape {f.shape}")
            out.append(resize(f, self.input_size))
        out = np.stack(out)
        return np.repeat(out, k, axis=0) if k > 1 and len(out) == 1 else out

    def _load_default_start(self) -> np.ndarray:
        """The frames an episode under the default prompt starts from: the checkpoint's `start_frames.npy`, else
        one mid-grey frame (k of them for a video autoencoder of k frames per latent); uint8 [n, H, W, 3]."""
        folder = self.engine.folder
        path = Path(folder) / START_FRAMES_FILE if folder is not None else None
        if path is not None and path.is_file():
            try:
                return self.check_seed_frames(np.load(path))
            except (TypeError, ValueError) as e:
                raise ValueError(f"the checkpoint's {path} is not a set of start frames: {e}") from None
        return np.full((self.frames_per_latent, *self.input_size, 3), DEFAULT_START_GREY, dtype=np.uint8)

    # ------------------------------------------------------------------------------------ prompts

    def prompt_rows(self, prompt: Prompt) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """A checked prompt -> the (embedding [P, Dp], pad mask [P]) the engine takes; None: unconditioned model."""
        if not self.config.prompt_conditioning:
            if prompt is not None and self.config.model_type == "waypoint-1.5":
                raise ValueError(NO_PROMPT_15)
            if prompt is not None and not self._warned_prompt:
                log.warning("this world has no prompt conditioning; prompts are ignored")
                self._warned_prompt = True
            return None
        if prompt is None:  # no prompt: one all-zero row, what the engine starts from
            return torch.zeros(1, self.config.prompt_embedding_dim), None
        if isinstance(prompt, str):
            try:
                return self.engine.encode_prompt(prompt)
            except (ImportError, OSError) as e:
                raise RuntimeError(
                    f"this world cannot encode text prompts ({e}); pass prompt_encoder=..., or a prompt "
                    f"embedding array [P, {self.config.prompt_embedding_dim}] instead of text"
                ) from e
        return torch.as_tensor(prompt).float(), None

    def _apply_prompt(self, row: int, prompt: Prompt, emb_pad) -> None:
        if emb_pad is None or (isinstance(prompt, str) and self._applied[row] == prompt):
            return
        self.engine.set_prompt_embedding(emb_pad[0], emb_pad[1], env_ids=[row])
        self._applied[row] = prompt if isinstance(prompt, str) else object()

    # ------------------------------------------------------------------------------------ frames

    def encode(self, frames: np.ndarray, row: int | None = None) -> torch.Tensor:
        """uint8 frames [n, H, W, 3] -> latents [n, C, h, w] (float32). A video autoencoder encodes k frames per
        latent (n = m*k -> m latents) and continues the stream of episode `row` (begun by `begin`)."""
        k = self.frames_per_latent
        with torch.inference_mode():
            if k == 1:
                return self.ae.encode(np.ascontiguousarray(frames)).float()
            chunks = np.ascontiguousarray(frames).reshape(-1, k, *frames.shape[1:])
            return torch.stack([self.ae.encode(c, env_ids=[row]).float() for c in chunks])

    def decode(self, latents: torch.Tensor, rows: Rows = None) -> np.ndarray:
        """Latents [n, C, h, w] -> uint8 frames [n, H, W, 3], or [n, k, H, W, 3] from a video autoencoder (which
        continues the decoder streams of `rows`)."""
        with torch.inference_mode():
            if self.frames_per_latent == 1:
                return self.ae.decode(latents.to(self.engine.dtype))
            return self.ae.decode(latents.to(self.engine.dtype), env_ids=rows)

    def observe(self, frame: np.ndarray) -> np.ndarray:
        """A frame [H, W, 3], or a step's frames [k, H, W, 3], -> the observation."""
        if frame.ndim == 4:
            return np.stack([resize(f, self.obs_size) for f in frame[-self.frames_per_step:]]).reshape(self.obs_shape)
        return resize(frame, self.obs_size)

    def begin(self, rows: Rows, prompts: Sequence[Prompt]) -> None:
        """New episodes in `rows`: forget their history and set their (checked) prompts; no frame yet."""
        embs = [self.prompt_rows(p) for p in prompts]  # may encode text: fails before any state changes
        self.engine.reset(rows)
        for row, prompt, emb in zip(range(self.engine.batch_size) if rows is None else rows, prompts, embs):
            self._apply_prompt(row, prompt, emb)

    def append(self, rows: Rows, latents: torch.Tensor, pressed: np.ndarray | None = None,
               mouse: np.ndarray | None = None) -> None:
        """Store known frames' latents [n, C, h, w] in `rows`, made by these keys [n, K] and mouse [n, 2]
        (None: nothing pressed): one cache pass, no denoising."""
        ctrl = None if pressed is None else self.keymap.vectors(pressed, mouse)
        self.engine.append_latent(latents, ctrl, rows)

    def dream(self, rows: Rows, pressed: np.ndarray | None = None, mouse: np.ndarray | None = None,
              noise: np.ndarray | None = None, store: bool = True) -> torch.Tensor:
        """Generate the next frame's latent of `rows` under keys [n, K] and mouse [n, 2] (None: nothing pressed)
        from noise [n, C, h, w] (None: the engine's generator) -> latents [n, C, h, w]. With `store=False` it is
        a one-step prediction: the rows stay where they were, for `append` of the real frame next."""
        ctrl = None if pressed is None else self.keymap.vectors(pressed, mouse)
        z = self.engine.gen_latent(ctrl, noise=None if noise is None else torch.from_numpy(noise), env_ids=rows,
                                   store=store)
        return z[None] if z.ndim == 3 else z

    def start(self, rows: list[int], prompts: list[Prompt], seed_frames: list[np.ndarray | None],
              rngs: list[np.random.Generator]) -> None:
        """Begin episodes in `rows`: forget their history, set prompts, append seed frames (one cache pass each).

        A row without seed frames starts from the default start frames if its prompt is the default one, else
        from a frame generated from its prompt alone with no keys held (noise from its `rngs` entry).
        Every input must be checked already. Sets the rows' frames, observations, latents, prompts and steps.
        """
        opening = [self.opens_from_prompt(p, f) for p, f in zip(prompts, seed_frames)]
        k = self.frames_per_latent
        if k == 1:
            seeds = [[] if o else self._default_latents if f is None else self.encode(f)
                     for o, f in zip(opening, seed_frames)]
        self.begin(rows, prompts)
        if k > 1:  # after begin: each row's encoder stream starts with its episode
            seeds = [[] if o else self.encode(self.default_start if f is None else f, row)
                     for o, f, row in zip(opening, seed_frames, rows)]
        for f in range(max(len(z) for z in seeds)):  # latent frame f of every row that has one, in one pass
            have = [i for i, z in enumerate(seeds) if len(z) > f]
            self.engine.append_latent(torch.stack([seeds[i][f] for i in have]), None, [rows[i] for i in have])
        firsts = [None if o else self.default_start[-k:] if f is None else f[-k:] for o, f in zip(opening, seed_frames)]
        latents = [None if o else z[-1] for o, z in zip(opening, seeds)]
        new = [i for i, o in enumerate(opening) if o]
        if new:  # their first frame, with no keys held
            noise = np.stack([rngs[i].standard_normal(self.latent_shape, dtype=np.float32) for i in new])
            z = self.dream([rows[i] for i in new], noise=noise)
            frames = self.decode(z, [rows[i] for i in new])
            frames = frames if k > 1 else frames[:, None]
            for j, i in enumerate(new):
                firsts[i], latents[i] = frames[j], z[j]
        for j, row in enumerate(rows):
            self.clips[row] = [resize(f, self.frame_size) for f in firsts[j]]  # the last k seed or first frames
            self.frames[row] = self.clips[row, -1]
            self.obs[row] = self.observe(self.clips[row])
            self.latents[row] = latents[j]
            self.prompts[row] = prompts[j]
        self.steps[rows] = 0

    def opens_from_prompt(self, prompt: Prompt, frames: np.ndarray | None) -> bool:
        """Whether an episode's first frame is generated from its prompt alone: it has no seed frames and a
        prompt other than the default one, which the checkpoint's start frames show."""
        if frames is not None or prompt is None or not self.config.prompt_conditioning:
            return False
        return not (isinstance(prompt, str) and prompt == self.default_prompt)

    def step(self, rows: list[int], pressed: np.ndarray, mouse: np.ndarray, rngs: list[np.random.Generator]) -> Step:
        """One env step of `rows` under checked keys [n, K] and mouse [n, 2], noise from each row's generator;
        updates the rows' frames, observations, latents and steps."""
        B, n, K = self.engine.batch_size, len(rows), len(self.keys)
        if not all(is_int(r) and 0 <= r < B for r in rows) or len(set(rows)) != n:
            raise ValueError(f"rows must be distinct env indices in [0, {B}), got {rows}")
        if np.shape(pressed) != (n, K) or np.shape(mouse) != (n, 2) or len(rngs) != n:
            raise ValueError(f"{n} rows take keys [{n}, {K}], mouse [{n}, 2] and {n} generators, got keys "
                             f"{list(np.shape(pressed))}, mouse {list(np.shape(mouse))} and {len(rngs)} generators")
        noise = np.stack([rng.standard_normal(self.latent_shape, dtype=np.float32) for rng in rngs])
        t0 = perf_counter()
        selected = None if list(rows) == list(range(B)) else rows
        z = self.dream(selected, pressed, mouse, noise)
        frames = self.decode(z, selected)  # [n, H, W, 3], or [n, k, H, W, 3] from a video autoencoder
        frames = frames if self.frames_per_latent > 1 else frames[:, None]
        seconds = perf_counter() - t0
        prev_obs, prev_latents = self.obs[rows].copy(), self.latents[rows].clone()
        for j, row in enumerate(rows):
            self.clips[row] = frames[j]
            self.frames[row] = frames[j, -1]
            self.obs[row] = self.observe(frames[j])
        self.latents[rows] = z
        self.steps[rows] += 1
        outcomes = None
        if self.reward_head is not None:  # the world's own reward and termination
            outcomes = self.head_outcomes(prev_latents, z, pressed, mouse)
        return Step(prev_obs, prev_latents, z, outcomes, seconds)

    # ------------------------------------------------------------------------------------ rewards

    def _load_reward_head(self) -> RewardHead | None:
        """The checkpoint's reward and termination head (`reward_head/` beside config.yaml), if it ships one."""
        head = checkpoint_reward_head(self.engine.folder, self.engine.device)
        if head is None:
            return None
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


def step_rewards(reward_fn: RewardFn | None, rows: list[int], obs: np.ndarray, actions: list[dict], step: Step,
                 infos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The rewards [n] and terminations [n] of a step of `rows`: the reward head's, then `reward_fn`'s reward
    (from the previous and new observation, the action and the info with both latents) where one is set."""
    n = len(rows)
    rewards, terminated = step.outcomes if step.outcomes is not None else (np.zeros(n), np.zeros(n, bool))
    if reward_fn is not None:
        for j, row in enumerate(rows):
            info = {**infos[j], "latent": step.latents[j], "prev_latent": step.prev_latents[j]}
            rewards[j] = reward_fn(step.prev_obs[j], actions[j], obs[row], info)
    return rewards, terminated


def default_reward_fn(reward_fn: RewardFn | str | None, world: WorldBatch) -> RewardFn | None:
    """None where the world's reward head gives the reward; otherwise the named or given function (zero if none)."""
    if reward_fn is None and world.reward_head is not None:
        return None
    return make_reward_fn(reward_fn)


def step_rate(world: WorldBatch, default: float = 30) -> float:
    """Env steps per second of video: the latent frame rate where the config gives one, else `default`."""
    fps = world.config.latent_fps
    return float(fps) if fps is not None and world.frames_per_latent > 1 else default


def video_frames(world: WorldBatch, frame_index: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """[n, 2]: the video frames [start, stop) the last step (or reset) covered, counted from the episode's first
    video frame; latent frame f is video frames k*f .. k*f + k - 1 (a reset covers all its seed frames)."""
    k = world.frames_per_latent
    stop = k * np.asarray(frame_index, np.int64)
    start = np.where(np.asarray(steps) > 0, stop - k, 0)
    return np.stack([start, stop], axis=1)


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
