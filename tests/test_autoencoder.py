"""The autoencoder against the parity fixture of the Waypoint format, strict loading, saving, bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from waypoint_gym.engine.autoencoder import AE_FILES, Autoencoder, AutoencoderConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("WAYPOINT_FIXTURES", ROOT.parent / "shared" / "fixtures"))
AE_FIXTURE = FIXTURES / "waypoint-ae-parity-a"

needs_fixture = pytest.mark.skipif(
    not (AE_FIXTURE / "ae_roundtrip.safetensors").is_file(),
    reason=f"autoencoder parity fixture not found at {AE_FIXTURE} (set WAYPOINT_FIXTURES)",
)


@pytest.fixture(scope="module")
def ae() -> Autoencoder:
    return Autoencoder.from_pretrained(AE_FIXTURE)


@pytest.fixture(scope="module")
def roundtrip() -> dict[str, torch.Tensor]:
    return load_file(AE_FIXTURE / "ae_roundtrip.safetensors")


def copy_fixture(dst: Path) -> Path:
    """A writable copy of the fixture's four checkpoint files (the originals are read-only)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in AE_FILES:
        shutil.copyfile(AE_FIXTURE / name, dst / name)
    return dst


def tiny_config(**overrides) -> AutoencoderConfig:
    """A 64x64 member of the family: 2 stages, so a 16x16 latent."""
    d = {
        "channels": 3, "ch_0": 8, "ch_max": 16, "encoder_blocks_per_stage": [1, 1],
        "decoder_blocks_per_stage": [1, 2], "latent_channels": 4, "skip_logvar": True,
        "input_size": [64, 64], "output_size": [64, 64],
    }
    return AutoencoderConfig.from_dict({**d, **overrides})


# -----------------------------------------------------------------------------
# parity with the reference


@needs_fixture
def test_encoder_parity(ae, roundtrip):
    z = ae.encode(roundtrip["images"])
    assert z.shape == (2, 4, 32, 32) and z.dtype == torch.float32
    assert (z - roundtrip["expected_latents"]).abs().max().item() < 1e-4


@needs_fixture
def test_decoder_parity(ae, roundtrip):
    images = ae.decode(roundtrip["expected_latents"])
    assert isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape == (2, 360, 640, 3)
    expected = roundtrip["expected_decoded_float"].round().to(torch.int32).numpy()
    assert np.abs(images.astype(np.int32) - expected).max() <= 1
    y = ae.decode_float(roundtrip["expected_latents"])
    assert y.shape == (2, 360, 640, 3) and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 255


@needs_fixture
def test_unbatched_numpy_and_any_size(ae, roundtrip):
    img = roundtrip["images"][1].numpy()
    z = ae.encode(img)
    assert z.shape == (4, 32, 32)
    assert (z - roundtrip["expected_latents"][1]).abs().max().item() < 1e-4
    assert ae.decode(z).shape == (360, 640, 3)
    assert ae.encode(img[:100, :150]).shape == (4, 32, 32)  # the encoder resizes any image to 512x512
    assert ae.latent_channels == 4 and ae.latent_size == (32, 32)


# -----------------------------------------------------------------------------
# strict loading


@needs_fixture
@pytest.mark.parametrize(
    "file, edit, key",
    [
        ("encoder.safetensors", "delete", "blocks.0.down.proj.parametrizations.weight.original0"),
        ("decoder.safetensors", "add", "conv_in.extra.bias"),
        ("decoder.safetensors", "reshape", "conv_out.proj.bias"),
    ],
)
def test_strict_loading(tmp_path, file, edit, key):
    folder = copy_fixture(tmp_path / "ae")
    state = load_file(folder / file)
    if edit == "delete":
        del state[key]
    elif edit == "add":
        state[key] = torch.zeros(3)
    else:
        state[key] = torch.zeros(state[key].numel() + 1)
    save_file(state, folder / file)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        Autoencoder.from_pretrained(folder)


