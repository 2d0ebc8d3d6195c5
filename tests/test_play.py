"""Playing by hand: window events become the right actions, sessions record, every kind of world opens."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from waypoint_gym.cli import main as cli_main
from waypoint_gym.play import ARROW_SPEED, Controls, Recorder, make_world, play

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


class ScriptedWindow:
    """Stands in for the OpenCV window: hands out key codes from a script, keeps what was shown."""

    script: list[int] = []

    def __init__(self, title, on_mouse):
        self.on_mouse, self.codes, self.shown = on_mouse, list(self.script), []
        ScriptedWindow.last = self

    def show(self, image):
        self.shown.append(image)

    def wait_key(self, ms):
        if len(self.shown) == 3:
            self.on_mouse(0.5, 0.5)
        return self.codes.pop(0) if self.codes else -1

    def close(self):
        self.closed = True


def test_play_session_steps_changes_prompt_restarts_and_records(tmp_path, monkeypatch):
    """A whole session in the real game: walk, open the prompt box and switch captions, restart, quit."""
    typed = [ord(c) for c in "a snowy ice cave at night"]
    ScriptedWindow.script = [ord("w"), -1, ord("d"), 13, *typed, 8, ord("t"), 13, ord("w"), ord("r"), -1, 27]
    summary = play("real", record=tmp_path / "s.mp4", fps=1000, window=ScriptedWindow)
    window = ScriptedWindow.last
    assert window.closed and summary["steps"] == 5  # w, -1, d before the box; w, -1 after it (r restarts)
    assert window.shown[0].shape == (64 * 8, 64 * 8, 3)
    steps = np.load(tmp_path / "s.npz")
    assert steps["prompts"].tolist() == ["a mossy stone dungeon"] * 3 + ["a snowy ice cave at night"] * 2
    assert steps["keys"][0].tolist() == [1, 0, 0, 0, 0, 0] and steps["keys"][2][3] == 1
    mean_before, mean_after = steps["frames"][2].mean(axis=(0, 1)), steps["frames"][3].mean(axis=(0, 1))
    assert np.abs(mean_before - mean_after).max() > 20  # the new caption changed the look


def test_play_stops_at_max_steps_in_a_dream(ckpt):
    ScriptedWindow.script = []
    summary = play(str(ckpt), max_steps=3, fps=1000, window=ScriptedWindow)
    assert summary["steps"] == 3 and len(ScriptedWindow.last.shown) == 3
