"""WaypointWorldEnv on tiny RANDOM-weight worlds: Gymnasium conformance, seeding, inputs, errors, wrappers."""

from __future__ import annotations

import pickle
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from envs_support import ToyPromptEncoder, tiny_checkpoint, torch_threads
from gymnasium.utils.env_checker import check_env

import waypoint_gym  # noqa: F401  (registers Waypoint-v0)
from waypoint_gym.envs import WaypointWorldEnv
from waypoint_gym.envs.world_batch import DEFAULT_START_GREY, START_FRAMES_FILE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def env(ckpt):
    return WaypointWorldEnv(ckpt, render_mode="rgb_array")


def rollout(env, seed, n=3, **reset_kwargs):
    env.action_space.seed(seed)
    obs = [env.reset(seed=seed, **reset_kwargs)[0]]
    for _ in range(n):
        obs.append(env.step(env.action_space.sample())[0])
    return np.stack(obs)


def noop(env):
    return {"keys": np.zeros(len(env.keys), np.int8), "mouse": np.zeros(2, np.float32)}


# -----------------------------------------------------------------------------
# conformance


@pytest.mark.filterwarnings("ignore:.*alternative render modes")  # no spec: built directly, not by gym.make
def test_gymnasium_check_env(env):
    check_env(env)


def test_spaces_and_info(env):
    assert env.action_space["keys"].n == 6 and env.keys == ("W", "A", "S", "D", "SPACE", "SHIFT")
    assert env.observation_space.shape == (32, 32, 3) and env.observation_space.dtype == np.uint8
    obs, info = env.reset(seed=1)
    assert info == {"frame_index": 1, "prompt": None}
    obs, reward, terminated, truncated, info = env.step(noop(env))
    assert env.observation_space.contains(obs)
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["frame_index"] == 2


def test_timing_info(ckpt):
    env = WaypointWorldEnv(ckpt, timing=True)
    _, info = env.reset(seed=0)
    assert info["step_time"] > 0
    _, _, _, _, info = env.step(noop(env))
    assert info["step_time"] > 0 and env.step_time == info["step_time"]


def test_seed_makes_the_episode_reproducible(env):
    a, b, c = rollout(env, 7), rollout(env, 7), rollout(env, 8)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[1:].astype(int) - c[1:]).max() > 10  # other noise, other frames


def test_default_start_is_mid_grey(env):
    obs, _ = env.reset(seed=0)
    assert (obs == DEFAULT_START_GREY).all()


def test_start_frames_file_is_the_default_start(ckpt, tmp_path):
    folder = shutil.copytree(ckpt, tmp_path / "world")
    start = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.save(folder / START_FRAMES_FILE, start)
    obs, info = WaypointWorldEnv(folder).reset(seed=0)
    np.testing.assert_array_equal(obs, start[-1])
    assert info["frame_index"] == 2


def test_seed_frames_any_size_by_keyword_or_options(env):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), rng.integers(0, 256, (100, 50, 3), dtype=np.uint8)]
    obs, info = env.reset(seed=0, seed_frames=frames)
    assert info["frame_index"] == 2 and obs.shape == (32, 32, 3)
    assert abs(float(obs.mean()) - float(frames[-1].mean())) < 8  # the last seed frame, resized
    np.testing.assert_array_equal(rollout(env, 3, seed_frames=frames), rollout(env, 3, options={"seed_frames": frames}))
    one = rollout(env, 3, seed_frames=frames[0])
    np.testing.assert_array_equal(one, rollout(env, 3, seed_frames=frames[0][None]))
    assert np.abs(one[1:].astype(int) - rollout(env, 3)[1:]).max() > 0  # the start matters


def test_obs_size_resizes_and_render_shows_full_frames(ckpt):
    env = WaypointWorldEnv(ckpt, obs_size=(24, 40), render_mode="rgb_array")
    assert env.observation_space.shape == (24, 40, 3)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(noop(env))
    assert obs.shape == (24, 40, 3)
    assert env.render().shape == (32, 32, 3)


