"""RayVectorEnv on a local Ray cluster of 2 CPUs: the same rollouts as local vector envs of the same blocks of envs,
Gymnasium's own vector env of the arena, stable-baselines3 on top, an actor killed mid-episode, clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import waypoint_gym  # noqa: F401  (registers the ids)
from waypoint_gym.distributed import RayVectorEnv, gpus_per_worker, merge_infos, shard_bounds
from waypoint_gym.envs import SB3VecEnv, VectorDiscreteActions, WaypointVectorEnv

ray = pytest.importorskip("ray", reason="Ray is in the dev extra (pip install 'waypoint-gym[ray]')")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ray_processes() -> list[str]:
    """Ray's processes that this test session started: its actors (named after EnvShard, anywhere), and the
    raylet, GCS and workers below this process."""
    parents, names = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        parents[pid], names[pid] = int(fields[1]), cmdline
    mine = {os.getpid()}
    for _ in range(8):  # descendants, a generation at a time
        mine |= {pid for pid, parent in parents.items() if parent in mine}
    return sorted(f"{pid}: {names[pid][:80]}" for pid in names if pid != os.getpid() and (
        "ray::EnvShard" in names[pid] or (pid in mine and "ray" in names[pid])))


@pytest.fixture(scope="module")
def local_ray():
    if sys.platform != "linux":
        pytest.skip("the check for Ray processes left running reads /proc")
    # The workers' rollouts are compared with local ones on one torch thread (one_torch_thread), and a float
    # sum depends on the thread count: the workers get one thread too, whatever OMP_NUM_THREADS the shell
    # exports (Ray hands it on to them).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()
    deadline = time.monotonic() + 30
    while ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_processes(), f"Ray processes left running: {ray_processes()}"


def random_actions(env, steps: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(steps)]


def take(actions: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {k: v[start:stop] for k, v in actions.items()}


class Blocks:
    """Local vector envs of the workers' blocks of envs, stepped and reset together like the RayVectorEnv."""

    def __init__(self, make, bounds):
        self.envs, self.bounds = [make(stop - start) for start, stop in bounds], bounds

    def reset(self, seed: int, mask: np.ndarray | None = None):
        parts = []
        for env, (start, stop) in zip(self.envs, self.bounds):
            if mask is None:
                parts.append(env.reset(seed=[seed + i for i in range(start, stop)]))
            elif mask[start:stop].any():
                parts.append(env.reset(options={"reset_mask": mask[start:stop]}))
            else:
                parts.append((env.world.obs.copy(), {}))
        sizes = [e.num_envs for e in self.envs]
        return np.concatenate([p[0] for p in parts]), merge_infos([p[1] for p in parts], sizes)

    def step(self, actions):
        parts = [env.step(take(actions, start, stop)) for env, (start, stop) in zip(self.envs, self.bounds)]
        obs, rewards, terminated, truncated, infos = zip(*parts)
        return (np.concatenate(obs), np.concatenate(rewards), np.concatenate(terminated), np.concatenate(truncated),
                merge_infos(list(infos), [e.num_envs for e in self.envs]))


def assert_infos_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_shard_bounds_and_merged_infos():
    assert shard_bounds(4, 2) == [(0, 2), (2, 4)] and shard_bounds(5, 3) == [(0, 2), (2, 4), (4, 5)]
    merged = merge_infos([{"a": np.array([1, 2]), "_a": np.array([True, False])}, {}, {"a": np.array([5])}],
                         [2, 1, 1])
    np.testing.assert_array_equal(merged["a"], [1, 2, 0, 5])
    np.testing.assert_array_equal(merged["_a"], [True, False, False, True])


def test_each_worker_asks_for_a_gpu_or_a_share_that_packs():
    assert gpus_per_worker(None, 0, 2) == 0 and gpus_per_worker(None, 8, 4) == 1
    assert gpus_per_worker(None, 3, 4) == 0.5 and gpus_per_worker(None, 1, 3) == pytest.approx(1 / 3)
    assert gpus_per_worker(0.25, 8, 4) == 0.25


def test_bad_arguments_are_refused_before_ray_starts():
    with pytest.raises(ValueError, match=r"num_workers \(3\) must not exceed num_envs \(2\)"):
        RayVectorEnv("Waypoint-v0", 2, 3)
    with pytest.raises(ValueError, match="render_mode='human' cannot show envs that run in Ray actors"):
        RayVectorEnv("Waypoint-v0", 2, 2, render_mode="human")


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r'pip install "waypoint-gym\[ray\]"'):
        RayVectorEnv("Waypoint-v0", 2, 2)


def test_importing_it_loads_no_ray_and_an_unreachable_cluster_is_named():
    code = ("import sys, waypoint_gym.distributed as d; print('ray' in sys.modules)\n"
            "try:\n    d.connect('auto')\nexcept ConnectionError as e:\n    print(e)")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    lines = done.stdout.splitlines()
    assert lines[0] == "False", done.stderr
    assert "no Ray cluster could be reached at address='auto'" in lines[1] and "ray start --head" in lines[1]


