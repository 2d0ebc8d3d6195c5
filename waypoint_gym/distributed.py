"""RayVectorEnv: one Gymnasium vector env whose envs are sharded across Ray actors, one batched world per actor.

Rollouts in a world model cost a forward pass per step, so a learner that wants more env steps than one device
gives spreads its envs over several: each Ray actor (an `EnvShard`) holds one natively batched vector env, made by
`gymnasium.make_vec` on the GPU Ray assigns it (else the CPU), and `RayVectorEnv` hands each actor its block of
the batched action, lets them all step at once and lays their results end to end. To the learner it is one
`VectorEnv` with the spaces, seeding, next-step autoreset and infos of the local vector env.

Ray is imported only when a RayVectorEnv is made: `pip install "waypoint-gym[ray]"`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from waypoint_gym.checks import is_int, per_env_seeds
from waypoint_gym.engine.controls import check_actions
from waypoint_gym.envs.registration import ENTRY_POINT

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "waypoint-gym[ray]"'
SEED_BOUND = 2**31 - 1  # seeds drawn for the episodes a restarted actor begins lie in [0, SEED_BOUND)


def import_ray():
    """The `ray` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"RayVectorEnv needs Ray, which is not installed here: {INSTALL_HINT}") from e
    return ray


def connect(address: str | None = None, **init_kwargs: Any) -> None:
    """Join a Ray cluster, unless this process has joined one already.

    `address=None` is `ray.init()`'s own choice: the cluster in `RAY_ADDRESS`, else one started on this machine
    with `ray start`, else a new Ray instance on this machine. `"auto"` insists on an existing cluster;
    `"ray://host:10001"` reaches one from outside. `init_kwargs` go to `ray.init` (e.g. `num_cpus`).
    """
    ray = import_ray()
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, **init_kwargs)
    except ConnectionError as e:
        raise ConnectionError(
            f"no Ray cluster could be reached at address={address!r} ({e}); start one with `ray start --head` and "
            "pass its address, or pass address=None to start Ray on this machine"
        ) from e


def shard_bounds(num_envs: int, num_workers: int) -> list[tuple[int, int]]:
    """Contiguous blocks [start, stop) of env indices, one per worker, as even as possible (the first blocks take
    one env more when `num_envs` does not divide)."""
    size, extra = divmod(num_envs, num_workers)
    bounds, start = [], 0
    for w in range(num_workers):
        stop = start + size + (w < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def gpus_per_worker(asked: float | None, cluster_gpus: float, num_workers: int) -> float:
    """The GPUs each actor asks for: `asked`, or by default one each if the cluster has a GPU per worker; with
    fewer, 1/k of one, so that k workers share each GPU (whole shares pack onto the GPUs); none without GPUs."""
    if asked is not None:
        if isinstance(asked, bool) or not isinstance(asked, (int, float)) or asked < 0:
            raise ValueError(f"num_gpus_per_worker must be a number >= 0 or None, got {asked!r}")
        return float(asked)
    if cluster_gpus <= 0:
        return 0.0
    share = 1.0 / math.ceil(num_workers / cluster_gpus)
    if share < 1:
        log.warning("%d workers share the cluster's %g GPUs (%.2f each)", num_workers, cluster_gpus, share)
    return share


# ---------------------------------------------------------------------------------------------------- the actor


class EnvShard:
    """One worker's block of envs: `gymnasium.make_vec(env_id, num_envs, vectorization_mode, **env_kwargs)`.

    A plain class that RayVectorEnv runs as a Ray actor (it needs no Ray itself). The env is built by `make`, not
    by the constructor, so that an error building it reaches the caller as that error (a ValueError for a bad
    argument, say) instead of as the death of the actor. Methods take and return numpy arrays and dicts.
    """

    def __init__(self, env_id: str, num_envs: int, vectorization_mode: str, env_kwargs: dict[str, Any]):
        self.env_id, self.num_envs = env_id, num_envs
        self.vectorization_mode, self.env_kwargs = vectorization_mode, env_kwargs
        self.env: VectorEnv | None = None

    def make(self) -> dict[str, Any]:
        """Build the vector env; returns what the driver needs to know of it (spaces, metadata, key names)."""
        import waypoint_gym  # noqa: F401  (registers the ids in this process)
        from waypoint_gym.envs.wrappers import env_attr

        self.env = gym.make_vec(self.env_id, num_envs=self.num_envs, vectorization_mode=self.vectorization_mode,
                                **self.env_kwargs)
        return {
            "single_observation_space": self.env.single_observation_space,
            "single_action_space": self.env.single_action_space,
            "metadata": dict(self.env.metadata),
            "render_mode": self.env.render_mode,
            "keys": env_attr(self.env, "keys"),
            "macro_actions": env_attr(self.env, "macro_actions"),
        }

    def reset(self, seed: list[int | None] | None = None, options: dict[str, Any] | None = None):
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any):
        return self.env.step(actions)

    def render(self):
        return self.env.render()

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


