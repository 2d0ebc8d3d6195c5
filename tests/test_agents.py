"""agents/: training and evaluation scripts run end to end; baselines, episode starts and statistics are right."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

from agents import evaluate, train
from agents.common import (
    NAV_MACROS,
    RandomAgent,
    ScriptedAgent,
    episode_starts,
    make_vec_env,
    mean_ci,
    play_dream,
    play_real,
    real_env,
)
from waypoint_gym.worlds.arena import DEFAULT_PROMPT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_real_env_passes_the_sb3_checker():
    env = real_env(["a mossy stone dungeon", "a sunny desert canyon at noon"], max_episode_steps=20)
    check_env(env)
    assert env.action_space.n == len(NAV_MACROS)


def test_make_vec_env_worlds_share_spaces():
    real = make_vec_env("real", 2, seed=0, max_episode_steps=8)
    dream = make_vec_env("dream", 2, seed=0, max_episode_steps=8)
    assert real.observation_space == dream.observation_space
    assert real.action_space == dream.action_space
    obs = dream.reset()
    assert obs.shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="world must be one of"):
        make_vec_env("moon", 2, seed=0)


def test_train_and_evaluate_end_to_end(tmp_path):
    """PPO in the real game with real-game evaluations; A2C in the dream; the saved policy then plays both."""
    out = tmp_path / "ppo_real"
    summary = train.main(["--world", "real", "--steps", "256", "--n-envs", "2", "--max-episode-steps", "16",
                          "--eval-every", "128", "--eval-episodes", "2", "--out", str(out), "--no-progress"])
    assert summary["steps"] >= 256 and (out / "model.zip").is_file() and (out / "tb").is_dir()
    rows = list(csv.DictReader((out / "curve.csv").open()))
    assert [int(r["steps"]) for r in rows][0] == 0 and len(rows) >= 3
    assert json.loads((out / "train.json").read_text())["algo"] == "ppo"

    from waypoint_gym.training import collect_arena

    collect_arena(tmp_path / "play", n_segments=2, segment_len=8, n_envs=2, captions=[DEFAULT_PROMPT], progress=False)
    dream = train.main(["--world", "dream", "--algo", "a2c", "--steps", "32", "--n-envs", "2", "--horizon", "8",
                        "--starts", str(tmp_path / "play"), "--eval-every", "0", "--out", str(tmp_path / "a2c_dream"),
                        "--no-progress"])
    assert dream["world"] == "dream" and dream["horizon"] == 8 and dream["starts"] == str(tmp_path / "play")
    assert dream["steps"] == 32  # one rollout of 16 steps in 2 envs: the bar ends where it says
    with pytest.raises(SystemExit):  # recorded starts are for the dream
        train.main(["--world", "real", "--starts", str(tmp_path / "play"), "--out", str(tmp_path / "x")])

    report = evaluate.main([str(out / "model.zip"), "--episodes", "3", "--max-episode-steps", "6", "--n-envs", "2",
                            "--video-episodes", "2", "--out", str(tmp_path / "eval")])
    assert report["real"]["n"] == report["dream"]["n"] == 3
    assert report["dream_minus_real"] == pytest.approx(report["dream"]["mean"] - report["real"]["mean"])
    video = cv2.VideoCapture(report["video"])
    ok, frame = video.read()
    assert ok and frame.shape == (64 * 4, (64 * 2 + 2) * 4, 3)  # dream | real, upscaled 4x
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 2 * 7  # two episodes of reset frame + 6 steps
    assert cv2.imread(report["strip"]).shape == (2 * 64 * 2, 64 * 2, 3)  # frame 0 only (every 25th of 7)


def test_dream_and_real_start_from_the_same_frame():
    starts = episode_starts(3, prompts=["a mossy stone dungeon", "a snowy ice cave at night"])
    assert starts == episode_starts(3, prompts=["a mossy stone dungeon", "a snowy ice cave at night"])
    assert [s for s, _ in starts] == [1_000_000, 1_000_001, 1_000_002]
    agent = RandomAgent(0)
    _, real = play_real(agent, starts, max_steps=3, record=3)
    _, dream = play_dream(agent, starts, max_steps=3, n_envs=2, record=3)  # a full chunk, then a short one
    assert len(real) == len(dream) == 3
    for r, d in zip(real, dream):
        np.testing.assert_array_equal(r[0], d[0])
        assert len(r) == len(d) == 4


def test_scripted_agent_collects_orbs_and_random_hardly_does():
    starts = episode_starts(8, seed=123)
    scripted, _ = play_real(ScriptedAgent(), starts, max_steps=150)
    random, _ = play_real(RandomAgent(0), starts, max_steps=150)
    assert scripted.mean() >= 1.5 and scripted.mean() > random.mean() + 1.0


def test_mean_ci():
    stats = mean_ci(np.array([1.0, 2.0, 3.0, 4.0]))
    assert stats["mean"] == 2.5 and stats["n"] == 4
    assert stats["ci95"] == pytest.approx(1.96 * np.std([1, 2, 3, 4], ddof=1) / 2)


def test_headline_plot_reads_both_learning_curves(tmp_path):
    from agents.headline import plot_curves

    for name, returns in (("ppo_real", [0.2, 0.9]), ("ppo_dream", [0.2, 0.4])):
        (tmp_path / name).mkdir()
        rows = ["steps,wall_s,train_return,real_return,real_ci95"]
        rows += [f"{s},1.0,nan,{r},0.1" for s, r in zip((0, 1000), returns)]
        (tmp_path / name / "curve.csv").write_text("\n".join(rows))
    plot_curves(tmp_path, tmp_path / "fig" / "curves.png", {"random agent": 0.25, "scripted agent": 3.2},
                {"ppo_real": "real", "ppo_dream": "dream"})
    assert cv2.imread(str(tmp_path / "fig" / "curves.png")).shape[2] == 3


def test_train_rounds_steps_to_whole_rollouts(tmp_path, capsys):
    """PPO collects 128 steps in each env per rollout: --steps 100 with 2 envs runs 256, and says so."""
    summary = train.main(["--world", "real", "--steps", "100", "--n-envs", "2", "--max-episode-steps", "16",
                          "--eval-every", "0", "--out", str(tmp_path / "ppo"), "--no-progress"])
    assert summary["steps"] == 256 and "--steps 100 rounded up to 256" in capsys.readouterr().out
