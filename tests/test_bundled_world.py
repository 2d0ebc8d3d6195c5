"""The bundled default world: `gymnasium.make("Waypoint-v0")` with no arguments runs a trained world on CPU."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

import waypoint_gym  # noqa: F401  (registers Waypoint-v0)

ASSET = Path(waypoint_gym.__file__).parent / "assets" / "default_world"


def test_bundle_is_small_and_complete():
    files = [p for p in ASSET.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 100 * 2**20  # the cap on the bundle (issue 30)
    names = {p.relative_to(ASSET).parts[0] for p in files}
    assert names >= {"config.yaml", "model.safetensors", "autoencoder", "prompt_encoder", "reward_head",
                     "start_frames.npy"}


def test_waypoint_v0_defaults_to_the_bundled_world(one_torch_thread):
    env = gym.make("Waypoint-v0")
    world = env.unwrapped.world
    assert world.engine.folder == ASSET and world.reward_head is not None
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and info["prompt"] == "a mossy stone dungeon"
    first = np.load(ASSET / "start_frames.npy")[-1]
    assert np.abs(obs.astype(int) - first).mean() < 40, "episodes start from the shipped start frame"
    obs2, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs2.shape == (64, 64, 3) and reward in (0.0, 1.0)
    obs, _ = env.reset(seed=0, options={"prompt": "a sunny desert canyon at noon"})
    check_env(env.unwrapped, skip_render_check=True)
