"""WaypointVectorEnv: one batched engine behaves like N single envs (seeds, autoreset, per-env prompts and frames)."""

from __future__ import annotations

import pickle
import shutil

import gymnasium as gym
import numpy as np
import pytest
from envs_support import ToyPromptEncoder, split_action

import waypoint_gym  # noqa: F401  (registers Waypoint-v0)
from waypoint_gym.envs import WaypointVectorEnv, WaypointWorldEnv
from waypoint_gym.envs.world_batch import DEFAULT_START_GREY, START_FRAMES_FILE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_frames_close(a, b):
    """uint8 frames from batched and single passes: float rounding may move a pixel by one level."""
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_make_vec_builds_one_batched_engine(ckpt):
    envs = gym.make_vec("Waypoint-v0", num_envs=3, vectorization_mode="vector_entry_point", model=ckpt)
    base = envs.unwrapped
    assert isinstance(base, WaypointVectorEnv) and base.engine.batch_size == 3
    assert envs.single_observation_space.shape == (32, 32, 3) and envs.observation_space.shape == (3, 32, 32, 3)
    assert envs.action_space["keys"].shape == (3, 6) and envs.action_space["mouse"].shape == (3, 2)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP


def test_rollouts_equal_single_envs_through_autoresets(ckpt):
    """Same seeds, same actions: the batched env matches SyncVectorEnv of single envs step by step, across
    next-step autoresets and a partial reset that puts the envs out of phase."""
    kwargs = dict(model=ckpt, max_episode_steps=3, reward_fn="novelty", obs_size=(24, 24))
    batched = gym.make_vec("Waypoint-v0", num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
    singles = gym.vector.SyncVectorEnv([lambda: WaypointWorldEnv(**kwargs) for _ in range(3)])
    obs_b, info_b = batched.reset(seed=11)
    obs_s, info_s = singles.reset(seed=11)
    assert_frames_close(obs_b, obs_s)
    batched.action_space.seed(0)
    for t in range(8):
        if t == 2:
            mask = np.array([False, True, False])
            obs_b, info_b = batched.reset(options={"reset_mask": mask})
            obs_s, info_s = singles.reset(options={"reset_mask": mask.copy()})
            assert_frames_close(obs_b, obs_s)
            np.testing.assert_array_equal(info_b["_frame_index"], info_s["_frame_index"])
            assert info_b["frame_index"][1] == info_s["frame_index"][1] == 1
        actions = batched.action_space.sample()
        obs_b, rew_b, term_b, trunc_b, info_b = batched.step(actions)
        obs_s, rew_s, term_s, trunc_s, info_s = singles.step(actions)
        assert_frames_close(obs_b, obs_s)
        np.testing.assert_allclose(rew_b, rew_s, rtol=1e-3, atol=1e-6)
        np.testing.assert_array_equal(term_b, term_s)
        np.testing.assert_array_equal(trunc_b, trunc_s)
        np.testing.assert_array_equal(info_b["frame_index"], info_s["frame_index"])
    assert trunc_b.any() or info_b["frame_index"].min() == 1  # the run did cross episode ends


def test_next_step_autoreset(ckpt):
    envs = WaypointVectorEnv(2, ckpt, max_episode_steps=2, reward_fn="novelty")
    envs.reset(seed=0)
    noop = {"keys": np.zeros((2, 6), np.int8), "mouse": np.zeros((2, 2), np.float32)}
    assert not envs.step(noop)[3].any()
    _, rewards, terminated, truncated, _ = envs.step(noop)
    assert truncated.all() and not terminated.any() and (rewards > 0).all()
    obs, rewards, terminated, truncated, info = envs.step(noop)  # the autoreset step: action ignored
    assert (obs == DEFAULT_START_GREY).all()
    assert (rewards == 0).all() and not terminated.any() and not truncated.any()
    np.testing.assert_array_equal(info["frame_index"], [1, 1])
    assert envs.step(noop)[4]["frame_index"].tolist() == [2, 2]


def test_per_env_prompts(prompt_ckpt):
    prompts = ["a desert", "a forest", "a desert"]
    envs = WaypointVectorEnv(3, prompt_ckpt, prompt=prompts, prompt_encoder=ToyPromptEncoder())
    obs, info = envs.reset(seed=[5, 5, 5])
    assert info["prompt"].tolist() == prompts
    actions = {"keys": np.ones((3, 6), np.int8), "mouse": np.full((3, 2), 0.25, np.float32)}
    for _ in range(2):
        obs, *_ = envs.step(actions)
    assert_frames_close(obs[0], obs[2])
    assert np.abs(obs[0].astype(int) - obs[1]).max() > 1
    forest = WaypointWorldEnv(prompt_ckpt, prompt="a forest", prompt_encoder=ToyPromptEncoder())
    forest.reset(seed=5)
    for _ in range(2):
        expected = forest.step(split_action(actions, 1))[0]
    assert_frames_close(obs[1], expected)
    _, info = envs.reset(options={"prompt": [None, "a cave", None]})  # None: the constructor's prompt
    assert info["prompt"].tolist() == ["a desert", "a cave", "a desert"]
    _, info = envs.reset(options={"prompt": "a cave"})
    assert info["prompt"].tolist() == ["a cave"] * 3


def test_default_prompt_rows_start_from_the_start_frames_and_others_from_their_prompt(prompt_ckpt, tmp_path):
    folder = shutil.copytree(prompt_ckpt, tmp_path / "world")
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text() + "default_prompt: a desert\n")
    start = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    np.save(folder / START_FRAMES_FILE, start)
    envs = WaypointVectorEnv(3, folder, prompt_encoder=ToyPromptEncoder())
    obs, info = envs.reset(seed=[4, 5, 6], options={"prompt": [None, "a forest", "a cave"]})
    np.testing.assert_array_equal(info["frame_index"], [1, 1, 1])
    np.testing.assert_array_equal(obs[0], start[0])
    single = WaypointWorldEnv(folder, prompt_encoder=ToyPromptEncoder())
    for i, prompt in ((1, "a forest"), (2, "a cave")):
        assert_frames_close(obs[i], single.reset(seed=4 + i, prompt=prompt)[0])