def test_two_workers_give_the_rollouts_of_local_vector_envs_of_their_blocks(local_ray):
    """Waypoint-v0 (the bundled world), 4 envs on 2 workers, through next-step autoresets and a partial reset:
    byte for byte those of two local WaypointVectorEnv of 2 envs; against one local vector env of all 4 the
    flags, rewards and frame indices are the same and a pixel may differ by one level (batched matrix products
    round differently at batch 4 than at batch 2)."""
    kwargs = dict(max_episode_steps=3)
    env = RayVectorEnv("Waypoint-v0", 4, 2, **kwargs)
    blocks = Blocks(lambda n: WaypointVectorEnv(n, **kwargs), env.bounds)
    whole = WaypointVectorEnv(4, **kwargs)
    assert env.bounds == [(0, 2), (2, 4)] and env.keys == whole.keys
    assert env.single_observation_space == whole.single_observation_space
    assert env.observation_space == whole.observation_space and env.action_space == whole.action_space
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP

    obs, info = env.reset(seed=7)
    obs_b, info_b = blocks.reset(seed=7)
    obs_w, info_w = whole.reset(seed=7)
    np.testing.assert_array_equal(obs, obs_b)
    assert_infos_equal(info, info_b)
    assert_infos_equal(info, info_w)
    crossed_an_end = False
    for t, actions in enumerate(random_actions(env, 7)):
        if t == 3:
            mask = np.array([False, True, False, False])
            obs, info = env.reset(options={"reset_mask": mask})
            obs_b, info_b = blocks.reset(7, mask)
            obs_w, info_w = whole.reset(options={"reset_mask": mask})
            np.testing.assert_array_equal(obs, obs_b)
            assert_infos_equal(info, info_b)
            assert_infos_equal(info, info_w)
        result, ref, local = env.step(actions), blocks.step(actions), whole.step(actions)
        for got, want in zip(result[:4], ref[:4]):
            np.testing.assert_array_equal(got, want)
        assert_infos_equal(result[4], ref[4])
        assert_infos_equal(result[4], local[4])
        for got, want in zip(result[2:4], local[2:4]):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(result[1], local[1], atol=1e-6)
        assert np.abs(result[0].astype(int) - local[0]).max() <= 1
        crossed_an_end |= bool(result[3].any())
    assert crossed_an_end
    env.close()


def test_the_arena_runs_as_gymnasiums_own_vector_env(local_ray):
    """WaypointArena-v0 has no batched vector env: each worker holds Gymnasium's SyncVectorEnv, and the game is
    numpy, so 3 envs on 2 uneven workers equal one local SyncVectorEnv exactly. A wrong action is refused before
    any worker steps."""
    kwargs = dict(max_episode_steps=4, render_mode="rgb_array")
    env = RayVectorEnv("WaypointArena-v0", 3, 2, **kwargs)
    local = gym.make_vec("WaypointArena-v0", num_envs=3, vectorization_mode="sync", **kwargs)
    assert env.bounds == [(0, 2), (2, 3)] and env.render_mode == "rgb_array"
    obs, info = env.reset(seed=3)
    obs_l, info_l = local.reset(seed=3)
    np.testing.assert_array_equal(obs, obs_l)
    assert_infos_equal(info, info_l)
    crossed_an_end = False
    for t, actions in enumerate(random_actions(env, 6, seed=1)):
        if t == 2:
            with pytest.raises(ValueError, match=r"action\['keys'\] must have shape \(3, 6\)"):
                env.step({"keys": actions["keys"][:2], "mouse": actions["mouse"]})
        result, want = env.step(actions), local.step(actions)
        for got, ref in zip(result[:4], want[:4]):
            np.testing.assert_array_equal(got, ref)
        assert_infos_equal(result[4], want[4])
        crossed_an_end |= bool(want[3].any())
    assert crossed_an_end
    frames = env.render()
    assert len(frames) == 3 and all(np.array_equal(a, b) for a, b in zip(frames, local.render()))
    discrete = VectorDiscreteActions(env)  # the key names come from the workers
    assert discrete.single_action_space.n >= 5
    discrete.close()
    local.close()


def test_an_env_that_cannot_be_built_raises_its_own_error(local_ray):
    with pytest.raises(ValueError, match="size must be an int between 16 and 512, got 3"):
        RayVectorEnv("WaypointArena-v0", 2, 2, size=3)