def test_truncation_at_max_episode_steps(ckpt):
    env = WaypointWorldEnv(ckpt, max_episode_steps=2)
    env.reset(seed=0)
    assert env.step(noop(env))[3] is False
    assert env.step(noop(env))[3] is True


def test_keys_and_mouse_reach_the_model(env):
    """Different keys or mouse with the same noise give different frames: the controls condition the model."""
    env.reset(seed=0)
    base = env.step(noop(env))[0]
    env.reset(seed=0)
    forward = env.step({"keys": np.array([1, 0, 0, 0, 0, 0]), "mouse": np.zeros(2)})[0]
    env.reset(seed=0)
    turn = env.step({"keys": np.zeros(6), "mouse": np.array([1.0, 0.0])})[0]
    assert (base != forward).any() and (base != turn).any()


# -----------------------------------------------------------------------------
# prompts


def test_prompts_condition_the_world(prompt_ckpt):
    env = WaypointWorldEnv(prompt_ckpt, prompt="a desert", prompt_encoder=ToyPromptEncoder())
    desert = rollout(env, 0)
    _, info = env.reset(seed=0, prompt="a forest")
    assert info["prompt"] == "a forest"
    forest = rollout(env, 0, prompt="a forest")
    assert np.abs(desert[1:].astype(int) - forest[1:]).max() > 0
    np.testing.assert_array_equal(rollout(env, 0), desert)  # back to the constructor's prompt
    emb, _ = ToyPromptEncoder()(["a forest"])
    np.testing.assert_array_equal(rollout(env, 0, options={"prompt": emb[0].numpy()}), forest)
    assert env.reset(seed=0, prompt=emb[0].numpy())[1]["prompt"] == "<prompt embedding [3, 32]>"


def test_start_frames_of_the_wrong_dtype_name_the_file(ckpt, tmp_path):
    folder = shutil.copytree(ckpt, tmp_path / "world")
    np.save(folder / START_FRAMES_FILE, np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=rf"{START_FRAMES_FILE} is not a set of start frames: .*must be uint8"):
        WaypointWorldEnv(folder)


def test_start_frames_show_the_default_prompt_and_other_prompts_open_from_themselves(prompt_ckpt, tmp_path):
    folder = shutil.copytree(prompt_ckpt, tmp_path / "world")
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text() + "default_prompt: a desert\n")
    start = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    np.save(folder / START_FRAMES_FILE, start)
    env = WaypointWorldEnv(folder, prompt_encoder=ToyPromptEncoder())
    obs, info = env.reset(seed=3)
    assert info["prompt"] == "a desert"
    np.testing.assert_array_equal(obs, start[0])
    obs, info = env.reset(seed=3, prompt="a forest")  # not what the start frame shows: generated from the prompt
    assert info == {"frame_index": 1, "prompt": "a forest"}
    np.testing.assert_array_equal(env.reset(seed=3, prompt="a forest")[0], obs)
    # the same as the engine's first frame from an empty history, no keys held, noise from np_random
    engine, world = env.engine, env.world
    engine.reset()
    engine.set_prompt_embedding(*[t[0] for t in ToyPromptEncoder()(["a forest"])])
    noise = np.random.default_rng(3).standard_normal(world.latent_shape, dtype=np.float32)
    frames = world.decode(world.dream(None, np.zeros((1, 6), bool), np.zeros((1, 2), np.float32), noise[None]))
    np.testing.assert_array_equal(obs, frames[0])
    assert np.abs(obs.astype(int) - env.reset(seed=3, prompt="a cave")[0]).max() > 0
    seeded, info = env.reset(seed=3, prompt="a forest", seed_frames=start[0])  # seed frames always win
    np.testing.assert_array_equal(seeded, start[0])


def test_text_prompt_without_an_encoder_fails_clearly(prompt_ckpt):
    with pytest.raises(RuntimeError, match="cannot encode text prompts"):
        WaypointWorldEnv(prompt_ckpt, prompt="a desert")
    env = WaypointWorldEnv(prompt_ckpt)
    with pytest.raises(RuntimeError, match="cannot encode text prompts"):
        env.reset(seed=0, prompt="a desert")


