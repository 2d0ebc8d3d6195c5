"""Reading collections back: concatenated chunks, clips for training, latents encoded once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from waypoint_gym.engine.autoencoder import Autoencoder
from waypoint_gym.training.autoencoder import autoencoder_config
from waypoint_gym.training.collect import collect_arena
from waypoint_gym.training.data import encode_dataset, load_chunks, load_latents, read_meta

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
