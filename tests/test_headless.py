"""What a new user on a machine without a display, or with the default process start method, runs into."""

from __future__ import annotations

import logging
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import waypoint_gym  # noqa: F401  (registers the ids)
from waypoint_gym.engine import WorldEngine
from waypoint_gym.envs import WaypointVectorEnv, WaypointWorldEnv
from waypoint_gym.play import play
from waypoint_gym.worlds import ArenaEnv

ASYNC = """
import gymnasium as gym
import waypoint_gym
for name in ("Waypoint-v0", "WaypointArena-v0"):
    venv = gym.make_vec(name, num_envs=2, vectorization_mode="async")  # the default context: fork on Linux
    obs, _ = venv.reset(seed=0)
    obs, *_ = venv.step(venv.action_space.sample())
    venv.close()
    print(name, obs.shape)
"""


def test_async_vector_envs_with_the_default_start_method():
    """Forked workers used to hang in torch after the parent had built an env; a hang fails by the timeout."""
    done = subprocess.run([sys.executable, "-c", ASYNC], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Waypoint-v0", "(2,", "64,", "64,", "3)", "WaypointArena-v0", "(2,", "64,", "64,",
                                   "3)"]


@pytest.fixture
def headless(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("headless")
def test_human_rendering_without_a_display_is_refused_clearly(ckpt):
    for make in (lambda: WaypointWorldEnv(ckpt, render_mode="human"), lambda: ArenaEnv(render_mode="human"),
                 lambda: WaypointVectorEnv(2, ckpt, render_mode="human")):
        with pytest.raises(RuntimeError, match=r"no display .*render_mode='rgb_array'.*xvfb-run"):
            make()
    with pytest.raises(RuntimeError, match="waypoint-gym play opens a window"):
        play("real", max_steps=1)


@pytest.mark.usefixtures("headless")
def test_check_env_with_its_render_check_passes_headless():
    for name in ("WaypointArena-v0", "Waypoint-v0"):
        env = gym.make(name)
        assert env.unwrapped.metadata["render_modes"] == ["rgb_array"]
        check_env(env.unwrapped)  # renders every mode this machine can show
        env.close()


def test_importing_the_package_stays_light():
    done = subprocess.run([sys.executable, "-c", "import sys, waypoint_gym, waypoint_gym.envs; "
                           "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_a_grey_seed_frame_is_refused_with_its_shape(ckpt):
    env = WaypointWorldEnv(ckpt)
    with pytest.raises(TypeError, match=r"got ndarray of shape \(32, 32\) \(a grey image\?"):
        env.reset(options={"seed_frames": np.zeros((32, 32), np.uint8)})


def test_captions_the_world_never_saw_warn_once(caplog):
    engine = WorldEngine(None, seed=0)  # the bundled world: a caption encoder over the arena's grammar
    with caplog.at_level(logging.WARNING, logger="waypoint_gym.engine.world_engine"):
        engine.set_prompt("a mossy stone dungeon")
        engine.set_prompt("a purple spaceship")
        engine.set_prompt("a green bus")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "purple, spaceship" in warnings[0] and "dungeon" in warnings[0]
