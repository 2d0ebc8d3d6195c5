"""Reading collections back: concatenated chunks, clips for training, latents encoded once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from waypoint_gym.engine.autoencoder import Autoencoder
from waypoint_gym.training.autoencoder import autoencoder_config
from waypoint_gym.training.collect import collect_arena
from waypoint_gym.training.data import RecordedStarts, encode_dataset, load_chunks, load_latents, read_meta

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("arena")
    collect_arena(out, n_segments=5, segment_len=8, n_envs=3, chunk_segments=2, progress=False)
    # Make segment 4 look like an episode that ended after 5 frames.
    with np.load(out / "chunk_00002.npz") as chunk:
        arrays = dict(chunk)
    arrays["length"][0] = 5
    np.savez_compressed(out / "chunk_00002.npz", **arrays)
    return out


@pytest.fixture(scope="module")
def tiny_ae():
    torch.manual_seed(0)
    return Autoencoder(autoencoder_config(latent_channels=4, ch_0=8, ch_max=16)).eval()


def test_load_chunks_concatenates_in_order(data_dir):
    d = load_chunks(data_dir)
    assert d["frames"].shape == (5, 8, 64, 64, 3) and d["keys"].shape == (5, 8, 6)
    assert d["seed"].tolist() == list(range(5)) and d["length"].tolist() == [8, 8, 8, 8, 5]
    small = load_chunks(data_dir, ["reward", "prompt"])
    assert set(small) == {"reward", "prompt"} and (small["prompt"] == d["prompt"]).all()
    assert read_meta(data_dir)["n_segments"] == 5
    assert load_chunks(data_dir, ["seed", "prompt"], max_segments=3)["seed"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="max_segments must be at least 1"):
        load_chunks(data_dir, max_segments=0)
    with pytest.raises(ValueError, match="unknown fields"):
        load_chunks(data_dir, ["frame"])
    with pytest.raises(FileNotFoundError):
        load_chunks(data_dir / "missing")


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_encode_dataset_caches_the_latents(data_dir, tiny_ae, tmp_path, suffix):
    path = encode_dataset(tiny_ae, data_dir, tmp_path / f"latents{suffix}", batch=7, progress=False)
    latents = load_latents(path)
    assert latents.shape == (5, 8, 4, 8, 8) and latents.dtype == np.float16
    frames = load_chunks(data_dir, ["frames"])["frames"]
    expected = tiny_ae.encode(frames[3]).numpy()  # [8, 4, 8, 8]
    np.testing.assert_allclose(latents[3], expected, atol=2e-3, rtol=2e-3)


def test_recorded_starts_give_consecutive_real_frames_with_their_prompt(data_dir):
    d = load_chunks(data_dir)
    starts = RecordedStarts(data_dir, context_frames=6)
    assert len(starts) == 4  # segment 4 holds only 5 frames
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        start = starts(rng)
        s, end = starts.last_segment, starts.last_frame
        seen.add((s, end))
        assert s != 4 and 5 <= end < 8 and start["prompt"] == d["prompt"][s]
        np.testing.assert_array_equal(start["seed_frames"], d["frames"][s, end - 5: end + 1])
    assert len({s for s, _ in seen}) == 4 and len({e for _, e in seen}) == 3  # every segment, every cut
    assert len(RecordedStarts(data_dir, context_frames=2, max_segments=3)) == 3  # the first chunks only
    only = RecordedStarts(data_dir, prompts=[str(d["prompt"][1])])
    assert {str(d["prompt"][s]) for s in only.segments} == {str(d["prompt"][1])}
    with pytest.raises(ValueError, match="under the prompts"):
        RecordedStarts(data_dir, prompts=["a caption nobody recorded"])
    with pytest.raises(ValueError, match="has 9 frames"):
        RecordedStarts(data_dir, context_frames=9)


def test_dreamed_episodes_from_recorded_starts_are_cut_at_the_horizon(data_dir):
    """Each env draws its own recorded start at every reset, and its episode is truncated after 3 steps."""
    from waypoint_gym.envs import WaypointVectorEnv

    d = load_chunks(data_dir)
    starts = RecordedStarts(data_dir, context_frames=3)
    drawn = []

    def start_fn(rng):
        start = starts(rng)
        drawn.append((starts.last_segment, starts.last_frame))
        return start

    env = WaypointVectorEnv(2, max_episode_steps=3, start_fn=start_fn, reward_fn=lambda *a: 0.0)
    obs, _ = env.reset(seed=0)
    for i, (s, end) in enumerate(drawn):
        np.testing.assert_array_equal(obs[i], d["frames"][s, end])  # the episode opens on its last real frame
    action = {"keys": np.zeros((2, 6), np.int8), "mouse": np.zeros((2, 2), np.float32)}
    for _ in range(3):
        obs, _, terminated, truncated, _ = env.step(action)
    assert truncated.all() and not terminated.any()
    obs, *_ = env.step(action)  # autoreset: a new start for each env
    assert len(drawn) == 4
    for i, (s, end) in enumerate(drawn[2:]):
        np.testing.assert_array_equal(obs[i], d["frames"][s, end])
    env.close()
