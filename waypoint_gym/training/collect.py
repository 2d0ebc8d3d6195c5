"""Recording play to train world models on: an exploration policy, and segments of episodes written in chunks.

A segment is `segment_len` frames of one episode from its reset. Frame 0 is the reset observation and frame t
the observation after the t-th action. Actions follow the Waypoint convention, the controls of frame t: row t
holds the action that produced frame t, so row 0 is all zeros. An episode that ends early cuts its segment
there; the rest is padded with the last frame and zero actions, and `length` counts the valid frames.

Chunks are `out_dir/chunk_{i:05d}.npz` (np.savez_compressed), each with `chunk_segments` segments:

    frames      uint8    [S, L, H, W, 3]
    keys        uint8    [S, L, K]        1 = key held (key names in meta.json)
    mouse       float32  [S, L, 2]        in [-1, 1]
    reward      float32  [S, L]           reward of the transition into frame t (0 at t = 0)
    terminated  bool     [S, L]           the episode ended at frame t
    length      int32    [S]              valid frames
    prompt      str      [S]              caption of the segment's world
    seed        int64    [S]              reset seed of the segment's world

and `out_dir/meta.json` describes the run. A chunk depends only on (seed, chunk index), so a collection that
was stopped resumes by skipping the chunks already on disk.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from waypoint_gym.engine.keycodes import DEFAULT_KEYS
from waypoint_gym.worlds.arena import TURN_RATE, ArenaBatch
from waypoint_gym.worlds.captions import all_captions

log = logging.getLogger(__name__)

# How often each key is held, on average; keys not named here are held KEY_PROB_OTHER of the time.
KEY_PROBS = {"W": 0.55, "S": 0.1, "A": 0.15, "D": 0.15, "SPACE": 0.06, "SHIFT": 0.3}
KEY_PROB_OTHER = 0.05
SEED_STRIDE = 10_000_000  # the world of segment i under collection seed s is reset with s * SEED_STRIDE + i
# Info entries an orb seeker steers by, best first: along the shortest path, then in a straight line.
BEARING_KEYS = ("waypoint_bearing", "nearest_orb_bearing")


# -----------------------------------------------------------------------------
# exploration policy

# The ExplorationPolicy settings a collection may override (besides seek_prob), kept in its meta.json.
POLICY_SETTINGS = ("hold_mean", "mouse_theta", "mouse_sigma", "turn_prob", "idle_prob", "key_probs")
IDLE_MEAN = 3.0  # mean frames of an idle spell


class ExplorationPolicy:
    """Random play with persistent actions for N environments at once.

    Each key is pressed or released and held for a geometric number of frames (mean `hold_mean`), pressed
    `KEY_PROBS[key]` of the time (forward most; `key_probs` overrides it per key). The mouse is an
    Ornstein-Uhlenbeck process (smooth turning and looking) with occasional sharp turns of a few frames. With
    probability `seek_prob` per segment an environment instead seeks orbs: it turns toward the info's bearing
    (`BEARING_KEYS`) and sprints forward, so the data holds plenty of orb collections. With probability
    `idle_prob` per frame an idle spell starts (mean `IDLE_MEAN` frames, no key and no mouse), so the data
    shows what the scene does untouched.
    `reset` draws a new mode for the chosen environments.
    """

    def __init__(
        self,
        num_envs: int,
        keys: Sequence[str] = DEFAULT_KEYS,
        seed: int | np.random.Generator | None = None,
        *,
        seek_prob: float = 0.4,
        hold_mean: float = 6.0,
        mouse_theta: float = 0.15,
        mouse_sigma: float = 0.12,
        turn_prob: float = 0.03,
        idle_prob: float = 0.0,
        turn_rate: float = TURN_RATE,
        key_probs: Mapping[str, float] | None = None,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        if not 0.0 <= seek_prob <= 1.0:
            raise ValueError(f"seek_prob must lie in [0, 1], got {seek_prob}")
        if hold_mean < 1.0:
            raise ValueError(f"hold_mean must be at least 1 frame, got {hold_mean}")
        if not 0.0 < mouse_theta <= 1.0 or mouse_sigma < 0.0 or not 0.0 <= turn_prob <= 1.0:
            raise ValueError(f"need mouse_theta in (0, 1], mouse_sigma >= 0 and turn_prob in [0, 1], got "
                             f"{mouse_theta}, {mouse_sigma}, {turn_prob}")
        if not 0.0 <= idle_prob <= 1.0:
            raise ValueError(f"idle_prob must lie in [0, 1], got {idle_prob}")
        self.num_envs, self.keys = num_envs, tuple(k.upper() for k in keys)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.seek_prob, self.hold_mean, self.turn_rate = seek_prob, hold_mean, turn_rate
        self.mouse_theta, self.mouse_sigma, self.turn_prob = mouse_theta, mouse_sigma, turn_prob
        self.idle_prob = idle_prob
        key_probs = {k.upper(): p for k, p in (key_probs or {}).items()}
        unknown = sorted(set(key_probs) - set(self.keys))
        if unknown:
            raise ValueError(f"key_probs names keys the policy does not press: {unknown}; its keys are {self.keys}")
        if not all(0.0 <= p <= 1.0 for p in key_probs.values()):
            raise ValueError(f"key_probs must lie in [0, 1], got {key_probs}")
        probs = {**KEY_PROBS, **key_probs}
        self._key_probs = np.array([probs.get(k, KEY_PROB_OTHER) for k in self.keys])  # [K]
        self._column = {k: i for i, k in enumerate(self.keys)}
        n, k = num_envs, len(self.keys)
        self.seeking = np.zeros(n, bool)  # [N]
        self._pressed = np.zeros((n, k), bool)  # [N, K]
        self._hold = np.zeros((n, k), np.int64)  # frames left before each key is redrawn
        self._mouse = np.zeros((n, 2))  # [N, 2] the OU state
        self._turn_left = np.zeros(n, np.int64)  # frames left of a sharp turn
        self._turn_speed = np.zeros(n)
        self._idle_left = np.zeros(n, np.int64)  # frames left of an idle spell
        self.reset()

    def reset(self, env_indices: Sequence[int] | np.ndarray | None = None) -> None:
        """Start a new segment for the chosen environments (all by default): new mode, keys redrawn, mouse still."""
        idx = np.arange(self.num_envs) if env_indices is None else np.asarray(env_indices, np.intp)
        self.seeking[idx] = self.rng.random(len(idx)) < self.seek_prob
        self._hold[idx] = 0
        self._mouse[idx] = 0.0
        self._turn_left[idx] = 0
        self._idle_left[idx] = 0

    def act(self, info: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The next action of every environment -> (keys uint8 [N, K], mouse float32 [N, 2] in [-1, 1])."""
        rng, n = self.rng, self.num_envs
        info = {} if info is None else info

        # Keys: redraw the ones whose hold ran out.
        expired = self._hold <= 0  # [N, K]
        count = int(expired.sum())
        probs = np.broadcast_to(self._key_probs, expired.shape)[expired]
        self._pressed[expired] = rng.random(count) < probs
        self._hold[expired] = rng.geometric(1.0 / self.hold_mean, count)
        self._hold -= 1
        keys = self._pressed.copy()

        # Mouse: OU around 0 in x, and around the value that levels the view in y when the info has the pitch.
        target = np.zeros((n, 2))
        if "pitch" in info:  # mouse y > 0 lowers the pitch
            target[:, 1] = np.clip(self._batched(info, "pitch"), -1.0, 1.0)
        noise = rng.standard_normal((n, 2)) * (self.mouse_sigma * np.array([1.0, 0.5]))
        self._mouse += self.mouse_theta * (target - self._mouse) + noise
        self._mouse = np.clip(self._mouse, -1.0, 1.0)
        mouse = self._mouse.copy()

        # Sharp turns: a few frames of fast turning in one direction.
        start = (self._turn_left == 0) & (rng.random(n) < self.turn_prob)
        self._turn_left[start] = rng.integers(3, 9, int(start.sum()))
        self._turn_speed[start] = rng.choice([-1.0, 1.0], int(start.sum())) * rng.uniform(0.6, 1.0, int(start.sum()))
        turning = self._turn_left > 0
        mouse[turning, 0] = self._turn_speed[turning]
        self._turn_left[turning] -= 1

        # Orb seekers: turn toward the bearing, sprint forward when roughly facing it.
        bearing_key = next((k for k in BEARING_KEYS if k in info), None)
        if bearing_key is not None and self.seeking.any():
            seek = self.seeking
            bearing = self._batched(info, bearing_key)
            steer = 0.8 * bearing / self.turn_rate + 0.1 * rng.standard_normal(n)
            mouse[seek, 0] = np.clip(steer, -1.0, 1.0)[seek]
            facing = np.abs(bearing) < 0.8
            for name, held in (("W", facing), ("S", False), ("A", False), ("D", False), ("SHIFT", True)):
                if name in self._column:
                    keys[seek, self._column[name]] = np.broadcast_to(held, (n,))[seek]

        # Idle spells: hands off the controls for a few frames.
        if self.idle_prob > 0:
            start = (self._idle_left == 0) & (rng.random(n) < self.idle_prob)
            self._idle_left[start] = rng.geometric(1.0 / IDLE_MEAN, int(start.sum()))
            idle = self._idle_left > 0
            keys[idle], mouse[idle] = False, 0.0
            self._idle_left[idle] -= 1
        return keys.astype(np.uint8), mouse.astype(np.float32)

    def _batched(self, info: Mapping[str, Any], name: str) -> np.ndarray:
        """An info entry as float64 [N] (a single env's scalar broadcasts); inf becomes 0."""
        value = np.broadcast_to(np.asarray(info[name], np.float64), (self.num_envs,))
        return np.where(np.isfinite(value), value, 0.0)