def test_prompt_for_an_unconditioned_world_is_ignored_with_a_warning(ckpt, caplog):
    env = WaypointWorldEnv(ckpt, prompt="a desert")
    assert env.reset(seed=0)[1]["prompt"] == "a desert"
    assert "no prompt conditioning" in caplog.text


# -----------------------------------------------------------------------------
# bad input


BAD_ACTIONS = [
    ([1, 0], TypeError, "must be a dict"),
    ({"keys": np.zeros(6)}, ValueError, "exactly the entries"),
    ({"keys": np.zeros(6), "mouse": np.zeros(2), "jump": 1}, ValueError, "exactly the entries"),
    ({"keys": np.zeros(5), "mouse": np.zeros(2)}, ValueError, r"keys'\] must have shape \(6,\)"),
    ({"keys": np.array([0, 2, 0, 0, 0, 0]), "mouse": np.zeros(2)}, ValueError, "only 0 and 1"),
    ({"keys": np.array(["W"] * 6), "mouse": np.zeros(2)}, TypeError, "0/1 numbers"),
    ({"keys": np.zeros(6), "mouse": np.zeros(3)}, ValueError, r"mouse'\] must have shape \(2,\)"),
    ({"keys": np.zeros(6), "mouse": np.array([np.nan, 0.0])}, ValueError, "must be finite"),
    ({"keys": np.zeros(6), "mouse": np.array([0.5 + 9j, 0.0])}, TypeError, "two numbers"),
    ({"keys": np.zeros(6), "mouse": np.array([1.5, 0.0])}, ValueError, r"in \[-1, 1\]"),
]


@pytest.mark.parametrize("action,error,match", BAD_ACTIONS)
def test_bad_actions_are_rejected_and_the_episode_goes_on(env, action, error, match):
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)
    _, _, _, _, info = env.step(noop(env))
    assert info["frame_index"] == 2  # the rejected step left no trace


def test_same_episode_after_a_rejected_step(env):
    clean = rollout(env, 4)
    env.action_space.seed(4)
    obs = [env.reset(seed=4)[0]]
    for _ in range(3):
        with pytest.raises(ValueError):
            env.step({"keys": np.zeros(6), "mouse": np.array([np.inf, 0])})
        obs.append(env.step(env.action_space.sample())[0])
    np.testing.assert_array_equal(np.stack(obs), clean)


@pytest.mark.parametrize(
    "frames,error,match",
    [
        (np.zeros((8, 8, 3), np.float32), TypeError, "must be uint8"),
        (np.zeros((8, 8), np.uint8), TypeError, "HxWx3 image, a sequence"),
        (np.zeros((8, 8, 4), np.uint8), ValueError, "must be HxWx3"),
        ([], ValueError, "seed_frames is empty"),
        (["frame.png"], TypeError, "numpy uint8 image"),
        ("frame.png", TypeError, "seed_frames must be"),
    ],
)
def test_bad_seed_frames(env, frames, error, match):
    with pytest.raises(error, match=match):
        env.reset(seed=0, seed_frames=frames)
    assert env.reset(seed=0)[1]["frame_index"] == 1


def test_bad_prompts_and_options(env, prompt_ckpt):
    with pytest.raises(TypeError, match="prompt must be a str, an embedding"):
        env.reset(prompt=42)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"promt": "typo"})
    with pytest.raises(ValueError, match="both as a keyword and in options"):
        env.reset(prompt="a", options={"prompt": "b"})
    with pytest.raises(ValueError, match="a seed must be a non-negative int or None, got True"):
        env.reset(seed=True)
    penv = WaypointWorldEnv(prompt_ckpt)
    with pytest.raises(ValueError, match=r"shape \[P, 32\]"):
        penv.reset(prompt=np.zeros((3, 16), np.float32))
    with pytest.raises(TypeError, match="floating point"):
        penv.reset(prompt=np.zeros((3, 32), np.int64))
    with pytest.raises(ValueError, match="must be finite; it holds NaN or inf"):
        penv.reset(prompt=np.full((3, 32), np.nan, np.float32))