def test_per_env_and_shared_seed_frames(ckpt):
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(2))
    envs = WaypointVectorEnv(3, ckpt)
    obs, info = envs.reset(seed=0, options={"seed_frames": [None, a, [a, b]]})
    np.testing.assert_array_equal(info["frame_index"], [1, 1, 2])
    assert (obs[0] == DEFAULT_START_GREY).all()
    assert abs(float(obs[1].mean()) - float(a.mean())) < 8
    _, info = envs.reset(seed=0, options={"seed_frames": np.stack([a, b, a])})  # one sequence for all
    np.testing.assert_array_equal(info["frame_index"], [3, 3, 3])
    single = WaypointWorldEnv(ckpt)
    single_obs, _ = single.reset(seed=2, seed_frames=[a, b])
    assert_frames_close(envs.reset(seed=0, options={"seed_frames": [None, a, [a, b]]})[0][2], single_obs)


def test_reset_mask_resets_only_the_masked_envs(ckpt):
    envs = WaypointVectorEnv(3, ckpt)
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    obs, info = envs.reset(options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(info["_frame_index"], [False, True, False])
    np.testing.assert_array_equal(envs.engine.frame_index(), [2, 1, 2])


def test_render_and_pickle(ckpt):
    envs = WaypointVectorEnv(2, ckpt, render_mode="rgb_array")
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 2 and frames[0].shape == (32, 32, 3)
    copy = pickle.loads(pickle.dumps(envs))
    actions = envs.action_space.sample()
    copy.reset(seed=1)
    envs.reset(seed=1)
    np.testing.assert_array_equal(copy.step(actions)[0], envs.step(actions)[0])


def test_bad_input(ckpt):
    envs = WaypointVectorEnv(2, ckpt)
    good = {"keys": np.zeros((2, 6)), "mouse": np.zeros((2, 2))}
    with pytest.raises(RuntimeError, match="before step"):
        envs.step(good)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"keys'\] must have shape \(2, 6\)"):
        envs.step({"keys": np.zeros(6), "mouse": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="must be finite"):
        envs.step({"keys": np.zeros((2, 6)), "mouse": np.array([[0, 0], [np.nan, 0]])})
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": [True, False]})
    with pytest.raises(ValueError, match="one per env"):
        envs.reset(seed=[1, 2, 3])
    for seed in ([1, -2], [1.7, 2], [1, True], "ab", b"\x01\x02", -1):  # bytes are no list of seeds
        with pytest.raises(ValueError, match="seed"):
            envs.reset(seed=seed)
    with pytest.raises(ValueError, match="one per env"):
        envs.reset(options={"prompt": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="one entry per env"):
        envs.reset(options={"seed_frames": [np.zeros((8, 8, 3), np.uint8)]})
    with pytest.raises(ValueError, match="num_envs"):
        WaypointVectorEnv(0, ckpt)
    np.testing.assert_array_equal(envs.step(good)[4]["frame_index"], [2, 2])  # still fine after the rejections
    fresh = WaypointVectorEnv(2, ckpt)
    fresh.reset(seed=0)
    fresh.step(good)
    np.testing.assert_array_equal(fresh.step(good)[0], envs.step(good)[0])  # and no env was re-seeded


def test_world_batch_steps_rows_in_any_order_and_refuses_bad_rows(ckpt):
    keys = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1]], np.uint8)
    mouse = np.array([[0.5, 0.0], [-0.3, 0.2]], np.float32)
    worlds = []
    for order in ([0, 1], [1, 0]):
        envs = WaypointVectorEnv(2, ckpt)
        envs.reset(seed=0, options={"seed_frames": [np.full((32, 32, 3), v, np.uint8) for v in (40, 200)]})
        rngs = [np.random.default_rng(10 + row) for row in order]
        envs.world.step(order, keys[order], mouse[order], rngs)
        worlds.append(envs.world)
    np.testing.assert_array_equal(worlds[0].obs, worlds[1].obs)  # each row its own action, noise and history
    world = worlds[0]
    rngs = [np.random.default_rng(0) for _ in range(2)]
    for rows in ([0, 0], [5], [-1, 0], [True, 0]):  # True is not row 1
        with pytest.raises(ValueError, match=r"rows must be distinct env indices in \[0, 2\)"):
            world.step(rows, keys[:len(rows)], mouse[:len(rows)], rngs[:len(rows)])
    with pytest.raises(ValueError, match=r"2 rows take keys \[2, 6\], mouse \[2, 2\] and 2 generators"):
        world.step([0, 1], keys[:, :5], mouse, rngs)
    assert world.engine.frame_index().tolist() == [2, 2] and world.steps.tolist() == [1, 1]


def test_start_fn_draws_per_env_starts_at_reset_and_autoreset(ckpt):
    """Each env draws its own start with its own generator, at reset and again at its next-step autoreset."""
    drawn = []

    def start_fn(rng):
        value = int(rng.integers(1, 255))
        drawn.append(value)
        return {"seed_frames": np.full((32, 32, 3), value, np.uint8)}

    envs = WaypointVectorEnv(3, model=ckpt, max_episode_steps=2, start_fn=start_fn)
    obs, _ = envs.reset(seed=[4, 5, 6])
    assert [int(o[0, 0, 0]) for o in obs] == drawn == [
        int(np.random.default_rng(s).integers(1, 255)) for s in (4, 5, 6)]  # gymnasium seeds np_random like this
    actions = envs.action_space.sample()
    envs.step(actions)
    envs.step(actions)  # truncated: the next step resets each env to a fresh draw
    obs, rewards, *_ = envs.step(actions)
    assert len(drawn) == 6 and [int(o[0, 0, 0]) for o in obs] == drawn[3:]
    assert (rewards == 0).all()
