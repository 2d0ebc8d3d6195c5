"""The reward and termination head: learns a separable task, picks thresholds, saves and loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from waypoint_gym.engine import WaypointConfig, WorldEngine, random_checkpoint
from waypoint_gym.engine.autoencoder import Autoencoder
from waypoint_gym.engine.controls import CtrlInput, resolve_keys
from waypoint_gym.engine.reward_head import RewardHead, RewardHeadConfig
from waypoint_gym.training.autoencoder import autoencoder_config
from waypoint_gym.training.collect import collect_arena
from waypoint_gym.training.data import encode_dataset
from waypoint_gym.training.reward_head import (
    best_threshold,
    one_step_latents,
    open_loop_latents,
    train_reward_head,
)

S, L, C, H, W, K = 60, 8, 4, 8, 8, 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Random latents where a reward lights a corner of channel 1 and a termination fills channel 2."""
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((S, L, C, H, W)).astype(np.float16)
    reward = np.zeros((S, L), np.float32)
    terminated = np.zeros((S, L), bool)
    reward[:, 1:] = rng.random((S, L - 1)) < 0.1
    terminated[:, 1:] = rng.random((S, L - 1)) < 0.05
    latents[..., 1, :2, :2] += 4 * reward[..., None, None]
    latents[..., 2, :, :] += 3 * terminated[..., None, None]
    data = {
        "keys": rng.integers(0, 2, (S, L, K)).astype(np.uint8),
        "mouse": rng.uniform(-1, 1, (S, L, 2)).astype(np.float32),
        "reward": reward, "terminated": terminated, "length": np.full(S, L, np.int32),
    }
    data["keys"][:, 0], data["mouse"][:, 0] = 0, 0
    return latents, data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("reward_head")
    latents, data = synthetic()
    report = train_reward_head(latents, data, out, steps=150, batch_size=64, lr=3e-3, hidden=32, val_fraction=0.25,
                               progress=False)
    return out, report


def test_learns_a_separable_task(trained):
    out, report = trained
    for name in ("reward", "termination"):
        assert report[name]["positives"] > 0
        assert report[name]["precision"] >= 0.9 and report[name]["recall"] >= 0.9, report[name]
    assert json.loads((out / "report.json").read_text())["reward"] == report["reward"]
    assert report["n_train"] == 45 * (L - 1) and report["n_val"] == 15 * (L - 1)

    # Held-out data of the same kind, through predict.
    latents, data = synthetic(seed=1)
    head = RewardHead.from_pretrained(out)
    prev, cur = latents[:, :-1].reshape(-1, C, H, W), latents[:, 1:].reshape(-1, C, H, W)
    keys, mouse = data["keys"][:, 1:].reshape(-1, K), data["mouse"][:, 1:].reshape(-1, 2)
    reward, terminated = head.predict(prev, cur, keys, mouse)
    assert reward.dtype == torch.float32 and terminated.dtype == torch.bool and reward.shape == (S * (L - 1),)
    assert set(reward.unique().tolist()) <= {0.0, 1.0}
    assert (reward.numpy() == data["reward"][:, 1:].reshape(-1)).mean() > 0.97
    assert (terminated.numpy() == data["terminated"][:, 1:].reshape(-1)).mean() > 0.97