def test_step_before_reset(ckpt):
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        WaypointWorldEnv(ckpt).step({"keys": np.zeros(6), "mouse": np.zeros(2)})


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(keys=("W", "JUMP")), KeyError, "unknown key name 'JUMP'"),
        (dict(keys=("W", "w")), ValueError, "more than once"),
        (dict(keys="WASD"), TypeError, "sequence of key names"),
        (dict(obs_size=(0, 10)), ValueError, "obs_size"),
        (dict(render_mode="ascii"), ValueError, "render_mode"),
        (dict(mouse_scale=float("nan")), ValueError, "mouse_scale"),
        (dict(max_episode_steps=0), ValueError, "max_episode_steps"),
        (dict(reward_fn="score"), ValueError, "unknown reward_fn"),
        (dict(dtype="int8"), ValueError, "unknown dtype"),
        (dict(n_denoise_steps=9), ValueError, "n_denoise_steps"),
    ],
)
def test_bad_constructor_arguments(ckpt, kwargs, error, match):
    with pytest.raises(error, match=match):
        WaypointWorldEnv(ckpt, **kwargs)


def test_missing_bundled_world_and_latent_only_models(tmp_path, monkeypatch):
    monkeypatch.setattr("waypoint_gym.engine.loading.BUNDLED_WORLD", tmp_path / "no_such_world")
    with pytest.raises(FileNotFoundError, match="bundled default world"):
        WaypointWorldEnv()
    with pytest.raises(FileNotFoundError, match="not found"):
        WaypointWorldEnv(tmp_path / "nothing-here")
    latent_only = tiny_checkpoint(tmp_path / "latent", image_size=None)
    with pytest.raises(ValueError, match="no autoencoder"):
        WaypointWorldEnv(latent_only)


def test_custom_keys_and_fewer_denoising_steps(ckpt):
    env = WaypointWorldEnv(ckpt, keys=["w", "space", "LMB"], n_denoise_steps=1, mouse_scale=10)
    assert env.keys == ("W", "SPACE", "LMB") and env.engine.n_denoise_steps == 1
    env.reset(seed=0)
    env.step({"keys": np.array([1, 1, 1]), "mouse": np.array([0.5, -0.5])})


# -----------------------------------------------------------------------------
# pickling, vectorising, Gymnasium wrappers


def test_pickles_by_constructor_arguments(env):
    copy = pickle.loads(pickle.dumps(env))
    assert copy is not env and copy.engine is not env.engine
    np.testing.assert_array_equal(rollout(copy, 5), rollout(env, 5))


def make_one_thread_env(ckpt):
    import torch

    torch.set_num_threads(1)
    return WaypointWorldEnv(ckpt)


def test_async_vector_env(ckpt):
    envs = gym.vector.AsyncVectorEnv([lambda: make_one_thread_env(ckpt)] * 2)
    try:
        envs.action_space.seed(0)
        obs, _ = envs.reset(seed=3)
        actions = [envs.action_space.sample() for _ in range(2)]
        for a in actions:
            obs, *_ = envs.step(a)
    finally:
        envs.close()
    for i in range(2):
        single = WaypointWorldEnv(ckpt)
        single.reset(seed=3 + i)
        for a in actions:
            expected = single.step({k: v[i] for k, v in a.items()})[0]
        np.testing.assert_array_equal(obs[i], expected)


def test_gymnasium_make_and_standard_wrappers(ckpt):
    env = gym.make("Waypoint-v0", model=ckpt, render_mode="rgb_array", max_episode_steps=3)
    assert isinstance(env.unwrapped, WaypointWorldEnv)
    env = gym.wrappers.ResizeObservation(env, (16, 16))
    env = gym.wrappers.FrameStackObservation(env, 4)
    obs, _ = env.reset(seed=0, options={"prompt": None})
    assert obs.shape == (4, 16, 16, 3)
    for _ in range(3):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
    assert truncated and not terminated  # TimeLimit from gym.make
    env.close()


def test_record_video(ckpt, tmp_path):
    pytest.importorskip("moviepy", reason="RecordVideo writes with moviepy (in the dev extra)")
    env = gym.make("Waypoint-v0", model=ckpt, render_mode="rgb_array", max_episode_steps=4)
    env = gym.wrappers.RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda e: True)
    env.reset(seed=0)
    truncated = False
    while not truncated:
        truncated = env.step(env.action_space.sample())[3]
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0