# ---------------------------------------------------------------------------------------------------- helpers


def _first_line(error: BaseException) -> str:
    """Ray's errors run to many lines; the first says what happened."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _rows(x: Any, start: int, stop: int) -> Any:
    """Rows [start, stop) of a batch: an array, or a dict of them."""
    if isinstance(x, Mapping):
        return {k: _rows(v, start, stop) for k, v in x.items()}
    return np.asarray(x)[start:stop]


def _concat(parts: list[Any]) -> Any:
    """Batches laid end to end: arrays, or dicts of them."""
    if isinstance(parts[0], Mapping):
        return {k: _concat([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate([np.asarray(p) for p in parts])


def _copy(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _copy(v) for k, v in x.items()}
    return np.array(x)


def _blank(like: np.ndarray, n: int) -> np.ndarray:
    """n rows shaped like `like`'s, as Gymnasium fills the envs that did not report a key: zeros, or None."""
    if like.dtype == object:
        return np.full((n, *like.shape[1:]), None, dtype=object)
    return np.zeros((n, *like.shape[1:]), like.dtype)


def merge_infos(parts: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Gymnasium vector infos of consecutive blocks of envs -> the infos of them all: each key's array and its
    `_key` mask laid end to end; a block that does not report the key is filled with zeros (None for objects)
    and masked out, as Gymnasium's own vector envs fill envs without it."""
    keys = list(dict.fromkeys(k for p in parts for k in p if not k.startswith("_")))
    out: dict[str, Any] = {}
    for key in keys:
        if any(isinstance(p.get(key), Mapping) for p in parts):
            out[key] = merge_infos([p.get(key, {}) for p in parts], sizes)
        else:
            like = next(np.asarray(p[key]) for p in parts if key in p)
            out[key] = np.concatenate([np.asarray(p[key]) if key in p else _blank(like, n)
                                       for p, n in zip(parts, sizes)])
        out[f"_{key}"] = np.concatenate([
            np.asarray(p.get(f"_{key}", np.ones(n, bool)), bool) if key in p else np.zeros(n, bool)
            for p, n in zip(parts, sizes)])
    return out


def _shard_options(options: dict[str, Any], start: int, stop: int, num_envs: int) -> dict[str, Any]:
    """A worker's share of reset options: per-env values (a list or tuple of `num_envs` entries; for
    `seed_frames` a list only, as WaypointVectorEnv reads a tuple as one sequence of frames for all) and the
    `reset_mask` are cut to its block, shared values are passed whole."""
    out = {}
    for key, value in options.items():
        if key == "reset_mask":
            out[key] = value[start:stop]
        elif isinstance(value, list if key == "seed_frames" else (list, tuple)) and len(value) == num_envs:
            out[key] = list(value[start:stop])
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------- the env


class RayVectorEnv(VectorEnv):
    """`num_envs` envs of `env_id` sharded across `num_workers` Ray actors, each holding one batched vector env.

    Worker w holds a contiguous block of env indices (`self.bounds[w]`) in one vector env made by
    `gymnasium.make_vec` in its actor: the id's `vector_entry_point` where it has one (`WaypointVectorEnv` for
    `Waypoint-v0` and any checkpoint passed as `model=`: one batched forward pass per step), else Gymnasium's
    `SyncVectorEnv` (`WaypointArena-v0`). `step` sends each actor its block of the batched action and gathers
    the results with one `ray.get`, so the actors step concurrently.

    Arguments: `env_kwargs` go to every worker's env (as to `gymnasium.make_vec`); a Waypoint world whose kwargs
    name no `device` runs on `"cuda"` in an actor given a GPU, else on the CPU. A checkpoint folder named by
    `model=` must exist at that path on every node. Ray options, keywords only:

    - `vectorization_mode`: `make_vec`'s mode in each actor; None: `"vector_entry_point"` where the id has one,
      else `"sync"`.
    - `num_cpus_per_worker` (1) and `num_gpus_per_worker`: the resources each actor asks Ray for. None: one GPU
      each if the cluster has a GPU per worker; if it has fewer, 1/k of one, k workers sharing each GPU; none
      without GPUs.
    - `address`, `ray_init_kwargs`: how to join Ray when this process has not already (`connect`): None starts
      Ray on this machine; `"auto"` or `"ray://host:10001"` for a cluster.
    - `max_restarts` (3): how many times each worker's actor may be replaced after dying.

    Spaces, seeding and infos are those of the local vector env of all the envs: `reset(seed=s)` gives env i the
    seed `s + i` (a list gives one each); `options` may hold per-env lists (cut to each worker's block) and
    `reset_mask`; autoreset is Gymnasium's next-step mode; infos are the workers' laid end to end, with their
    `_key` masks. Per row, results equal those of a local vector env of the same block of envs with the same
    seeds, to the byte: a Waypoint world's batched matrix products round differently at other batch sizes, so
    against one local vector env of all the envs a pixel may differ by one level.

    Faults: when an actor has died (its process or node lost), the step that finds it out replaces it with a
    new actor and truncates its envs' episodes: `truncated` True, reward 0, the observation the last one those
    envs returned, and `info["actor_restarted"]` True with `info["restart_seed"]`, the seed each env's new
    episode starts from (drawn from this env's own generator, `self.np_random`, which `reset(seed=int)` seeds:
    a run with the same seed and the same failures is reproducible). The step after is their autoreset step,
    as after any truncation: the new episodes' first observations, reward 0, the action ignored. A new episode
    starts as an autoreset does (the constructor's prompt and seed frames, or `start_fn`'s). The other workers'
    envs are untouched. A reset that finds an actor dead replaces it and resets all of its envs (those the
    reset did not name with drawn seeds), flagging them in `info["actor_restarted"]`; so does a reset that
    names some envs of a worker still waiting for its autoreset step. An actor that dies more than
    `max_restarts` times raises a RuntimeError. `self.restarts[w]` counts worker w's replacements.

    `close()` ends the actors; Ray itself stays up (`ray.shutdown()` stops it, as does the end of the process).
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        num_workers: int = 2,
        *,
        vectorization_mode: str | None = None,
        num_cpus_per_worker: float = 1,
        num_gpus_per_worker: float | None = None,
        address: str | None = None,
        ray_init_kwargs: dict[str, Any] | None = None,
        max_restarts: int = 3,
        **env_kwargs: Any,
    ):
        for name, value in (("num_envs", num_envs), ("num_workers", num_workers)):
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if num_workers > num_envs:
            raise ValueError(f"num_workers ({num_workers}) must not exceed num_envs ({num_envs}): a worker holds "
                             "at least one env")
        if not is_int(max_restarts) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, got {max_restarts!r}")
        if env_kwargs.get("render_mode") == "human":
            raise ValueError("render_mode='human' cannot show envs that run in Ray actors: use 'rgb_array' and "
                             "show the frames of render() here")
        spec = gym.spec(env_id)  # raises for an unknown id, naming the close ones
        mode = vectorization_mode or ("vector_entry_point" if spec.vector_entry_point is not None else "sync")
        ray = import_ray()
        connect(address, **(ray_init_kwargs or {}))
        self._ray = ray
        self.env_id, self.num_envs, self.num_workers = env_id, int(num_envs), int(num_workers)
        self.max_restarts = int(max_restarts)
        self.bounds = shard_bounds(self.num_envs, self.num_workers)
        self._sizes = [stop - start for start, stop in self.bounds]

        gpus = gpus_per_worker(num_gpus_per_worker, ray.cluster_resources().get("GPU", 0), self.num_workers)
        kwargs = dict(env_kwargs)
        if spec.entry_point == ENTRY_POINT and gpus > 0 and "device" not in kwargs:
            kwargs["device"] = "cuda"  # the actor sees only the GPUs Ray gave it (CUDA_VISIBLE_DEVICES)
        self._actor = ray.remote(EnvShard).options(num_cpus=num_cpus_per_worker, num_gpus=gpus, max_restarts=0)
        self._shard_args = [(env_id, n, mode, kwargs) for n in self._sizes]
        self.workers: list[Any] = [self._actor.remote(*args) for args in self._shard_args]
        self.restarts = [0] * self.num_workers
        try:
            described = ray.get([w.make.remote() for w in self.workers])  # the actors build their envs at once
        except BaseException:
            self.close_extras()
            raise
        first = described[0]
        if first["metadata"].get("autoreset_mode", AutoresetMode.NEXT_STEP) != AutoresetMode.NEXT_STEP:
            self.close_extras()
            raise ValueError(f"RayVectorEnv needs next-step autoreset; {env_id!r} in {mode!r} mode has "
                             f"{first['metadata']['autoreset_mode']}")
        modes = [m for m in first["metadata"].get("render_modes", []) if m != "human"]  # no window in an actor
        self.metadata = {**first["metadata"], "render_modes": modes, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.render_mode = first["render_mode"]
        self.keys, self.macro_actions = first["keys"], first["macro_actions"]
        self.single_observation_space = first["single_observation_space"]
        self.single_action_space = first["single_action_space"]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._checks_controls = isinstance(self.single_action_space, gym.spaces.Dict) and \
            set(self.single_action_space.spaces) == {"keys", "mouse"}
        self._obs = None  # the latest observation of every env, as last returned
        self._pending: list[list[int] | None] = [None] * self.num_workers  # seeds of a replaced worker's reset step

    # ------------------------------------------------------------------------------------ faults

    def _replace(self, w: int, error: BaseException) -> None:
        """Worker w's actor died: end it for good and build a new one in its place (not yet reset); if the new one
        dies too, again, up to `max_restarts` in all."""
        while True:
            if self.restarts[w] >= self.max_restarts:
                start, stop = self.bounds[w]
                raise RuntimeError(f"worker {w} (envs {start}..{stop - 1}) died after {self.restarts[w]} restarts "
                                   f"(max_restarts={self.max_restarts}): {_first_line(error)}") from error
            self.restarts[w] += 1
            log.warning("worker %d (envs %d..%d) died; restarting it (restart %d of at most %d): %s", w,
                        self.bounds[w][0], self.bounds[w][1] - 1, self.restarts[w], self.max_restarts,
                        _first_line(error))
            try:
                self._ray.kill(self.workers[w], no_restart=True)
            except Exception:  # already gone
                pass
            self.workers[w] = self._actor.remote(*self._shard_args[w])
            try:
                self._ray.get(self.workers[w].make.remote())
                return
            except self._ray.exceptions.RayActorError as again:
                error = again

    def _reset_replaced(self, w: int, seeds: list[int | None], options: dict[str, Any] | None,
                        error: BaseException) -> tuple[Any, dict[str, Any]]:
        """Replace worker w and reset all its envs; the info flags them (`actor_restarted`)."""
        while True:
            self._replace(w, error)
            try:
                obs, info = self._ray.get(self.workers[w].reset.remote(seed=seeds, options=options))
                return obs, self._flag(info, len(seeds))
            except self._ray.exceptions.RayActorError as again:
                error = again

    def _fresh_seeds(self, n: int) -> list[int]:
        return [int(s) for s in self.np_random.integers(SEED_BOUND, size=n)]

    @staticmethod
    def _flag(info: dict[str, Any], n: int, seeds: list[int] | None = None) -> dict[str, Any]:
        """A worker's info (n envs) with its envs marked as begun anew by a replaced actor, and the seeds of their
        new episodes if given."""
        flagged = {**info, "actor_restarted": np.ones(n, bool), "_actor_restarted": np.ones(n, bool)}
        if seeds is not None:
            flagged.update(restart_seed=np.asarray(seeds, np.int64), _restart_seed=np.ones(n, bool))
        return flagged

    # ------------------------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        n = self.num_envs
        seeds = per_env_seeds(seed, n)
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        options = dict(options or {})
        mask = options.get("reset_mask")
        if mask is not None and (not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,)
                                 or not mask.any()):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({n},) with a True, got {mask!r}")
        if self._obs is None and mask is not None and not mask.all():
            raise RuntimeError("call reset() on all envs before a partial reset (options['reset_mask'])")
        if is_int(seed):
            super().reset(seed=int(seed))  # seeds self.np_random, which draws the seeds of restarted envs

        calls: dict[int, tuple[list[int | None], dict[str, Any] | None]] = {}
        for w, (start, stop) in enumerate(self.bounds):
            block = None if mask is None else mask[start:stop]
            if block is not None and not block.any():
                continue  # none of this worker's envs is reset: they keep their observations
            worker_seeds, worker_options = seeds[start:stop], _shard_options(options, start, stop, n)
            if self._pending[w] is not None and block is not None:  # waiting for its autoreset step: all begin now
                worker_seeds = [s if m else p for s, m, p in zip(worker_seeds, block, self._pending[w])]
                worker_options.pop("reset_mask")
            calls[w] = (worker_seeds, worker_options or None)
        futures = {w: self.workers[w].reset.remote(seed=s, options=o) for w, (s, o) in calls.items()}
        obs_parts, info_parts = [], []
        for w, (start, stop) in enumerate(self.bounds):
            if w not in futures:
                obs_parts.append(self._obs[start:stop])
                info_parts.append({})
                continue
            try:
                obs, info = self._ray.get(futures[w])
                if self._pending[w] is not None:
                    info = self._flag(info, stop - start)
            except self._ray.exceptions.RayActorError as e:
                worker_seeds, worker_options = calls[w]
                if worker_options and "reset_mask" in worker_options:  # a new actor's envs all need a first reset
                    block = worker_options.pop("reset_mask")
                    drawn = self._fresh_seeds(stop - start)
                    worker_seeds = [s if m else d for s, m, d in zip(worker_seeds, block, drawn)]
                obs, info = self._reset_replaced(w, worker_seeds, worker_options or None, e)
            self._pending[w] = None
            obs_parts.append(obs)
            info_parts.append(info)
        self._obs = _concat(obs_parts)
        return _copy(self._obs), merge_infos(info_parts, self._sizes)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        self._check(actions)
        futures = []
        for w, (start, stop) in enumerate(self.bounds):
            if self._pending[w] is not None:  # a replaced worker's autoreset step: its new episodes begin
                futures.append(self.workers[w].reset.remote(seed=self._pending[w]))
            else:
                futures.append(self.workers[w].step.remote(_rows(actions, start, stop)))
        parts = []
        for w, ((start, stop), future) in enumerate(zip(self.bounds, futures)):
            n = stop - start
            none = np.zeros(n, bool)
            if self._pending[w] is not None:  # (obs, info) of a reset: reward 0, no episode end
                try:
                    obs, info = self._ray.get(future)
                except self._ray.exceptions.RayActorError as e:  # died again before its new episodes began
                    obs, info = self._reset_replaced(w, self._pending[w], None, e)
                parts.append((obs, np.zeros(n), none, none.copy(), info))
                self._pending[w] = None
                continue
            try:
                parts.append(self._ray.get(future))
            except self._ray.exceptions.RayActorError as e:  # truncate its episodes; their autoreset step is next
                self._replace(w, e)
                self._pending[w] = self._fresh_seeds(n)
                info = self._flag({}, n, self._pending[w])
                parts.append((self._obs[start:stop], np.zeros(n), none, np.ones(n, bool), info))
        obs, rewards, terminated, truncated, infos = zip(*parts)
        self._obs = _concat(list(obs))
        return (_copy(self._obs), np.concatenate(rewards).astype(np.float64), np.concatenate(terminated),
                np.concatenate(truncated), merge_infos(list(infos), self._sizes))

    def _check(self, actions: Any) -> None:
        """Refuse a wrong action here, before any worker steps (so none is left a step ahead of the others)."""
        if self._checks_controls:
            check_actions(actions, self.single_action_space["keys"].n, batch=self.num_envs)
            return
        leaves = list(actions.values()) if isinstance(actions, Mapping) else [actions]
        for leaf in leaves:
            if np.shape(leaf)[:1] != (self.num_envs,):
                raise ValueError(f"actions must be a batch of {self.num_envs} (one per env), got shape "
                                 f"{np.shape(leaf)}")

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='rgb_array'")
            return None
        frames = self._ray.get([w.render.remote() for w in self.workers])
        return tuple(f for part in frames for f in part)

    def close_extras(self, **kwargs: Any) -> None:
        """End the actors (Ray itself stays up)."""
        ray = getattr(self, "_ray", None)
        if ray is None or not ray.is_initialized():
            return
        for worker in getattr(self, "workers", []):
            try:
                ray.kill(worker, no_restart=True)
            except Exception:  # already gone
                pass
        self.workers = []
