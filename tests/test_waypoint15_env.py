"""Waypoint-1.5 worlds end to end on the CPU-sized preset (RANDOM weights, TAEHV included): 4 video frames per
action in the engine, the envs' observations, info and seed frames, the vector env, make_vec, the checkers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import waypoint_gym  # noqa: F401  (registers the ids)
from waypoint_gym.engine import CtrlInput, WorldEngine, preset_config, random_checkpoint
from waypoint_gym.envs import DiscreteActions, WaypointVectorEnv, WaypointWorldEnv
from waypoint_gym.envs.registration import ENVS

pytestmark = pytest.mark.usefixtures("one_torch_thread")
H, W = 64, 128  # the CPU preset's video: latent 32x4x8, TAEHV at the frames' own size


@pytest.fixture(scope="module")
def world15(tmp_path_factory):
    """A checkpoint folder of the CPU-sized 1.5 preset with a random TAEHV (taehv1_5.pth) as its ae_uri."""
    return random_checkpoint(tmp_path_factory.mktemp("wp15") / "ckpt", "waypoint-1.5-cpu", image_size=(H, W))


def video(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- the engine


def test_gen_frame_returns_the_4_frames_of_a_latent(world15):
    eng = WorldEngine(world15, batch_size=2, seed=0)
    assert eng.frames_per_latent == 4 and eng.video_size() == (H, W) and eng.latent_shape == (32, 4, 8)
    eng.append_frame(video(4)[None].repeat(2, 0))  # [n, 4, H, W, 3]
    frames = eng.gen_frame(CtrlInput(button={87}))
    assert frames.shape == (2, 4, H, W, 3) and frames.dtype == np.uint8
    assert eng.gen_frame(env_ids=1).shape == (4, H, W, 3)
    assert eng.gen_frame(return_img=False, env_ids=[0]).shape == (1, 32, 4, 8)
    assert eng.frame_index().tolist() == [3, 3], "one latent frame per call, whatever the frames per latent"


def test_one_image_is_appended_as_4_repeated_frames(world15):
    img = video(1)[0]
    noise = torch.randn(32, 4, 8)
    one, four = WorldEngine(world15, seed=0), WorldEngine(world15, seed=0)
    one.append_frame(img)
    four.append_frame(np.repeat(img[None], 4, axis=0))
    assert torch.equal(one.gen_latent(noise=noise), four.gen_latent(noise=noise))


def test_reset_restarts_the_autoencoder_streams_of_the_reset_envs(world15):
    eng = WorldEngine(world15, batch_size=2, seed=0)
    noise = torch.randn(2, 32, 4, 8)
    clip = video(4)

    def episode():
        eng.append_frame(np.stack([clip, clip]))
        return eng.gen_frame(noise=noise)

    first = episode()
    eng.gen_frame(noise=noise)
    eng.reset(env_ids=[1])  # env 1 only: its next episode is the first one again, env 0 goes on
    eng.append_frame(clip, env_ids=1)
    again = eng.gen_frame(noise=noise[1], env_ids=1)
    assert_frames_close(again, first[1])  # one env alone vs in a batch of two: float rounding, one grey level
    eng.reset()
    np.testing.assert_array_equal(episode(), first)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda e: e.append_frame(video(3)), ValueError,
         r"this world encodes 4 video frames per latent frame: frames must be \[4, H, W, 3\] or one image "
         r"\[H, W, 3\] \(repeated 4 times\), got shape \(3, 64, 128, 3\)"),
        (lambda e: e.append_frame(np.zeros((4, 48, 128, 3), np.uint8)), ValueError,
         "frames must be 64x128 for this world's autoencoder, got 48x128"),
        (lambda e: e.set_prompt("a castle"), ValueError,
         r"this Waypoint-1.5 world has no prompt conditioning: it takes no prompt \(leave the prompt None\)"),
        (lambda e: e.append_frame(video(4), ctrl=CtrlInput(button={256})), ValueError, r"keycodes \[256\]"),
    ],
    ids=["3 frames", "frame size", "prompt", "bad control"],
)
def test_bad_input_leaves_the_engine_as_it_was(world15, call, error, match):
    eng = WorldEngine(world15, seed=0)
    eng.append_frame(video(4))
    noise = torch.randn(32, 4, 8)
    with pytest.raises(error, match=match):
        call(eng)
    assert eng.frame_index().tolist() == [1]
    ref = WorldEngine(world15, seed=0)
    ref.append_frame(video(4))
    assert torch.equal(eng.gen_latent(noise=noise), ref.gen_latent(noise=noise)), "the streams did not move"


def test_presets_of_the_published_shapes():
    for name, grid in (("waypoint-1.5-1b", (16, 32)), ("waypoint-1.5-360p", (8, 16))):
        cfg = preset_config(name)
        assert (cfg.height, cfg.width) == grid and cfg.latent_shape == (32, 2 * grid[0], 2 * grid[1])
        assert cfg.rope_time_step == 1 and cfg.latent_fps == 15 and cfg.scheduler_sigmas == [1.0, 0.9, 0.75, 0.3, 0.0]
    eng = WorldEngine("preset:waypoint-1.5-cpu")
    assert eng.folder is None and eng.gen_frame().shape == (4, H, W, 3)


# ---------------------------------------------------------------------------------------------- the envs


def test_registered_ids():
    assert ENVS["Waypoint-1.5-v0"]["model"] == "Overworld/Waypoint-1.5-1B"
    assert ENVS["Waypoint-1.5-360P-v0"]["model"] == "Overworld/Waypoint-1.5-1B-360P"
    for env_id in ("Waypoint-1.5-v0", "Waypoint-1.5-360P-v0"):
        assert env_id in gym.registry


def test_a_step_is_one_action_and_4_video_frames(world15):
    env = WaypointWorldEnv(world15, render_mode="rgb_array")
    assert env.observation_space.shape == (H, W, 3) and env.metadata["render_fps"] == 15
    obs, info = env.reset(seed=0, seed_frames=video(8))
    assert info["frame_index"] == 2 and info["video_frames"].tolist() == [0, 8]
    np.testing.assert_array_equal(obs, video(8)[-1])
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert info["frame_index"] == 3 and info["video_frames"].tolist() == [8, 12]
    clip = env.world.clips[0]
    np.testing.assert_array_equal(obs, clip[-1])
    np.testing.assert_array_equal(env.render(), clip[-1])


def test_frames_per_step_4_observes_the_whole_step(world15):
    last, every = (WaypointWorldEnv(world15, frames_per_step=k) for k in (1, 4))
    assert every.observation_space.shape == (4, H, W, 3)
    o1, _ = last.reset(seed=3)
    o4, _ = every.reset(seed=3)
    assert (o4 == 128).all() and o4.shape == (4, H, W, 3)  # the default start: one grey image, 4 times
    action = last.action_space.sample()
    o1, *_ = last.step(action)
    o4, *_ = every.step(action)
    np.testing.assert_array_equal(o4[-1], o1)
    assert obs_in_space(every, o4)
    with pytest.raises(ValueError, match=r"frames_per_step must be 1 \(the step's last frame\) or 4 \(all its "
                                         r"frames\) for this world, got 2"):
        WaypointWorldEnv(world15, frames_per_step=2)


def obs_in_space(env, obs) -> bool:
    return env.observation_space.contains(obs)


def test_seed_frames_one_image_or_multiples_of_4(world15):
    env = WaypointWorldEnv(world15)
    a, _ = env.reset(seed=0, seed_frames=video(1)[0])
    b, _ = env.reset(seed=0, seed_frames=np.repeat(video(1), 4, axis=0))
    np.testing.assert_array_equal(a, b)
    step_a = env.step(env.action_space.sample())[0]
    with pytest.raises(ValueError, match="this world takes 4 video frames per latent frame: seed_frames must be one "
                                         "image \\(repeated 4 times\\) or a multiple of 4 frames, got 6"):
        env.reset(seed_frames=video(6))
    with pytest.raises(ValueError, match="this Waypoint-1.5 world has no prompt conditioning"):
        env.reset(prompt="a sunny canyon")
    assert step_a.shape == (H, W, 3)


def test_gymnasium_and_sb3_checkers(world15):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(WaypointWorldEnv(world15), skip_render_check=True)
    check_env(WaypointWorldEnv(world15, frames_per_step=4), skip_render_check=True)
    sb3_check_env(DiscreteActions(WaypointWorldEnv(world15, obs_size=40)), warn=False)


def test_vector_env_equals_single_envs_through_autoresets(world15):
    """The batched env against SyncVectorEnv of single envs: same seeds and actions, across next-step autoresets
    and a partial reset (each env's TAEHV streams restart with its episode)."""
    kwargs = dict(model=world15, max_episode_steps=3, frames_per_step=4)
    batched = WaypointVectorEnv(3, **kwargs)
    singles = gym.vector.SyncVectorEnv([lambda: WaypointWorldEnv(**kwargs) for _ in range(3)])
    obs_b, info_b = batched.reset(seed=10)
    obs_s, _ = singles.reset(seed=10)
    assert obs_b.shape == (3, 4, H, W, 3) and info_b["video_frames"].tolist() == [[0, 4]] * 3
    assert_frames_close(obs_b, obs_s)
    batched.action_space.seed(0)
    ended = False
    for t in range(6):
        if t == 1:
            mask = np.array([False, True, False])
            assert_frames_close(batched.reset(options={"reset_mask": mask})[0],
                                singles.reset(options={"reset_mask": mask.copy()})[0])
        actions = batched.action_space.sample()
        obs_b, _, _, trunc_b, info_b = batched.step(actions)
        obs_s, _, _, trunc_s, info_s = singles.step(actions)
        assert_frames_close(obs_b, obs_s)
        np.testing.assert_array_equal(trunc_b, trunc_s)
        np.testing.assert_array_equal(info_b["video_frames"], info_s["video_frames"])
        ended |= bool(trunc_b.any())
    assert ended, "the run crossed episode ends"


def assert_frames_close(a, b):
    """uint8 frames from batched and single passes: float rounding may move a pixel by one level."""
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("mode", ["vector_entry_point", "sync", "async"])
def test_make_vec_every_mode(world15, mode):
    envs = gym.make_vec("Waypoint-v0", num_envs=2, vectorization_mode=mode, model=str(world15))
    try:
        assert envs.single_observation_space.shape == (H, W, 3)
        obs, info = envs.reset(seed=0)
        assert obs.shape == (2, H, W, 3)
        obs, *_ , info = envs.step(envs.action_space.sample())
        assert obs.shape == (2, H, W, 3) and info["video_frames"].tolist() == [[4, 8]] * 2
    finally:
        envs.close()


def test_sb3_adapter_trains_ppo_on_a_15_world(world15):
    from stable_baselines3 import PPO

    from waypoint_gym.envs import SB3VecEnv, VectorDiscreteActions

    venv = SB3VecEnv(VectorDiscreteActions(WaypointVectorEnv(2, world15, obs_size=40, max_episode_steps=4)))
    model = PPO("CnnPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16)
    assert model.num_timesteps >= 16


def test_rollout_and_play_on_a_15_world(world15, tmp_path):
    from waypoint_gym.cli import main
    from waypoint_gym.play import make_world, play

    main(["rollout", str(world15), "--frames", "3", "--batch-size", "2", "--out", str(tmp_path)])
    import json

    report = json.loads((tmp_path / "rollout.json").read_text())
    assert report["frames"] == 3 and all(f["finite"] for f in report["per_frame"])
    assert (tmp_path / "frames.png").is_file()
    env = make_world(str(world15))
    assert env.reset(seed=0)[0].shape == (H, W, 3) and env.unwrapped.metadata["render_fps"] == 15

    class Window:  # stands in for the OpenCV window: no keys pressed
        def __init__(self, title, on_mouse):
            self.shown = []

        def show(self, image):
            self.shown.append(image)

        def wait_key(self, ms):
            return -1

        def close(self):
            pass

    summary = play(str(world15), max_steps=2, fps=1000, window=Window)
    assert summary["steps"] == 2


def test_an_autoencoder_of_the_wrong_kind_is_refused(world15, tmp_path):
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(world15, folder)
    text = (folder / "config.yaml").read_text().replace("taehv_ae: true", "taehv_ae: false")
    (folder / "config.yaml").write_text(text)
    with pytest.raises(ValueError, match="the config says taehv_ae=False and temporal_compression=4, but ae_uri "
                                         "names an autoencoder of 4 frame"):
        WorldEngine(folder)