def test_reward_head_beside_checkpoint_gives_reward_and_termination(tmp_path):
    """A checkpoint that ships `reward_head/` gets its reward and termination from it by default."""
    from waypoint_gym.engine.reward_head import RewardHead, RewardHeadConfig

    folder = tiny_checkpoint(tmp_path / "ckpt")
    torch.manual_seed(0)
    head = RewardHead(RewardHeadConfig(latent_channels=4, latent_size=(8, 8), n_keys=2, keys=["D", "W"],
                                       reward_threshold=0.0, termination_threshold=1.0))
    head.save_pretrained(folder / "reward_head")
    with torch_threads(1):
        env = WaypointWorldEnv(model=folder, keys=("W", "A", "S", "D"), max_episode_steps=5)
        env.reset(seed=0)
        action = {"keys": np.array([1, 0, 0, 1], np.int8), "mouse": np.array([0.2, -0.1], np.float32)}
        prev_latent = env.world.latents[0].clone()
        _, reward, terminated, truncated, _ = env.step(action)
        want_r, want_t = head.predict(prev_latent[None], env.world.latents[0][None], np.array([[1.0, 1.0]]),
                                      np.array([[0.2, -0.1]]))
        assert reward == float(want_r[0]) and terminated == bool(want_t[0]) and not truncated
        # an explicit reward_fn still overrides the head's reward
        env2 = WaypointWorldEnv(model=folder, reward_fn="zero")
        env2.reset(seed=0)
        assert env2.step(env2.action_space.sample())[1] == 0.0


def test_reward_head_termination_ends_the_episode(tmp_path):
    from waypoint_gym.engine.reward_head import RewardHead, RewardHeadConfig

    folder = tiny_checkpoint(tmp_path / "ckpt")
    config = RewardHeadConfig(latent_channels=4, latent_size=(8, 8), n_keys=1, keys=["W"], reward_threshold=1.0,
                              termination_threshold=0.0)
    RewardHead(config).save_pretrained(folder / "reward_head")
    with torch_threads(1):
        env = WaypointWorldEnv(model=folder, max_episode_steps=1)
        env.reset(seed=0)
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert (reward, terminated, truncated) == (0.0, True, False)


def test_start_fn_draws_each_episode_start(ckpt):
    """ArenaStarts as start_fn: every reset opens a new real-game map whose first frame seeds the dream;
    a seed makes the draw reproducible, and seed frames given to reset take precedence."""
    from waypoint_gym.worlds import ArenaEnv, ArenaStarts

    starts = ArenaStarts(["a mossy stone dungeon", "a snowy ice cave at night"], size=32)
    env = WaypointWorldEnv(model=ckpt, start_fn=starts)
    arena = ArenaEnv(size=32)
    seen = set()
    for seed in (0, 1, 2):
        obs, _ = env.reset(seed=seed)
        real, _ = arena.reset(seed=starts.last_seed, options={"prompt": starts.last_prompt})
        np.testing.assert_array_equal(obs, real)
        seen.add(starts.last_seed)
    assert len(seen) == 3
    first = env.reset(seed=5)[0]
    np.testing.assert_array_equal(env.reset(seed=5)[0], first)
    given = np.full((32, 32, 3), 7, np.uint8)
    np.testing.assert_array_equal(env.reset(seed=5, seed_frames=given)[0], given)


def test_bad_start_fn(ckpt):
    with pytest.raises(TypeError, match="start_fn must be a callable"):
        WaypointWorldEnv(model=ckpt, start_fn="arena")
    env = WaypointWorldEnv(model=ckpt, start_fn=lambda rng: {"seed": 3})
    with pytest.raises(ValueError, match="start_fn must return a dict with 'prompt' and/or 'seed_frames'"):
        env.reset(seed=0)
    env = WaypointWorldEnv(model=ckpt, start_fn=lambda rng: {"seed_frames": np.zeros((4, 4), np.uint8)})
    with pytest.raises(TypeError, match="seed_frames must be a uint8 HxWx3 image"):
        env.reset(seed=0)