# -----------------------------------------------------------------------------
# recording segments


def _rollout(
    step: Callable[[np.ndarray, np.ndarray], tuple],
    first_frames: np.ndarray,
    first_info: Mapping[str, Any],
    policy: ExplorationPolicy,
    segment_len: int,
) -> dict[str, np.ndarray]:
    """Play `segment_len - 1` steps from the reset frames [N, H, W, 3]; cut and pad episodes that end."""
    n, k, length = len(first_frames), len(policy.keys), segment_len
    out = {
        "frames": np.empty((n, length, *first_frames.shape[1:]), np.uint8),
        "keys": np.zeros((n, length, k), np.uint8),
        "mouse": np.zeros((n, length, 2), np.float32),
        "reward": np.zeros((n, length), np.float32),
        "terminated": np.zeros((n, length), bool),
        "length": np.full(n, length, np.int32),
    }
    out["frames"][:, 0] = first_frames
    alive, info = np.ones(n, bool), first_info
    for t in range(1, length):
        keys, mouse = policy.act(info)
        frames, reward, terminated, truncated, info = step(keys, mouse)
        out["frames"][:, t] = np.where(alive[:, None, None, None], frames, out["frames"][:, t - 1])
        out["keys"][alive, t] = keys[alive]
        out["mouse"][alive, t] = mouse[alive]
        out["reward"][alive, t] = np.asarray(reward)[alive]
        out["terminated"][alive, t] = np.asarray(terminated)[alive]
        ended = alive & (np.asarray(terminated) | np.asarray(truncated))
        out["length"][ended] = t + 1
        alive &= ~ended
        if not alive.any():  # pad the remaining frames with the last one
            out["frames"][:, t + 1:] = out["frames"][:, t:t + 1]
            break
    return out


