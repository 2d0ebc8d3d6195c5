"""What the agent scripts share: the action table, the dreamed and real environments, saved policies.

"dream" is `Waypoint-v0` (a world model, the bundled one unless `model` names another) batched in one
forward pass, its reward and termination from the checkpoint's reward head. Each dreamed episode starts from
the first frame of a new map of the real game (`ArenaStarts`), or, given a folder of recorded play, from
several real frames at a random point of a recorded segment (`RecordedStarts`), and is cut (truncated) after
a short imagination horizon, as world-model agents train. "real" is the game itself,
`WaypointArena-v0`. Both take the same discrete actions, so a policy trained in one runs in the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

from waypoint_gym.envs import SB3VecEnv, WaypointVectorEnv
from waypoint_gym.envs.wrappers import TURN, DiscreteActions, MacroAction, VectorDiscreteActions
from waypoint_gym.training.data import RecordedStarts
from waypoint_gym.worlds import ArenaEnv, ArenaStarts
from waypoint_gym.worlds.arena import DEFAULT_PROMPT

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}
WORLDS = ("dream", "real")

# The navigation actions an orb hunter needs; the agents' action space is Discrete(len(NAV_MACROS)).
NAV_MACROS: tuple[MacroAction, ...] = (
    MacroAction("forward", ("W",)),
    MacroAction("forward_left", ("W",), (-TURN, 0.0)),
    MacroAction("forward_right", ("W",), (TURN, 0.0)),
    MacroAction("turn_left", (), (-TURN, 0.0)),
    MacroAction("turn_right", (), (TURN, 0.0)),
)


class RandomPrompt(gym.Wrapper):
    """Each reset of the real game draws its caption from `prompts` (seeded with reset's seed)."""

    def __init__(self, env: gym.Env, prompts: Sequence[str]):
        super().__init__(env)
        self.prompts = list(prompts)
        self._rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        options = {"prompt": self.prompts[int(self._rng.integers(len(self.prompts)))], **(options or {})}
        return self.env.reset(seed=seed, options=options)


def real_env(prompts: Sequence[str] = (DEFAULT_PROMPT,), max_episode_steps: int = 200, render_mode=None) -> gym.Env:
    """One real game with the agents' discrete actions, a caption drawn from `prompts` at each reset."""
    env = ArenaEnv(render_mode=render_mode, max_episode_steps=max_episode_steps, prompt=prompts[0])
    if len(prompts) > 1:
        env = RandomPrompt(env, prompts)
    return DiscreteActions(env, NAV_MACROS)


def make_vec_env(world: str, n_envs: int, seed: int, prompts: Sequence[str] = (DEFAULT_PROMPT,),
                 max_episode_steps: int = 200, model: str | None = None, device: str = "cpu",
                 n_denoise_steps: int | None = None, starts: str | Path | None = None,
                 context_frames: int = 6) -> VecEnv:
    """`n_envs` dreamed worlds in one batched pass, or `n_envs` real games, as a stable-baselines3 VecEnv
    with episode statistics (VecMonitor) and seeds `seed + i`; episodes are cut after `max_episode_steps`.

    A dream starts each episode from the first frame of a new map, or with `starts` (a folder of recorded
    play, `waypoint-gym train collect`) from `context_frames` real frames of a segment recorded under one of
    `prompts`, drawn anew by each env at each reset."""
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts must name at least one caption")
    if world == "dream":
        start_fn = ArenaStarts(prompts) if starts is None else RecordedStarts(starts, context_frames, prompts=prompts)
        venv = WaypointVectorEnv(
            n_envs, model=model, device=device, n_denoise_steps=n_denoise_steps, max_episode_steps=max_episode_steps,
            start_fn=start_fn,
        )
        vec = SB3VecEnv(VectorDiscreteActions(venv, NAV_MACROS))
    elif starts is not None:
        raise ValueError("starts are for the dream; the real game starts each episode on a new map")
    else:
        vec = DummyVecEnv([lambda: Monitor(real_env(prompts, max_episode_steps))] * n_envs)
    vec.seed(seed)
    return vec if world == "real" else VecMonitor(vec)


def load_policy(path: str | Path, device: str = "cpu") -> BaseAlgorithm:
    """A policy saved by agents/train.py; the algorithm is read from the `train.json` beside it (else PPO)."""
    import json

    path = Path(path)
    meta = path.parent / "train.json"
    algo = json.loads(meta.read_text())["algo"] if meta.exists() else "ppo"
    return ALGOS[algo].load(path, device=device)


class RandomAgent:
    """Uniformly random navigation actions: the floor any learner must beat."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, info: dict | None = None) -> np.ndarray:
        return self.rng.integers(len(NAV_MACROS), size=len(obs))


class ScriptedAgent:
    """Walks the shortest path to the nearest orb using the real game's state (`info["waypoint_bearing"]`):
    a reference for what the task allows. It needs the game's state, so it runs in the real game only."""

    def __init__(self, aim: float = 0.25):
        self.aim = aim  # radians of bearing within which it walks straight on

    def act(self, obs: np.ndarray, info: dict | None = None) -> np.ndarray:
        bearing = np.asarray(info["waypoint_bearing"], dtype=np.float64)  # [n]; > 0: the target is to the right
        action = np.zeros(len(bearing), np.int64)  # forward
        action[bearing < -self.aim] = 1  # forward_left
        action[bearing > self.aim] = 2  # forward_right
        action[bearing < -4 * self.aim] = 3  # turn_left on the spot
        action[bearing > 4 * self.aim] = 4  # turn_right
        return action


class PolicyAgent:
    """A stable-baselines3 policy as an agent over batches of observations."""

    def __init__(self, model: BaseAlgorithm, deterministic: bool = False):
        self.model, self.deterministic = model, deterministic

    def act(self, obs: np.ndarray, info: dict | None = None) -> np.ndarray:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(action)


# ---------------------------------------------------------------------------------------- episodes to compare

EVAL_SEED = 1_000_000  # episode seeds from here on are never drawn in training (those are random 31-bit seeds)


def episode_starts(n: int, seed: int = EVAL_SEED, prompts: Sequence[str] = (DEFAULT_PROMPT,)) -> list[tuple[int, str]]:
    """`n` (arena seed, caption) pairs: seeds `seed + i`, captions drawn from `prompts` (reproducibly)."""
    rng = np.random.default_rng(seed)
    return [(seed + i, prompts[int(rng.integers(len(prompts)))]) for i in range(n)]


def _batched_infos(infos: Sequence[dict]) -> dict[str, np.ndarray]:
    return {k: np.array([info[k] for info in infos]) for k in infos[0]}


def play_real(agent, starts: Sequence[tuple[int, str]], max_steps: int = 200,
              record: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each start played once in the real game, all in lockstep. Returns the returns [n] and the frames
    (reset frame first) of the first `record` episodes."""
    envs = [real_env([prompt], max_steps) for _, prompt in starts]
    first = [env.reset(seed=seed, options={"prompt": prompt}) for env, (seed, prompt) in zip(envs, starts)]
    obs = np.stack([o for o, _ in first])
    infos = [i for _, i in first]
    returns = np.zeros(len(envs))
    done = np.zeros(len(envs), bool)
    frames = [[obs[i].copy()] for i in range(min(record, len(envs)))]
    while not done.all():
        actions = agent.act(obs, _batched_infos(infos))
        for i in np.flatnonzero(~done):
            obs[i], reward, terminated, truncated, infos[i] = envs[i].step(actions[i])
            returns[i] += reward
            done[i] = terminated or truncated
            if i < len(frames):
                frames[i].append(obs[i].copy())
    return returns, [np.stack(f) for f in frames]


def play_dream(agent, starts: Sequence[tuple[int, str]], max_steps: int = 200, n_envs: int = 16,
               model: str | None = None, device: str = "cpu", n_denoise_steps: int | None = None,
               record: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each start played once in the dream, `n_envs` at a time in one batched pass: the world model starts
    from the real game's first frame of that arena seed, with its caption, and the episode's denoising
    noise is seeded with the arena seed. Returns like play_real."""
    n_envs = min(n_envs, len(starts))
    venv = VectorDiscreteActions(WaypointVectorEnv(n_envs, model=model, device=device,
                                                   n_denoise_steps=n_denoise_steps, max_episode_steps=max_steps),
                                 NAV_MACROS)
    arena = ArenaEnv()
    returns, frames = np.zeros(len(starts)), []
    for lo in range(0, len(starts), n_envs):
        chunk = list(starts[lo: lo + n_envs])
        seeds = [s for s, _ in chunk] + [0] * (n_envs - len(chunk))  # a short last chunk pads with spare envs
        prompts = [p for _, p in chunk] + [chunk[0][1]] * (n_envs - len(chunk))
        seed_frames = [arena.reset(seed=s, options={"prompt": p})[0] for s, p in zip(seeds, prompts)]
        obs, _ = venv.reset(seed=seeds, options={"prompt": prompts, "seed_frames": seed_frames})
        done = np.zeros(n_envs, bool)
        done[len(chunk):] = True
        keep = [[obs[i].copy()] for i in range(min(record - lo, len(chunk)))] if record > lo else []
        while not done.all():
            obs, reward, terminated, truncated, _ = venv.step(agent.act(obs))
            returns[lo: lo + len(chunk)] += np.where(done, 0.0, reward)[: len(chunk)]
            for i, k in enumerate(keep):
                if not done[i]:
                    k.append(obs[i].copy())
            done |= terminated | truncated
        frames += [np.stack(k) for k in keep]
    venv.close()
    return returns, frames


def mean_ci(returns: np.ndarray) -> dict[str, float]:
    """Mean return with a 95% confidence interval (normal approximation: mean +- 1.96 standard errors)."""
    returns = np.asarray(returns, dtype=np.float64)
    half = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns)) if len(returns) > 1 else float("nan")
    return {"mean": float(returns.mean()), "ci95": float(half), "n": len(returns)}