@needs_fixture
def test_missing_file_and_bad_conf(tmp_path):
    folder = copy_fixture(tmp_path / "ae")
    (folder / "decoder.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="decoder.safetensors"):
        Autoencoder.from_pretrained(folder)

    folder = copy_fixture(tmp_path / "ae2")
    (folder / "encoder_conf.yml").write_text("channels: 3\n")
    with pytest.raises(ValueError, match="model"):
        Autoencoder.from_pretrained(folder)

    conf = yaml.safe_load((folder / "decoder_conf.yml").read_text())
    del conf["model"]["latent_channels"]
    (folder / "encoder_conf.yml").write_text(yaml.safe_dump(conf))
    with pytest.raises(ValueError, match="latent_channels"):
        Autoencoder.from_pretrained(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        Autoencoder.from_pretrained(tmp_path / "nope")


def test_invalid_config():
    with pytest.raises(ValueError, match="input_size"):
        tiny_config(input_size=[62, 64])  # two stages downsample by 4
    with pytest.raises(ValueError, match="ch_max"):
        tiny_config(ch_max=64)  # 8 -> 16 -> 32 never reaches 64 in two stages
    with pytest.raises(ValueError, match="channels"):
        tiny_config(channels=1)


# -----------------------------------------------------------------------------
# saving


@needs_fixture
def test_save_pretrained_round_trip(ae, roundtrip, tmp_path):
    ae.save_pretrained(tmp_path / "saved")
    conf = yaml.safe_load((tmp_path / "saved" / "encoder_conf.yml").read_text())
    assert conf["model"]["input_size"] == [512, 512] and conf["model"]["output_size"] == [360, 640]
    again = Autoencoder.from_pretrained(tmp_path / "saved")
    a, b = ae.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert set(load_file(tmp_path / "saved" / "encoder.safetensors")) == set(
        load_file(AE_FIXTURE / "encoder.safetensors")
    )
    assert torch.equal(again.encode(roundtrip["images"][:1]), ae.encode(roundtrip["images"][:1]))


def test_small_autoencoder_round_trip(tmp_path):
    torch.manual_seed(0)
    ae = Autoencoder(tiny_config()).eval()
    assert ae.latent_size == (16, 16) and "conv_out_logvar" not in str(list(ae.encoder.state_dict()))
    assert "blocks.0.up.proj" not in str(list(ae.decoder.state_dict()))  # 16 -> 16: no up projection
    img = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    z = ae.encode(img)
    assert z.shape == (2, 4, 16, 16)
    assert ae.decode(z).shape == (2, 64, 64, 3)
    ae.save_pretrained(tmp_path / "tiny")
    again = Autoencoder.from_pretrained(tmp_path / "tiny")
    assert again.encoder.config == ae.encoder.config and again.decoder.config == ae.decoder.config
    assert torch.equal(again.encode(img), z)
    assert np.array_equal(again.decode(z), ae.decode(z))


# -----------------------------------------------------------------------------
# bad input


@pytest.fixture(scope="module")
def tiny() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(tiny_config()).eval()


@pytest.mark.parametrize(
    "img, error, match",
    [
        (np.zeros((64, 64, 3), np.float32), TypeError, "uint8"),
        (torch.zeros(64, 64, 3), TypeError, "uint8"),
        ([[[0, 0, 0]]], TypeError, "numpy array or torch tensor"),
        (np.zeros((64, 64), np.uint8), ValueError, "2 dims"),
        (np.zeros((1, 1, 64, 64, 3), np.uint8), ValueError, "5 dims"),
        (np.zeros((64, 64, 4), np.uint8), ValueError, "3 \\(RGB\\) channels"),
        (np.zeros((2, 3, 64, 64), np.uint8), ValueError, "3 \\(RGB\\) channels"),  # NCHW is not accepted
    ],
)
def test_bad_images(tiny, img, error, match):
    with pytest.raises(error, match=match):
        tiny.encode(img)


@pytest.mark.parametrize(
    "z, error, match",
    [
        (torch.zeros(2, 5, 16, 16), ValueError, "4 channels"),
        (torch.zeros(4, 8, 8), ValueError, "16x16"),
        (torch.zeros(16, 16), ValueError, "\\[C, h, w\\]"),
        (torch.zeros(1, 2, 4, 16, 16), ValueError, "\\[C, h, w\\]"),
        (torch.zeros(4, 16, 16, dtype=torch.uint8), TypeError, "floating point"),
    ],
)
def test_bad_latents(tiny, z, error, match):
    with pytest.raises(error, match=match):
        tiny.decode(z)


def test_latent_channel_mismatch():
    with pytest.raises(ValueError, match="latent channels"):
        Autoencoder(tiny_config(), tiny_config(latent_channels=8))


@pytest.mark.parametrize("size", [(16, 16), (64, 64), (9, 20)])
def test_same_size_bicubic_is_skipped_exactly(size):
    """The 64x64 worlds resize to the size they already have; skipping that must not change one bit."""
    from waypoint_gym.engine.autoencoder import bicubic

    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    assert bicubic(x, size=size) is x
    assert torch.equal(torch.nn.functional.interpolate(x, size=size, mode="bicubic", align_corners=False), x)
    assert bicubic(x, size=(size[0] * 2, size[1])).shape == (2, 3, size[0] * 2, size[1])