def _save_chunk(path: Path, segments: dict[str, np.ndarray]) -> None:
    """Write a chunk atomically (a stopped run never leaves a half-written chunk behind)."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **segments)
    os.replace(tmp, path)


def _summary(out_dir: Path) -> dict[str, Any]:
    """Counts over the chunks on disk (reads only the small arrays)."""
    n_segments = n_frames = reward_events = terminations = with_reward = 0
    reward_total, prompts = 0.0, set()
    for path in sorted(out_dir.glob("chunk_*[0-9].npz")):
        with np.load(path) as chunk:
            length, reward = chunk["length"], chunk["reward"]
            n_segments += len(length)
            n_frames += int(length.sum())
            reward_events += int((reward > 0).sum())
            reward_total += float(reward.sum())
            with_reward += int((reward > 0).any(axis=1).sum())
            terminations += int(chunk["terminated"].sum())
            prompts.update(chunk["prompt"].tolist())
    return {
        "n_segments": n_segments, "n_frames": n_frames, "reward_events": reward_events,
        "reward_total": reward_total, "segments_with_reward": with_reward, "terminations": terminations,
        "captions_used": sorted(prompts),
    }


Record = Callable[[np.ndarray, list[str], "ExplorationPolicy"], dict[str, np.ndarray]]
# What a forked worker records with (its copy of the parent's), as a closure cannot be pickled to it.
_worker_job: Callable[[int], int] | None = None


def _run_worker_job(c: int) -> int:
    return _worker_job(c)


def _collect(
    record: Record,
    out_dir: str | os.PathLike,
    settings: dict[str, Any],
    captions: list[str],
    batch: int,
    policy_kwargs: dict[str, Any],
    progress: bool,
    workers: int = 1,
) -> dict[str, Any]:
    """The chunk loop shared by every source: `record(seeds, prompts, policy)` plays `batch` segments.

    With `workers` > 1 the missing chunks are recorded by that many forked processes; as a chunk depends only
    on (seed, chunk index), the collection is the same."""
    global _worker_job
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        changed = sorted(k for k in settings if old.get(k) != settings[k])
        if changed:
            raise ValueError(f"{out_dir} holds a collection with other settings ({', '.join(changed)}); "
                             "use another out_dir")
    meta_path.write_text(json.dumps({**settings, "complete": False}, indent=1))

    n_segments, chunk_segments = settings["n_segments"], settings["chunk_segments"]
    started = time.perf_counter()
    bar = tqdm(total=n_segments, unit="seg", desc=f"collect {out_dir.name}", disable=not progress)
    chunks = range(math.ceil(n_segments / chunk_segments))
    size = {c: min(chunk_segments, n_segments - c * chunk_segments) for c in chunks}
    missing = [c for c in chunks if not (out_dir / f"chunk_{c:05d}.npz").exists()]
    bar.update(sum(size[c] for c in chunks if c not in missing))

    def job(c: int) -> int:
        _record_chunk(record, out_dir / f"chunk_{c:05d}.npz", c, size[c], settings, captions, batch, policy_kwargs)
        return size[c]

    if workers > 1 and len(missing) > 1:
        _worker_job = job
        try:
            with multiprocessing.get_context("fork").Pool(min(workers, len(missing))) as pool:
                for count in pool.imap_unordered(_run_worker_job, missing):
                    bar.update(count)
        finally:
            _worker_job = None
    else:
        for c in missing:
            bar.update(job(c))
    bar.close()

    meta = {**settings, **_summary(out_dir), "complete": True,
            "seconds": round(time.perf_counter() - started, 1), "caption_pool": len(captions)}
    meta_path.write_text(json.dumps(meta, indent=1))
    log.info("collected %d segments (%d frames, %d reward events) in %s", meta["n_segments"], meta["n_frames"],
             meta["reward_events"], out_dir)
    return meta


def _record_chunk(record: Record, path: Path, c: int, count: int, settings: dict[str, Any], captions: list[str],
                  batch: int, policy_kwargs: dict[str, Any]) -> None:
    """Chunk c: `count` segments from segment c * chunk_segments on, from a generator of (seed, c) alone."""
    seed, first = settings["seed"], c * settings["chunk_segments"]
    rng = np.random.default_rng([seed, c])
    policy = ExplorationPolicy(batch, settings["keys"], rng, **policy_kwargs)
    parts = []
    for start in range(0, count, batch):
        index = first + start + np.arange(batch)
        seeds = seed * SEED_STRIDE + index
        prompts = [captions[i] for i in rng.integers(len(captions), size=batch)]
        segments = record(seeds, prompts, policy)
        used = min(batch, count - start)
        segments["prompt"] = np.array(prompts)
        segments["seed"] = seeds.astype(np.int64)
        parts.append({name: array[:used] for name, array in segments.items()})
    _save_chunk(path, {name: np.concatenate([p[name] for p in parts]) for name in parts[0]})


def collect_arena(
    out_dir: str | os.PathLike,
    n_segments: int,
    segment_len: int = 48,
    n_envs: int = 32,
    seed: int = 0,
    size: int = 64,
    captions: Sequence[str] | None = None,
    chunk_segments: int = 256,
    *,
    keys: Sequence[str] = DEFAULT_KEYS,
    num_orbs: int = 6,
    seek_prob: float = 0.4,
    policy: Mapping[str, float] | None = None,
    progress: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    """Record `n_segments` segments of the arena, `n_envs` worlds at a time (in each of `workers` processes);
    returns meta.json's content.

    Every segment starts from a fresh world: seed `seed * SEED_STRIDE + i` and a caption drawn uniformly from
    `captions` (default: every caption of the grammar). `policy` overrides `ExplorationPolicy`'s other
    settings (`hold_mean`, `mouse_theta`, `mouse_sigma`, `turn_prob`, `idle_prob`, `key_probs`: {key: share of
    the time it is pressed}) and is kept in meta.json.
    """
    if n_segments < 1 or segment_len < 2 or chunk_segments < 1:
        raise ValueError(f"need n_segments >= 1, segment_len >= 2 and chunk_segments >= 1, got {n_segments}, "
                         f"{segment_len}, {chunk_segments}")
    captions = list(all_captions() if captions is None else captions)
    if not captions or not all(isinstance(c, str) for c in captions):
        raise ValueError("captions must be a non-empty sequence of str")
    n_envs = min(n_envs, n_segments)
    world = ArenaBatch(n_envs, size=size, keys=keys, max_episode_steps=max(500, segment_len), num_orbs=num_orbs)

    def record(seeds: np.ndarray, prompts: list[str], policy: ExplorationPolicy) -> dict[str, np.ndarray]:
        frames, info = world.reset(seed=seeds.tolist(), prompt=prompts)
        policy.reset()
        return _rollout(world.step, frames, info, policy, segment_len)

    settings = {
        "source": "WaypointArena", "keys": list(world.keys), "size": [size, size], "segment_len": segment_len,
        "n_segments": n_segments, "chunk_segments": chunk_segments, "seed": seed, "num_orbs": num_orbs,
        "seek_prob": seek_prob,
    }
    policy = dict(policy or {})
    unknown = sorted(set(policy) - set(POLICY_SETTINGS))
    if unknown:
        raise ValueError(f"unknown policy settings {unknown}; expected {', '.join(POLICY_SETTINGS)}")
    if policy:  # only then, so collections made before the option still resume
        settings["policy"] = policy
    return _collect(record, out_dir, settings, captions, n_envs, {"seek_prob": seek_prob, **policy}, progress,
                    workers)


def collect_env(
    env_fn: Callable[[], gym.Env],
    out_dir: str | os.PathLike,
    n_segments: int,
    segment_len: int = 48,
    seed: int = 0,
    captions: Sequence[str] | None = None,
    chunk_segments: int = 256,
    *,
    keys: Sequence[str] | None = None,
    seek_prob: float = 0.4,
    progress: bool = True,
) -> dict[str, Any]:
    """Record any Gymnasium env with a Dict(keys MultiBinary, mouse Box) action space and image observations.

    The same format as `collect_arena`, one episode at a time. `captions` are passed as
    `reset(options={"prompt": ...})` when given; key names default to the env's `keys` attribute.
    """
    env = env_fn()
    space = env.action_space
    if not (isinstance(space, gym.spaces.Dict) and set(space.spaces) == {"keys", "mouse"}):
        raise TypeError(f"the env's action space must be Dict(keys=MultiBinary, mouse=Box), got {space}")
    n_keys = int(space["keys"].n)
    keys = tuple(keys or getattr(env.unwrapped, "keys", None) or
                 (DEFAULT_KEYS if n_keys == len(DEFAULT_KEYS) else [f"KEY{i}" for i in range(n_keys)]))
    if len(keys) != n_keys:
        raise ValueError(f"got {len(keys)} key names for an action space of {n_keys} keys")
    shape = env.observation_space.shape
    if shape is None or len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"observations must be HxWx3 images, got shape {shape}")
    prompt = getattr(env.unwrapped, "prompt", "")
    pool = list(captions) if captions is not None else [prompt if isinstance(prompt, str) else ""]

    def step(pressed: np.ndarray, mouse: np.ndarray) -> tuple:
        frame, reward, terminated, truncated, info = env.step({"keys": pressed[0], "mouse": mouse[0]})
        return frame[None], np.array([reward]), np.array([terminated]), np.array([truncated]), info

    def record(seeds: np.ndarray, prompts: list[str], policy: ExplorationPolicy) -> dict[str, np.ndarray]:
        options = {"prompt": prompts[0]} if captions is not None else None
        frame, info = env.reset(seed=int(seeds[0]), options=options)
        policy.reset()
        return _rollout(step, np.asarray(frame, np.uint8)[None], info, policy, segment_len)

    settings = {
        "source": str(env.spec.id if env.spec else type(env.unwrapped).__name__), "keys": list(keys),
        "size": list(shape[:2]), "segment_len": segment_len, "n_segments": n_segments,
        "chunk_segments": chunk_segments, "seed": seed, "seek_prob": seek_prob,
    }
    try:
        return _collect(record, out_dir, settings, pool, 1, {"seek_prob": seek_prob}, progress)
    finally:
        env.close()