def test_save_load_round_trip(trained, tmp_path):
    out, report = trained
    head = RewardHead.from_pretrained(out)
    assert head.config.reward_threshold == pytest.approx(report["reward"]["threshold"])
    assert head.config.latent_size == (H, W) and len(head.config.latent_mean) == C
    head.save_pretrained(tmp_path / "copy")
    again = RewardHead.from_pretrained(tmp_path / "copy")
    assert again.config == head.config
    x = torch.randn(5, C, H, W), torch.randn(5, C, H, W), torch.zeros(5, K), torch.zeros(5, 2)
    torch.testing.assert_close(again(*x), head(*x))
    (tmp_path / "copy" / "reward_head.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="reward_head.safetensors"):
        RewardHead.from_pretrained(tmp_path / "copy")


def test_untrained_head_shapes_and_defaults(tmp_path):
    head = RewardHead(RewardHeadConfig(latent_channels=C, latent_size=(H, W), n_keys=K)).eval()
    assert head(torch.zeros(3, C, H, W), torch.zeros(3, C, H, W), torch.zeros(3, K), torch.zeros(3, 2)).shape == (3, 2)
    reward, terminated = head.predict(np.zeros((3, C, H, W), np.float32), np.zeros((3, C, H, W), np.float32),
                                      np.zeros((3, K), np.uint8), np.zeros((3, 2), np.float32))
    assert reward.shape == terminated.shape == (3,)


def test_trains_from_a_collection_and_cached_latents(tmp_path):
    collect_arena(tmp_path / "data", n_segments=4, segment_len=6, n_envs=4, seek_prob=1.0, progress=False)
    torch.manual_seed(0)
    ae = Autoencoder(autoencoder_config(latent_channels=4, ch_0=8, ch_max=16)).eval()
    latents = encode_dataset(ae, tmp_path / "data", tmp_path / "latents.npy", progress=False)
    report = train_reward_head(latents, tmp_path / "data", tmp_path / "head", steps=3, batch_size=8, hidden=8,
                               progress=False)
    assert report["n_train"] + report["n_val"] == 4 * 5
    head = RewardHead.from_pretrained(tmp_path / "head")
    assert head.config.keys == ["W", "A", "S", "D", "SPACE", "SHIFT"] and head.config.latent_size == (8, 8)
    first = train_reward_head(latents, tmp_path / "data", tmp_path / "head3", steps=3, batch_size=8, hidden=8,
                              max_segments=3, progress=False)
    assert first["n_train"] + first["n_val"] == 3 * 5
    with pytest.raises(ValueError, match="max_segments must be at least 1, got 0"):
        train_reward_head(latents, tmp_path / "data", tmp_path / "head0", steps=1, max_segments=0, progress=False)


def test_reads_the_dreamed_latents_as_the_step(tmp_path):
    """With `dreamed`, frame t comes from it: the reward's mark is only there, and the head still finds it."""
    latents, data = synthetic()
    real = np.random.default_rng(2).standard_normal(latents.shape).astype(np.float16)  # no marks at all
    report = train_reward_head(real, data, tmp_path / "head", dreamed=latents.astype(np.float32), steps=150,
                               batch_size=64, lr=3e-3, hidden=32, val_fraction=0.25, progress=False)
    assert report["reward"]["precision"] >= 0.9 and report["reward"]["recall"] >= 0.9, report["reward"]
    with pytest.raises(ValueError, match="dreamed latents"):
        train_reward_head(real, data, tmp_path / "bad", dreamed=latents[:, :4], steps=1, progress=False)


def test_open_loop_dreams_give_both_frames_of_a_step(tmp_path):
    """With `dreamed_steps` the head trains on steps into dreamed frames only and reads frame t - 1 from the
    dreams too: here only the previous dreamed frame carries the reward's mark."""
    latents, data = synthetic()
    real = np.random.default_rng(2).standard_normal(latents.shape).astype(np.float16)  # no marks at all
    dreamed = np.roll(latents.astype(np.float32), -1, axis=1)  # frame t - 1 carries the mark of a reward at t
    steps = np.ones((S, L), bool)
    steps[:, :3] = False  # frames 0-2 as real context
    report = train_reward_head(real, data, tmp_path / "head", dreamed=dreamed, dreamed_by="a world",
                               dreamed_steps=steps, steps=150, batch_size=64, lr=3e-3, hidden=32, val_fraction=0.25,
                               progress=False)
    assert report["n_train"] + report["n_val"] == S * (L - 3) and report["open_loop_latents_of"] == "a world"
    assert report["reward"]["precision"] >= 0.9 and report["reward"]["recall"] >= 0.9, report["reward"]
    one_step = train_reward_head(real, data, tmp_path / "one_step", dreamed=dreamed, steps=150, batch_size=64,
                                 lr=3e-3, hidden=32, val_fraction=0.25, progress=False)
    assert one_step["reward"]["f1"] < 0.5  # the real previous frame and the next dream say nothing of it
    with pytest.raises(ValueError, match="dreamed_steps needs dreamed latents"):
        train_reward_head(real, data, tmp_path / "bad", dreamed_steps=steps, steps=1, progress=False)


def tiny_world(tmp_path):
    cfg = WaypointConfig(d_model=32, n_heads=2, n_kv_heads=1, n_layers=2, mlp_ratio=2, channels=C, height=H // 4,
                         width=W // 4, patch=(4, 4), tokens_per_frame=4, n_frames=16, local_window=3, global_window=4,
                         global_pinned_dilation=2, global_attn_period=2, n_buttons=128, prompt_conditioning=None)
    return random_checkpoint(tmp_path / "world", cfg)


def test_open_loop_latents_dream_on_their_own_outputs(tmp_path):
    ckpt = tiny_world(tmp_path)
    latents, data = synthetic()
    latents, data = latents[:3].astype(np.float32), {k: v[:3] for k, v in data.items() if k != "length"}
    keys = ["W", "A", "S", "D", "SPACE", "SHIFT"]

    def dreams(real):
        return open_loop_latents(WorldEngine(ckpt, batch_size=2, seed=0), real, data, keys, n_context=2, horizon=2,
                                 progress=False)

    out, dreamed = dreams(latents)  # windows: frames 0-1 real, 2-3 dreamed; 4-5 real, 6-7 dreamed
    assert dreamed.tolist() == [[False, False, True, True] * 2] * 3 and out.shape == latents.shape
    np.testing.assert_array_equal(out[~dreamed], latents[~dreamed])  # context frames stay real
    assert np.abs(out[dreamed] - latents[dreamed]).mean() > 0.1
    changed = latents.copy()
    changed[:, 3] += 1.0  # a dreamed frame's real latent: never read
    np.testing.assert_array_equal(dreams(changed)[0], out)
    changed[:, 4] += 1.0  # the second window's context: its dreams change, the first window's do not
    moved = dreams(changed)[0]
    np.testing.assert_array_equal(moved[:, :4], out[:, :4])
    assert not np.allclose(moved[:, 6:], out[:, 6:])
    with pytest.raises(ValueError, match="need n_context >= 1"):
        open_loop_latents(WorldEngine(ckpt, batch_size=2, seed=0), latents, data, keys, n_context=0)


def test_one_step_latents_are_the_worlds_predictions_from_real_frames(tmp_path):
    ckpt = tiny_world(tmp_path)
    latents, data = synthetic()
    latents, data = latents[:3, :4], {k: v[:3, :4] for k, v in data.items() if k != "length"}
    keys = ["W", "A", "S", "D", "SPACE", "SHIFT"]
    out = one_step_latents(WorldEngine(ckpt, batch_size=2, seed=0), latents, data, keys, progress=False)
    assert out.shape == latents.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], latents[:, 0].astype(np.float32))  # the seed frame stays real
    assert np.abs(out[:, 1:] - latents[:, 1:].astype(np.float32)).mean() > 0.1  # the rest are predictions

    # Segment 2 ran alone in the second batch: replay its first prediction by hand.
    eng = WorldEngine(ckpt, batch_size=2, seed=0)
    for _ in range(3):  # the first batch drew noise for 3 frames of 2 envs
        torch.randn((2, *eng.latent_shape), generator=eng.generator)
    eng.append_latent(torch.from_numpy(latents[2:3, 0].astype(np.float32)), env_ids=[0])
    pressed = {int(code) for code, on in zip(resolve_keys(keys, 128)[1], data["keys"][2, 1]) if on}
    ctrl = CtrlInput(button=pressed, mouse=tuple(float(m) for m in data["mouse"][2, 1]))
    torch.testing.assert_close(eng.gen_latent([ctrl], env_ids=[0], store=False)[0], torch.from_numpy(out[2, 1]))


def test_best_threshold():
    probs = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    target = np.array([True, True, False, True, False])
    best = best_threshold(probs, target)
    assert best["f1"] == pytest.approx(max(2 * 1.0 * (2 / 3) / (1 + 2 / 3), 2 * 0.75 * 1.0 / 1.75))
    assert (probs > best["threshold"]).sum() in (2, 4)
    assert best_threshold(probs, np.zeros(5, bool))["precision"] is None
