"""Data collection: the chunk format, action/frame alignment, orb collections, determinism, resuming, any env."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import waypoint_gym  # noqa: F401  (registers WaypointArena-v0)
from waypoint_gym.training.collect import ExplorationPolicy, collect_arena, collect_env
from waypoint_gym.worlds import ArenaBatch, all_captions

SMALL = dict(n_segments=6, segment_len=10, n_envs=3, chunk_segments=4, seed=3, progress=False)


def read(out_dir) -> dict[str, np.ndarray]:
    chunks = [np.load(p) for p in sorted(out_dir.glob("chunk_*.npz"))]
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0].files}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("arena")
    meta = collect_arena(out, **SMALL)
    return out, meta, read(out)


def test_chunk_format(small):
    out, meta, d = small
    assert sorted(p.name for p in out.glob("chunk_*")) == ["chunk_00000.npz", "chunk_00001.npz"]
    s, length, k = 6, 10, 6
    assert d["frames"].shape == (s, length, 64, 64, 3) and d["frames"].dtype == np.uint8
    assert d["keys"].shape == (s, length, k) and d["keys"].dtype == np.uint8
    assert d["mouse"].shape == (s, length, 2) and d["mouse"].dtype == np.float32
    assert d["reward"].shape == (s, length) and d["reward"].dtype == np.float32
    assert d["terminated"].shape == (s, length) and d["terminated"].dtype == bool
    assert d["length"].dtype == np.int32 and (d["length"] == length).all()
    assert d["seed"].dtype == np.int64 and len(set(d["seed"].tolist())) == s
    assert d["prompt"].dtype.kind == "U" and set(d["prompt"]) <= set(all_captions())
    assert np.abs(d["mouse"]).max() <= 1 and set(np.unique(d["keys"])) <= {0, 1}
    saved = json.loads((out / "meta.json").read_text())
    assert saved == meta and meta["complete"] and meta["n_segments"] == s and meta["n_frames"] == s * length
    assert meta["keys"] == ["W", "A", "S", "D", "SPACE", "SHIFT"] and meta["size"] == [64, 64]


def test_row_t_holds_the_action_that_produced_frame_t(small):
    _, _, d = small
    assert (d["keys"][:, 0] == 0).all() and (d["mouse"][:, 0] == 0).all() and (d["reward"][:, 0] == 0).all()
    # Replaying the recorded actions in a fresh world of the same seed and prompt gives the same frames.
    world = ArenaBatch(1)
    for i in (0, 4):
        frame, _ = world.reset(seed=[int(d["seed"][i])], prompt=[str(d["prompt"][i])])
        np.testing.assert_array_equal(frame[0], d["frames"][i, 0])
        for t in range(1, d["frames"].shape[1]):
            frame, reward, *_ = world.step(d["keys"][i, t][None], d["mouse"][i, t][None])
            np.testing.assert_array_equal(frame[0], d["frames"][i, t])
            assert reward[0] == d["reward"][i, t]


def test_same_seed_same_data_and_resume(small, tmp_path):
    out, _, d = small
    again = tmp_path / "again"
    collect_arena(again, **SMALL)
    (again / "chunk_00001.npz").unlink()  # a stopped run: the next call writes only the missing chunk
    collect_arena(again, **SMALL)
    d2 = read(again)
    for name in d:
        np.testing.assert_array_equal(d[name], d2[name], err_msg=name)
    with pytest.raises(ValueError, match="segment_len"):
        collect_arena(again, **{**SMALL, "segment_len": 12})
    other = tmp_path / "other"
    collect_arena(other, **{**SMALL, "seed": 4})
    assert not np.array_equal(read(other)["frames"], d["frames"])


def test_worker_processes_record_the_same_collection(small, tmp_path):
    out, meta, d = small
    parallel = collect_arena(tmp_path / "parallel", **SMALL, workers=2)
    for name, array in read(tmp_path / "parallel").items():
        np.testing.assert_array_equal(array, d[name], err_msg=name)
    assert {k: v for k, v in parallel.items() if k != "seconds"} == {k: v for k, v in meta.items() if k != "seconds"}
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        collect_arena(tmp_path / "none", **SMALL, workers=0)


def test_seekers_collect_orbs(tmp_path):
    meta = collect_arena(tmp_path / "seek", n_segments=16, segment_len=48, n_envs=16, seek_prob=1.0, progress=False)
    d = read(tmp_path / "seek")
    assert meta["reward_events"] >= 8 and meta["reward_events"] == (d["reward"] > 0).sum()
    assert meta["segments_with_reward"] >= 6


def test_ended_episodes_are_cut_and_padded(tmp_path):
    meta = collect_arena(tmp_path / "one", n_segments=16, segment_len=48, n_envs=16, num_orbs=1, seek_prob=1.0,
                         progress=False)
    d = read(tmp_path / "one")
    ended = np.flatnonzero(d["length"] < 48)
    assert len(ended) >= 1 and len(ended) == meta["terminations"] == meta["reward_events"]
    for i in ended:
        n = d["length"][i]
        assert d["terminated"][i, n - 1] and d["reward"][i, n - 1] == 1 and not d["terminated"][i, n:].any()
        assert (d["frames"][i, n:] == d["frames"][i, n - 1]).all()
        assert (d["keys"][i, n:] == 0).all() and (d["mouse"][i, n:] == 0).all() and (d["reward"][i, n:] == 0).all()


def test_exploration_policy_holds_keys_and_moves_the_mouse_smoothly():
    policy = ExplorationPolicy(64, seed=0, seek_prob=0.0)
    keys, mouse = zip(*(policy.act() for _ in range(200)))
    keys, mouse = np.stack(keys, 1), np.stack(mouse, 1)  # [N, T, K], [N, T, 2]
    assert keys.dtype == np.uint8 and mouse.dtype == np.float32 and np.abs(mouse).max() <= 1
    pressed = keys.mean((0, 1))
    assert pressed[0] > 0.4 and pressed[0] > 2 * pressed[2]  # W held far more often than S
    switches = (np.diff(keys.astype(int), axis=1) != 0).mean()
    assert switches < 0.25  # keys persist: a uniform random policy switches half the time
    assert np.abs(np.diff(mouse[..., 1], axis=1)).mean() < 0.2 * np.abs(mouse[..., 1]).mean() + 0.1


def test_seeker_turns_toward_the_bearing():
    policy = ExplorationPolicy(2, seed=0, seek_prob=1.0)
    _, mouse = policy.act({"waypoint_bearing": np.array([0.5, -0.5])})
    assert mouse[0, 0] > 0.5 and mouse[1, 0] < -0.5


def test_idle_spells_leave_the_controls_alone_for_a_few_frames():
    policy = ExplorationPolicy(64, seed=0, seek_prob=0.5, idle_prob=0.05)
    keys, mouse = zip(*(policy.act({"waypoint_bearing": np.zeros(64)}) for _ in range(300)))
    keys, mouse = np.stack(keys, 1), np.stack(mouse, 1)  # [N, T, K], [N, T, 2]
    idle = (keys.sum(-1) == 0) & (np.abs(mouse).sum(-1) == 0)  # [N, T]
    # a spell starts on 5% of the frames that are not idle and lasts 3 frames on average (geometric)
    assert 0.08 < idle.mean() < 0.2
    starts = (idle[:, 1:] & ~idle[:, :-1]).sum()
    assert 2.0 < idle[:, 1:].sum() / starts < 4.5  # whole spells, not single frames
    assert idle[policy.seeking].mean() > 0.05  # seekers pause too
    busy = ExplorationPolicy(64, seed=0, seek_prob=0.0)
    keys, mouse = zip(*(busy.act() for _ in range(100)))
    assert ((np.stack(keys).sum(-1) == 0) & (np.abs(np.stack(mouse)).sum(-1) == 0)).mean() == 0  # off by default
    with pytest.raises(ValueError, match="idle_prob must lie in"):
        ExplorationPolicy(2, idle_prob=1.5)


def test_key_probs_set_how_often_each_key_is_pressed_and_are_kept(tmp_path):
    keys = ExplorationPolicy(256, seed=0, seek_prob=0.0, key_probs={"s": 0.6, "W": 0.2})
    pressed = np.stack([keys.act()[0] for _ in range(200)], 1).mean((0, 1))  # [K] share of frames pressed
    assert abs(pressed[2] - 0.6) < 0.05 and abs(pressed[0] - 0.2) < 0.05  # S, W as asked
    assert abs(pressed[1] - 0.15) < 0.05  # A keeps its default
    meta = collect_arena(tmp_path / "back", n_segments=2, segment_len=6, n_envs=2, progress=False,
                         policy={"key_probs": {"S": 0.6}})
    assert meta["policy"] == {"key_probs": {"S": 0.6}}
    with pytest.raises(ValueError, match=r"key_probs names keys the policy does not press: \['Q'\]"):
        ExplorationPolicy(2, key_probs={"Q": 0.5})
    with pytest.raises(ValueError, match="key_probs must lie in"):
        ExplorationPolicy(2, key_probs={"S": 1.5})


def test_collect_env_matches_the_batched_path(tmp_path):
    captions = ["a snowy ice cave at night", "a sunny desert canyon at noon"]
    common = dict(n_segments=2, segment_len=6, seed=1, captions=captions, progress=False)
    meta = collect_env(lambda: gym.make("WaypointArena-v0"), tmp_path / "env", **common)
    collect_arena(tmp_path / "batch", n_envs=1, **common)
    generic, batched = read(tmp_path / "env"), read(tmp_path / "batch")
    assert meta["source"] == "WaypointArena-v0" and meta["keys"] == ["W", "A", "S", "D", "SPACE", "SHIFT"]
    for name in batched:
        np.testing.assert_array_equal(generic[name], batched[name], err_msg=name)


def lag_one_correlation(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:, 1:].ravel(), x[:, :-1].ravel())[0, 1])


def test_policy_settings_make_jumpier_play_and_are_kept(tmp_path):
    jumpy = dict(hold_mean=2.5, mouse_theta=0.8, mouse_sigma=0.7, turn_prob=0.05)
    common = dict(n_segments=32, segment_len=24, n_envs=16, seek_prob=0.0, progress=False)
    collect_arena(tmp_path / "smooth", **common)
    meta = collect_arena(tmp_path / "jumpy", policy=jumpy, **common)
    assert meta["policy"] == jumpy and "policy" not in json.loads((tmp_path / "smooth" / "meta.json").read_text())
    smooth, rough = read(tmp_path / "smooth"), read(tmp_path / "jumpy")
    # The last frame's controls tell less about this frame's: that is what makes a world model read them.
    assert lag_one_correlation(rough["mouse"][..., 0]) < lag_one_correlation(smooth["mouse"][..., 0]) - 0.2
    assert lag_one_correlation(rough["keys"][..., 0]) < lag_one_correlation(smooth["keys"][..., 0]) - 0.1
    with pytest.raises(ValueError, match="policy"):  # resuming with other settings
        collect_arena(tmp_path / "jumpy", policy={**jumpy, "hold_mean": 3.0}, **common)
    with pytest.raises(ValueError, match=r"unknown policy settings \['mouse_speed'\]"):
        collect_arena(tmp_path / "bad", policy={"mouse_speed": 1.0}, **common)
    with pytest.raises(ValueError, match="mouse_theta in"):
        ExplorationPolicy(2, mouse_theta=0.0)