def test_a_worker_killed_mid_episode_is_restarted_and_its_envs_begin_anew(local_ray, ckpt):
    """A checkpoint folder, 4 envs on 2 workers. Worker 1's process is killed: the next step truncates envs 2-3
    (their last observation, reward 0, flagged), the step after is their autoreset step (the new episodes'
    first frames, from the reported seeds), and envs 0-1 go on untouched; a reset that finds worker 0 dead
    restarts it and resets its envs with the asked-for seeds."""
    kwargs = dict(model=ckpt, reward_fn="novelty")
    env = RayVectorEnv("Waypoint-v0", 4, 2, **kwargs)
    blocks = Blocks(lambda n: WaypointVectorEnv(n, **kwargs), env.bounds)
    env.reset(seed=0)
    blocks.reset(seed=0)
    actions = random_actions(env, 6)
    for a in actions[:2]:
        before, _, _, _, _ = env.step(a)
        blocks.step(a)

    pid = ray.get(env.workers[1].__ray_call__.remote(lambda shard: os.getpid()))
    os.kill(pid, signal.SIGKILL)
    obs, rewards, terminated, truncated, info = env.step(actions[2])
    ref = blocks.step(actions[2])
    assert env.restarts == [0, 1]
    np.testing.assert_array_equal(obs[:2], ref[0][:2])
    np.testing.assert_array_equal(rewards[:2], ref[1][:2])
    np.testing.assert_array_equal(obs[2:], before[2:])  # the last frame they showed, as a truncated episode's end
    np.testing.assert_array_equal(truncated, [False, False, True, True])
    assert not terminated.any() and (rewards[2:] == 0).all()
    np.testing.assert_array_equal(info["actor_restarted"], [False, False, True, True])
    np.testing.assert_array_equal(info["_actor_restarted"], [False, False, True, True])
    seeds = info["restart_seed"][2:].tolist()
    assert info["_restart_seed"].tolist() == [False, False, True, True] and len(set(seeds)) == 2

    fresh = WaypointVectorEnv(2, **kwargs)  # what worker 1's new episodes must be
    start, _ = fresh.reset(seed=seeds)
    obs, rewards, terminated, truncated, info = env.step(actions[3])  # the autoreset step
    ref = blocks.step(actions[3])
    np.testing.assert_array_equal(obs[:2], ref[0][:2])
    np.testing.assert_array_equal(obs[2:], start)
    assert (rewards[2:] == 0).all() and not truncated.any() and not terminated.any()
    np.testing.assert_array_equal(info["frame_index"], [ref[4]["frame_index"][0], ref[4]["frame_index"][1], 1, 1])
    assert "actor_restarted" not in info
    obs, *_ = env.step(actions[4])
    ref = blocks.step(actions[4])
    np.testing.assert_array_equal(obs[:2], ref[0][:2])
    np.testing.assert_array_equal(obs[2:], fresh.step(take(actions[4], 2, 4))[0])

    ray.kill(env.workers[0])
    obs, info = env.reset(seed=20)
    obs_b, _ = blocks.reset(seed=20)
    np.testing.assert_array_equal(obs, obs_b)
    np.testing.assert_array_equal(info["actor_restarted"], [True, True, False, False])
    assert env.restarts == [1, 1]
    env.close()


def test_stable_baselines3_trains_on_it_through_the_adapter(local_ray):
    """SB3VecEnv as it is, over the discrete-action wrapper (the arena, whose actors start fastest)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    core = RayVectorEnv("WaypointArena-v0", 2, 2, size=40, max_episode_steps=8)
    venv = VecMonitor(SB3VecEnv(VectorDiscreteActions(core)))
    model = PPO("CnnPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    assert model.num_timesteps >= 64 and len(model.ep_info_buffer) >= 4  # episodes ended and were reset
    venv.close()


def test_waypoint_15_worlds_run_sharded(local_ray, tmp_path):
    """A Waypoint-1.5 world (the CPU preset's shapes, TAEHV included) with all 4 video frames per observation: the
    workers' rollouts are those of local vector envs of their blocks, info['video_frames'] included."""
    from waypoint_gym.engine import random_checkpoint

    folder = random_checkpoint(tmp_path / "wp15", "waypoint-1.5-cpu", image_size=(64, 128))
    kwargs = dict(model=str(folder), max_episode_steps=2, frames_per_step=4)
    env = RayVectorEnv("Waypoint-v0", 4, 2, **kwargs)
    blocks = Blocks(lambda n: WaypointVectorEnv(n, **kwargs), env.bounds)
    obs, info = env.reset(seed=3)
    obs_b, info_b = blocks.reset(seed=3)
    assert obs.shape == (4, 4, 64, 128, 3) and info["video_frames"].tolist() == [[0, 4]] * 4
    np.testing.assert_array_equal(obs, obs_b)
    assert_infos_equal(info, info_b)
    for actions in random_actions(env, 3):
        result, ref = env.step(actions), blocks.step(actions)
        for got, want in zip(result[:4], ref[:4]):
            np.testing.assert_array_equal(got, want)
        assert_infos_equal(result[4], ref[4])
    env.close()
