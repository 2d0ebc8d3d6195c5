"""TAEHV 1.5 against the taehv-parity-a fixture (64x128 streaming round trip and the 360p resize path), per-env
streams in a batch, loading through the Autoencoder entry, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import fixture_dir
from waypoint_gym.engine.autoencoder import Autoencoder
from waypoint_gym.engine.taehv import TAEHV, TAEHV_FILE


@pytest.fixture(scope="module")
def taehv_dir():
    return fixture_dir("taehv-parity-a")


@pytest.fixture(scope="module")
def roundtrip(taehv_dir):
    return load_file(taehv_dir / "taehv_roundtrip.safetensors")


def grey_levels_apart(got: torch.Tensor | np.ndarray, want: torch.Tensor) -> int:
    got = torch.as_tensor(got)
    got = got.round() if got.is_floating_point() else got
    want = want.round() if want.is_floating_point() else want
    return int((got.int() - want.int()).abs().max())


def test_streaming_round_trip_parity(taehv_dir, roundtrip):
    r = roundtrip
    ae = Autoencoder.from_pretrained(taehv_dir, auto_aspect_ratio=False)
    assert isinstance(ae, TAEHV) and sum(p.numel() for p in ae.parameters()) == 11_372_012
    ae.reset()
    for k in range(3):
        z = ae.encode(r["frames"][4 * k: 4 * k + 4])
        assert z.shape == (32, 4, 8) and z.dtype == torch.float32
        err = (z - r["expected_latents"][k]).abs().max().item()
        assert err < 1e-4, f"latent {k}: max abs error {err:.2e}"
    for k in range(3):  # the decoder's memory is its own: decoding after all encodes is the protocol
        y = ae.decode_float(r["expected_latents"][k])
        assert y.shape == (4, 64, 128, 3) and y.dtype == torch.float32 and 0 <= y.min() and y.max() <= 255
        assert grey_levels_apart(y, r["expected_decoded_float"][k]) <= 1, f"latent {k}"


def test_360p_resize_path_parity(taehv_dir):
    r = load_file(taehv_dir / "taehv_roundtrip_360p.safetensors")
    ae = TAEHV.from_pretrained(taehv_dir / TAEHV_FILE)  # the file's own path; auto_aspect_ratio defaults on
    for k in range(2):
        z = ae.encode(r["frames"][4 * k: 4 * k + 4].numpy())
        assert z.shape == (32, 16, 32)
        assert (z - r["expected_latents"][k]).abs().max().item() < 1e-4, f"latent {k}"
    for k in range(2):
        frames = ae.decode(r["expected_latents"][k])
        assert isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.shape == (4, 360, 640, 3)
        assert grey_levels_apart(frames, r["expected_decoded_u8"][k]) <= 1, f"latent {k}"


def test_each_env_keeps_its_own_streams(taehv_dir, roundtrip):
    """3 streams: env 0 plays the fixture, env 1 starts it one chunk later (reset mid-way), env 2 plays noise."""
    r = roundtrip
    ae = TAEHV.from_pretrained(taehv_dir, auto_aspect_ratio=False, batch_size=3)
    noise = torch.randint(0, 256, (4, 4, 64, 128, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    lat = {0: [], 1: []}
    for k in range(4):
        if k == 1:
            ae.reset(env_ids=[1])
        chunks = [r["frames"][4 * k: 4 * k + 4] if k < 3 else noise[3], r["frames"][4 * (k - 1): 4 * k]
                  if k else noise[0], noise[k]]
        z = ae.encode(torch.stack(chunks))
        assert z.shape == (3, 32, 4, 8)
        if k < 3:
            lat[0].append(z[0])
        if k >= 1:
            lat[1].append(z[1])
    for e in (0, 1):
        torch.testing.assert_close(torch.stack(lat[e]), r["expected_latents"], atol=1e-4, rtol=0)
    # decoding: env 2 first alone (its warm-up must not touch the others), then envs 0 and 1 one latent apart
    ae.decode(torch.zeros(32, 4, 8), env_ids=2)
    ae.reset(env_ids=[1])
    y0 = ae.decode_float(r["expected_latents"][0:1], env_ids=[0])
    assert grey_levels_apart(y0[0], r["expected_decoded_float"][0]) <= 1
    for k in (1, 2):
        y = ae.decode_float(torch.stack([r["expected_latents"][k], r["expected_latents"][k - 1]]), env_ids=[0, 1])
        assert grey_levels_apart(y[0], r["expected_decoded_float"][k]) <= 1, f"env 0 latent {k}"
        assert grey_levels_apart(y[1], r["expected_decoded_float"][k - 1]) <= 1, f"env 1 latent {k - 1}"


def test_without_memory_the_answer_differs(taehv_dir, roundtrip):
    """The streams matter: resetting before every chunk moves later latents far from the fixture."""
    ae = TAEHV.from_pretrained(taehv_dir, auto_aspect_ratio=False)
    ae.encode(roundtrip["frames"][:4])
    ae.reset()
    z = ae.encode(roundtrip["frames"][4:8])
    assert (z - roundtrip["expected_latents"][1]).abs().max() > 0.1


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    ae = TAEHV(auto_aspect_ratio=False)
    ae.save_pretrained(tmp_path / "ae")
    back = Autoencoder.from_pretrained(tmp_path / "ae", auto_aspect_ratio=False)
    assert all(torch.equal(a, b) for a, b in zip(ae.state_dict().values(), back.state_dict().values()))


def test_tgrow_rows_are_trimmed_to_the_last(tmp_path):
    torch.manual_seed(0)
    state = TAEHV().state_dict()
    extra = torch.randn(512, 256, 1, 1)
    state["decoder.7.conv.weight"] = extra  # a stride-2 TGrow in training: the model keeps the last 256 rows
    torch.save(state, tmp_path / TAEHV_FILE)
    ae = TAEHV.from_pretrained(tmp_path)
    assert torch.equal(ae.decoder[7].conv.weight, extra[256:])


BAD_INPUT = [
    ("3 frames", lambda ae: ae.encode(np.zeros((3, 64, 128, 3), np.uint8)), ValueError,
     r"TAEHV encodes 4 frames per latent: frames must be \[4, H, W, 3\] or \[n, 4, H, W, 3\] uint8, "
     r"got shape \(3, 64, 128, 3\)"),
    ("float frames", lambda ae: ae.encode(np.zeros((4, 64, 128, 3), np.float32)), TypeError,
     "frames must be uint8, got numpy float32"),
    ("size", lambda ae: ae.encode(np.zeros((4, 72, 128, 3), np.uint8)), ValueError,
     "frames are 72x128; without auto_aspect_ratio height and width must be multiples of 16"),
    ("latent channels", lambda ae: ae.decode(torch.zeros(16, 4, 8)), ValueError,
     r"latents must be \[32, h, w\] or \[n, 32, h, w\], got shape \(16, 4, 8\)"),
    ("env ids", lambda ae: ae.reset(env_ids=[3]), IndexError,
     r"env_ids \[3\] out of range for the autoencoder's 1 streams"),
    ("env id count", lambda ae: ae.encode(np.zeros((2, 4, 64, 128, 3), np.uint8), env_ids=[0]), ValueError,
     r"env_ids \[0\] select 1 environments, got 2"),
    ("all envs", lambda ae: ae.encode(np.zeros((2, 4, 64, 128, 3), np.uint8)), ValueError,
     "expected frames of all 1 environments, got 2"),
    ("bool batch size", lambda ae: ae.set_batch_size(True), ValueError,
     "batch_size must be a positive integer, got True"),
]


@pytest.mark.parametrize("call,error,match", [b[1:] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(TAEHV(auto_aspect_ratio=False))


def test_16_9_sizes_only_with_auto_aspect_ratio():
    ae = TAEHV()
    with pytest.raises(ValueError, match="frames are 64x128; with auto_aspect_ratio the autoencoder takes "
                                         "720x1280 or 360x640 frames"):
        ae.encode(np.zeros((4, 64, 128, 3), np.uint8))
    with pytest.raises(ValueError, match="latents are 4x8; with auto_aspect_ratio"):
        ae.decode(torch.zeros(32, 4, 8))


def test_frame_size_is_fixed_within_an_episode():
    ae = TAEHV(auto_aspect_ratio=False)
    ae.encode(np.zeros((4, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="this episode's frames are 64x64 at the autoencoder's working size, got "
                                         "32x32; reset"):
        ae.encode(np.zeros((4, 32, 32, 3), np.uint8))
    ae.reset()
    assert ae.encode(np.zeros((4, 32, 32, 3), np.uint8)).shape == (32, 2, 2)


def test_a_pth_that_is_not_a_state_dict_is_refused(tmp_path):
    from fractions import Fraction  # a pickled Python object, which weights_only=True refuses to build

    torch.save({"encoder.0.weight": Fraction(1, 3)}, tmp_path / TAEHV_FILE)
    with pytest.raises(ValueError, match=f"{TAEHV_FILE} is not a state dict of tensors readable with "
                                         "weights_only=True"):
        Autoencoder.from_pretrained(tmp_path)
    torch.save([torch.zeros(1)], tmp_path / TAEHV_FILE)
    with pytest.raises(ValueError, match=r"is not a state dict of tensors \(a mapping of names to tensors\), got list"):
        Autoencoder.from_pretrained(tmp_path)
    torch.save({"encoder.0.weight": torch.zeros(1)}, tmp_path / TAEHV_FILE)
    with pytest.raises(ValueError, match=r"missing keys \(127\)"):
        Autoencoder.from_pretrained(tmp_path)


def test_hub_repo_id_fetches_the_pth(taehv_dir, monkeypatch):
    """`Overworld-Models/taehv1_5` is fetched with snapshot_download (here a stand-in returning the fixture folder)."""
    calls = []

    def fake_snapshot_download(repo, allow_patterns=None, token=None):
        calls.append((repo, allow_patterns))
        return str(taehv_dir)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    ae = Autoencoder.from_pretrained("Overworld-Models/taehv1_5", auto_aspect_ratio=False)
    assert isinstance(ae, TAEHV) and not ae.auto_aspect_ratio
    assert calls[0][0] == "Overworld-Models/taehv1_5" and TAEHV_FILE in calls[0][1]
