"""Playing by hand: window events become the right actions, sessions record, every kind of world opens."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from waypoint_gym.cli import main as cli_main
from waypoint_gym.play import ARROW_SPEED, Controls, Recorder, make_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KEYS = ("W", "A", "S", "D", "SPACE", "SHIFT")


def test_key_presses_hold_for_a_while_and_capitals_sprint():
    c = Controls(KEYS, hold=0.25)
    c.press(ord("w"), now=0.0)
    c.press(ord(" "), now=0.1)
    assert c.action(0.2)["keys"].tolist() == [1, 0, 0, 0, 1, 0]
    assert c.action(0.3)["keys"].tolist() == [0, 0, 0, 0, 1, 0]  # W released (no repeat event since 0.0)
    c.press(ord("D"), now=1.0)  # Shift + d
    assert c.action(1.1)["keys"].tolist() == [0, 0, 0, 1, 0, 1]
    c.press(ord("x"), now=1.2)  # not a key of the world: ignored
    assert c.action(2.0)["keys"].sum() == 0


def test_mouse_motion_and_arrows_become_mouse_velocity():
    c = Controls(KEYS, mouse_gain=8.0)
    c.move(0.5, 0.5)
    assert c.action(0.0)["mouse"].tolist() == [0.0, 0.0]  # the first position only sets the origin
    c.move(0.55, 0.45)
    np.testing.assert_allclose(c.action(0.1)["mouse"], [0.4, -0.4], atol=1e-6)
    assert c.action(0.2)["mouse"].tolist() == [0.0, 0.0]  # no motion since
    c.move(1.0, 0.45)
    assert c.action(0.3)["mouse"].tolist() == [1.0, 0.0]  # clipped to the action space
    c.press(65363, now=0.4)  # right arrow (GTK)
    c.press(2490368, now=0.4)  # up arrow (Windows)
    np.testing.assert_allclose(c.action(0.5)["mouse"], [ARROW_SPEED, -ARROW_SPEED])


def test_recorder_writes_video_and_steps(tmp_path):
    rec = Recorder(tmp_path / "session.mp4", fps=10)
    for t in range(5):
        frame = np.full((64, 64, 3), 40 * t, np.uint8)
        rec.add(frame, {"keys": np.array([1, 0, 0, 0, 0, 0], np.int8), "mouse": np.array([0.1, 0], np.float32)},
                0.5 * t, "a mossy stone dungeon")
    path = rec.close()
    video = cv2.VideoCapture(str(path))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    steps = np.load(path.with_suffix(".npz"))
    assert steps["frames"].shape == (5, 64, 64, 3) and steps["keys"].shape == (5, 6)
    assert steps["rewards"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert steps["prompts"][0] == "a mossy stone dungeon"


def test_every_kind_of_world_opens(ckpt):
    for world, size in (("real", 64), ("dream", 64), (str(ckpt), 32)):
        env = make_world(world, None)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (size, size, 3)
        assert env.unwrapped.keys[:4] == ("W", "A", "S", "D")
        env.close()


def test_play_command_is_wired():
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["play", "--help"])
    assert exit_info.value.code == 0
