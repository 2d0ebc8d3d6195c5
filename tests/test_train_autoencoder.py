"""Autoencoder training: the loss falls, the folder loads as a Waypoint autoencoder, runs resume, reports."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from waypoint_gym.engine.autoencoder import Autoencoder
from waypoint_gym.training.adversarial import (
    PatchDiscriminator,
    balanced_weight,
    discriminator_loss,
    generator_loss,
)
from waypoint_gym.training.autoencoder import STATE_FILE, cosine_lr, moved, random_moves, train_autoencoder
from waypoint_gym.training.collect import collect_arena

TINY = dict(latent_channels=4, ch_0=8, ch_max=16, batch_size=8, lr=3e-3, warmup=2, log_every=1, ckpt_every=10,
            eval_frames=16, progress=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("arena")
    collect_arena(out, n_segments=4, segment_len=6, n_envs=4, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    return out, train_autoencoder(data_dir, out, steps=15, **TINY)


def test_loss_falls_and_report(trained):
    out, report = trained
    losses = [h["loss"] for h in report["history"]]
    assert len(losses) == 15 and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    saved = json.loads((out / "report.json").read_text())
    assert saved["step"] == 15 and saved["complete"] and np.isfinite(saved["val_psnr"])
    assert len(saved["latent_mean"]) == len(saved["latent_std"]) == 4
    assert saved["n_val_frames"] == 6 and saved["n_train_frames"] == 18  # the last of 4 segments is held out
    strip = cv2.imread(str(out / "ae_samples.png"))
    assert strip.shape == (2 * 64 * 2, 8 * 64 * 2, 3)


def test_saved_folder_loads_as_a_waypoint_autoencoder(trained):
    out, _ = trained
    ae = Autoencoder.from_pretrained(out / "autoencoder")
    assert ae.latent_channels == 4 and ae.latent_size == (8, 8) and ae.output_size == (64, 64)
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    assert ae.encode(frames).shape == (2, 4, 8, 8) and ae.decode(ae.encode(frames)).shape == (2, 64, 64, 3)


def test_resume_continues_from_the_saved_step(data_dir, tmp_path):
    tiny = {**TINY, "eval_frames": 4}
    first = train_autoencoder(data_dir, tmp_path / "split", steps=6, stop_at=4, **tiny)
    assert first["step"] == 4 and not first["complete"]
    assert torch.load(tmp_path / "split" / STATE_FILE, weights_only=True)["step"] == 4
    resumed = train_autoencoder(data_dir, tmp_path / "split", steps=6, **tiny)
    assert resumed["complete"] and [h["step"] for h in resumed["history"]] == list(range(1, 7))
    assert resumed["history"][:4] == first["history"]

    # 4 steps, then 2 resumed, end with the same weights as 6 straight through.
    train_autoencoder(data_dir, tmp_path / "straight", steps=6, **tiny)
    a = Autoencoder.from_pretrained(tmp_path / "split" / "autoencoder").state_dict()
    b = Autoencoder.from_pretrained(tmp_path / "straight" / "autoencoder").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

    with pytest.raises(ValueError, match="another architecture"):
        train_autoencoder(data_dir, tmp_path / "split", steps=7, **{**tiny, "ch_0": 16})


def test_a_new_decoder_for_a_frozen_encoder(trained, data_dir, tmp_path):
    out, _ = trained
    report = train_autoencoder(data_dir, tmp_path / "dec", steps=15, encoder=out / "autoencoder", blocks_per_stage=0,
                               **{**TINY, "ch_0": 4, "ch_max": 8, "latent_channels": 16})  # latents: the encoder's
    losses = [h["loss"] for h in report["history"]]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    old = Autoencoder.from_pretrained(out / "autoencoder")
    new = Autoencoder.from_pretrained(tmp_path / "dec" / "autoencoder")
    assert all(torch.equal(a, b) for a, b in zip(old.encoder.state_dict().values(), new.encoder.state_dict().values()))
    assert (new.decoder.config.ch_0, new.decoder.config.ch_max, new.latent_channels) == (4, 8, 4)
    assert new.decoder.config.decoder_blocks_per_stage == [0, 0, 0] and len(new.decoder.blocks[0].blocks) == 0
    assert new.decoder.config.encoder_blocks_per_stage == old.encoder.config.encoder_blocks_per_stage == [1, 1, 1]
    assert new.decode(new.encode(np.zeros((2, 64, 64, 3), np.uint8))).shape == (2, 64, 64, 3)


def test_a_move_shifts_frame_and_latent_alike():
    # 3 image pixels to the right are 0.75 of a latent pixel at a quarter of the size: one grid moves both.
    theta = torch.tensor([[[1.0, 0.0, -2 * 3 / 64], [0.0, 1.0, 0.0]]])
    image = torch.rand(1, 3, 64, 64)
    out, inside = moved(image, theta)
    assert torch.allclose(out[..., 3:], image[..., :-3], atol=1e-5)
    assert inside[0, 0, :, 3:].all() and not inside[0, 0, :, :3].any()
    ramp = torch.arange(16.0).expand(1, 4, 16, 16)  # each latent value is its column
    assert torch.allclose(moved(ramp, theta)[0][..., 1:], ramp[..., 1:] - 0.75, atol=1e-5)

    theta = random_moves(256, shift=0.125, zoom=1.25, generator=torch.Generator().manual_seed(0))
    assert theta[:, :, 2].abs().max() <= 0.25 and theta[:, 0, 1].eq(0).all() and theta[:, 1, 0].eq(0).all()
    scale = theta[:, 0, 0]
    assert torch.equal(scale, theta[:, 1, 1]) and scale.min() >= 0.8 - 1e-6 and scale.max() <= 1.25 + 1e-6


def test_equivariance_term_trains_and_is_reported(data_dir, tmp_path):
    report = train_autoencoder(data_dir, tmp_path / "eq", steps=15, equivariance_weight=1.0,
                               latent_equivariance_weight=0.5, **TINY)
    history = report["history"]
    assert report["hparams"]["latent_equivariance_weight"] == 0.5
    assert np.mean([h["equivariance"] for h in history[-3:]]) < 0.5 * np.mean([h["equivariance"] for h in history[:3]])
    for h in history:  # the loss is the reconstruction's terms plus both parts of the equivariance term
        parts = h["mse"] + 0.1 * h["l1"] + 0.01 * h["latent_reg"] + h["equivariance"] + 0.5 * h["latent_equivariance"]
        assert h["loss"] == pytest.approx(parts, rel=1e-4) and h["latent_equivariance"] > 0
    plain = train_autoencoder(data_dir, tmp_path / "plain", steps=2, **TINY)["history"]
    assert "equivariance" not in plain[0] and "latent_equivariance" not in plain[0]


def test_cosine_lr():
    assert cosine_lr(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert cosine_lr(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert cosine_lr(100, 100, 1.0, 10) == pytest.approx(0.1)


def test_adversarial_fine_tune_of_a_decoder_resumes_exactly(trained, data_dir, tmp_path):
    out, _ = trained
    source = Autoencoder.from_pretrained(out / "autoencoder")
    tune = {**TINY, "eval_frames": 4, "encoder": out / "autoencoder", "init_decoder": True, "adversarial_weight": 0.5,
            "adversarial_start": 2}
    # lr 0: the decoder is the source's own, so init_decoder really loaded it.
    train_autoencoder(data_dir, tmp_path / "still", steps=3, **{**tune, "lr": 0.0})
    still = Autoencoder.from_pretrained(tmp_path / "still" / "autoencoder")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), still.state_dict().values()))

    first = train_autoencoder(data_dir, tmp_path / "split", steps=6, stop_at=4, **tune)
    history = first["history"]
    assert "adversarial" not in history[1] and history[2]["adversarial_scale"] > 0  # on from step 2 (the third)
    assert all(np.isfinite(h["discriminator"]) for h in history)
    assert set(torch.load(tmp_path / "split" / STATE_FILE, weights_only=True)) >= {"disc", "disc_opt"}
    with pytest.raises(ValueError, match="was trained with the adversarial term; resume it the same way"):
        train_autoencoder(data_dir, tmp_path / "split", steps=6, **{**tune, "adversarial_weight": 0.0})
    resumed = train_autoencoder(data_dir, tmp_path / "split", steps=6, **tune)
    train_autoencoder(data_dir, tmp_path / "straight", steps=6, **tune)
    a = Autoencoder.from_pretrained(tmp_path / "split" / "autoencoder").state_dict()
    b = Autoencoder.from_pretrained(tmp_path / "straight" / "autoencoder").state_dict()
    assert resumed["complete"] and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in source.state_dict().items())  # the decoder did move
    assert all(torch.equal(a[k], v) for k, v in source.state_dict().items() if k.startswith("encoder."))


def test_adversarial_and_init_decoder_refuse_bad_settings(trained, data_dir, tmp_path):
    out, _ = trained
    with pytest.raises(ValueError, match="no encoder was given"):
        train_autoencoder(data_dir, tmp_path / "a", steps=1, init_decoder=True, **TINY)
    with pytest.raises(ValueError, match="init_decoder: .*'ch_0': 8.*not the asked.*'ch_0': 4"):
        train_autoencoder(data_dir, tmp_path / "b", steps=1, encoder=out / "autoencoder", init_decoder=True,
                          **{**TINY, "ch_0": 4})
    with pytest.raises(ValueError, match="adversarial_weight and adversarial_start must be >= 0, got -1"):
        train_autoencoder(data_dir, tmp_path / "c", steps=1, adversarial_weight=-1, **TINY)


def test_balanced_weight_and_hinge_losses():
    w = torch.ones(3, requires_grad=True)
    a, b = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0, 1.0, 0.0])
    assert balanced_weight((w * a).sum(), 2 * (w * b).sum(), w).item() == pytest.approx(5 / (2 + 1e-4))
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-3.0, 1.0])
    assert discriminator_loss(real, fake).item() == pytest.approx(0.5 + 1.0)  # relu(1-real), relu(1+fake) means
    assert generator_loss(fake).item() == pytest.approx(1.0)
    assert PatchDiscriminator()(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 14, 14)
