"""WorldEngine's public API: shapes in and out, env selection, prompts, images, and bad input."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from waypoint_gym.engine import CtrlInput, WaypointConfig, WorldEngine, random_checkpoint

TINY = dict(
    d_model=64, n_heads=2, n_kv_heads=1, n_layers=2, mlp_ratio=2, channels=4, height=4, width=4, patch=(2, 2),
    tokens_per_frame=16, n_frames=32, local_window=3, global_window=4, global_pinned_dilation=2,
    global_attn_period=2, n_buttons=16, prompt_conditioning="cross_attention", prompt_embedding_dim=32,
    prompt_conditioning_period=1, ctrl_conditioning_period=1,
)


@pytest.fixture(scope="module")
def image_ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("img") / "ckpt", WaypointConfig(**TINY), image_size=(32, 32))


@pytest.fixture(scope="module")
def latent_ckpt(tmp_path_factory):
    cfg = WaypointConfig(**{**TINY, "prompt_conditioning": None})
    return random_checkpoint(tmp_path_factory.mktemp("lat") / "ckpt", cfg)


def snapshot(eng: WorldEngine) -> dict[str, torch.Tensor]:
    state = {name: b.clone() for name, b in eng.cache.named_buffers()}
    state["prompt_emb"], state["prompt_rows"] = eng.prompt_emb.clone(), eng.prompt_rows.clone()
    return state


def assert_unchanged(eng: WorldEngine, before: dict[str, torch.Tensor]) -> None:
    after = snapshot(eng)
    assert after.keys() == before.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), f"{k} changed after a rejected call"


def test_shapes_in_and_out(image_ckpt):
    eng = WorldEngine(image_ckpt, batch_size=3, seed=0)
    C, H, W = eng.latent_shape
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 24, 3), dtype=np.uint8)  # any size is resized
    eng.append_frame(frames)
    eng.append_frame(frames[1], env_ids=1)
    imgs = eng.gen_frame()
    assert imgs.shape == (3, 32, 32, 3) and imgs.dtype == np.uint8
    assert eng.gen_frame(env_ids=2).shape == (32, 32, 3)  # an int selects one env: unbatched
    assert eng.gen_frame(env_ids=[0, 2]).shape == (2, 32, 32, 3)
    z = eng.gen_frame(return_img=False, env_ids=[1])
    assert z.shape == (1, C, H, W) and z.dtype == torch.float32
    np.testing.assert_array_equal(eng.frame_index(), [3, 4, 4])
    eng.reset(env_ids=[1])
    np.testing.assert_array_equal(eng.frame_index(), [3, 0, 4])
    eng.reset()
    np.testing.assert_array_equal(eng.frame_index(), [0, 0, 0])


def test_batch_one_is_unbatched(latent_ckpt):
    eng = WorldEngine(latent_ckpt, seed=0)
    z = eng.gen_latent()
    assert z.shape == eng.latent_shape
    eng.append_latent(z)
    assert eng.frame_index().tolist() == [2]


def test_a_one_step_prediction_is_not_stored(latent_ckpt):
    real = torch.randn(2, 2, *WorldEngine(latent_ckpt).latent_shape)  # two frames of two envs
    noise = torch.randn(2, 2, *real.shape[2:])
    forced, plain, stored = (WorldEngine(latent_ckpt, batch_size=2) for _ in range(3))
    for eng in (forced, plain, stored):
        eng.append_latent(real[0])
    guess = forced.gen_latent(CtrlInput(button={3}), noise=noise[0], store=False)
    np.testing.assert_array_equal(forced.frame_index(), [1, 1])
    assert torch.equal(guess, stored.gen_latent(CtrlInput(button={3}), noise=noise[0]))
    np.testing.assert_array_equal(stored.frame_index(), [2, 2])
    # teacher forcing: the cache then holds the real frames only, as if the prediction had never been made
    for eng in (forced, plain):
        eng.append_latent(real[1], CtrlInput(button={3}))
    assert torch.equal(forced.gen_latent(noise=noise[1]), plain.gen_latent(noise=noise[1]))


def test_seeded_generation_is_reproducible(latent_ckpt):
    a = WorldEngine(latent_ckpt, seed=7).gen_latent(CtrlInput(button={3}))
    b = WorldEngine(latent_ckpt, seed=7).gen_latent(CtrlInput(button={3}))
    c = WorldEngine(latent_ckpt, seed=8).gen_latent(CtrlInput(button={3}))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_controls_change_the_frame(latent_ckpt):
    eng = WorldEngine(latent_ckpt, batch_size=2)
    noise = torch.randn(eng.latent_shape).expand(2, -1, -1, -1)
    z = eng.gen_latent([CtrlInput(button={1}), CtrlInput(mouse=(0.5, -0.2))], noise=noise)
    assert (z[0] - z[1]).abs().max() > 1e-3


def test_prompt_embedding_per_env(image_ckpt):
    eng = WorldEngine(image_ckpt, batch_size=2, seed=0)
    emb = torch.randn(2, 5, 32)
    pad = torch.tensor([[False] * 5, [False, False, True, True, True]])
    eng.set_prompt_embedding(emb, pad)
    assert torch.equal(eng.prompt_emb[1, 2:], torch.zeros(3, 32)), "pad rows are zeroed"
    noise = torch.randn(eng.latent_shape).expand(2, -1, -1, -1)
    z = eng.gen_latent(noise=noise)
    assert (z[0] - z[1]).abs().max() > 1e-3, "different prompts give different frames"


def test_prompt_text_without_encoder_package_is_a_clear_error(image_ckpt, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers":
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    eng = WorldEngine(image_ckpt)
    with pytest.raises(ImportError, match=r"needs the `prompt` extra"):
        eng.set_prompt("a mossy stone dungeon")


def test_prompt_ignored_with_warning_without_prompt_conditioning(latent_ckpt, caplog):
    eng = WorldEngine(latent_ckpt)
    with caplog.at_level(logging.WARNING):
        eng.set_prompt("a sunny desert canyon at noon")
    assert "no prompt conditioning" in caplog.text


def test_image_methods_need_an_autoencoder(latent_ckpt):
    eng = WorldEngine(latent_ckpt)
    with pytest.raises(RuntimeError, match="has no ae_uri: it works in latent space only"):
        eng.gen_frame()
    with pytest.raises(RuntimeError, match="has no ae_uri"):
        eng.append_frame(np.zeros((8, 8, 3), np.uint8))
    assert eng.frame_index().tolist() == [0]


BAD_CALLS = [
    ("latent shape", lambda e: e.append_latent(torch.zeros(4, 8, 9)), ValueError, r"latent must be \[4, 8, 8\]"),
    ("latent dtype", lambda e: e.append_latent(torch.zeros(2, 4, 8, 8, dtype=torch.long)), TypeError,
     "latent must be a floating-point array"),
    ("latent NaN", lambda e: e.append_latent(torch.full((2, 4, 8, 8), float("nan"))), ValueError, "NaN or inf"),
    ("noise count", lambda e: e.gen_latent(noise=torch.zeros(3, 4, 8, 8)), ValueError, "noise must be"),
    ("keycode range", lambda e: e.gen_latent(CtrlInput(button={16})), ValueError, r"keycodes \[16\] outside \[0, 16\)"),
    ("keycode type", lambda e: e.gen_latent(CtrlInput(button={"W"})), ValueError, "keycodes"),
    ("mouse NaN", lambda e: e.gen_latent(CtrlInput(mouse=(float("nan"), 0.0))), ValueError, "mouse must be finite"),
    ("mouse inf", lambda e: e.gen_latent(CtrlInput(mouse=(0.0, float("inf")))), ValueError, "mouse must be finite"),
    ("mouse shape", lambda e: e.gen_latent(CtrlInput(mouse=(1.0,))), ValueError, "mouse must be two numbers"),
    ("scroll", lambda e: e.gen_latent(CtrlInput(scroll_wheel=float("nan"))), ValueError, "scroll_wheel"),
    ("scroll bool", lambda e: e.gen_latent(CtrlInput(scroll_wheel=True)), ValueError, "scroll_wheel"),
    ("ctrl vector button", lambda e: e.gen_latent(torch.full((2, 19), 7.0)), ValueError, "buttons of 0 or 1"),
    ("generator type", lambda e: e.gen_latent(generator=np.random.default_rng(0)), TypeError, "torch.Generator"),
    ("prompt text type", lambda e: e.encode_prompt(123), TypeError, "a prompt must be a str, got int"),
    ("ctrl count", lambda e: e.gen_latent([CtrlInput()] * 3), ValueError, "list of 2"),
    ("ctrl type", lambda e: e.gen_latent({"W"}), TypeError, "controls must be CtrlInput"),
    ("env id range", lambda e: e.gen_latent(env_ids=[0, 2]), IndexError, "out of range for batch_size 2"),
    ("env id negative", lambda e: e.reset(env_ids=-1), IndexError, "out of range"),
    ("env id dupes", lambda e: e.gen_latent(env_ids=[1, 1]), ValueError, "duplicates"),
    ("env ids empty", lambda e: e.gen_latent(env_ids=[]), ValueError, "non-empty"),
    ("frame dtype", lambda e: e.append_frame(np.zeros((2, 32, 32, 3), np.float32)), TypeError, "uint8"),
    ("frame shape", lambda e: e.append_frame(np.zeros((2, 32, 32), np.uint8)), ValueError, "HxWx3"),
    ("frame count", lambda e: e.append_frame(np.zeros((3, 32, 32, 3), np.uint8)), ValueError, "2xHxWx3"),
    ("prompt dim", lambda e: e.set_prompt_embedding(torch.zeros(5, 31)), ValueError, r"\[P, 32\]"),
    ("prompt NaN", lambda e: e.set_prompt_embedding(torch.full((5, 32), float("nan"))), ValueError, "must be finite"),
    ("pad mask dtype", lambda e: e.set_prompt_embedding(torch.zeros(5, 32), torch.zeros(5)), TypeError, "bool"),
    ("pad mask shape", lambda e: e.set_prompt_embedding(torch.zeros(5, 32), torch.zeros(4, dtype=torch.bool)),
     ValueError, "pad_mask"),
    ("prompt type", lambda e: e.set_prompt(3), TypeError, "prompt must be a str"),
    ("prompt count", lambda e: e.set_prompt(["a", "b", "c"]), TypeError, "list of 2 str"),
]


@pytest.mark.parametrize("call,error,match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_rejected_and_state_is_kept(image_ckpt, call, error, match):
    eng = WorldEngine(image_ckpt, batch_size=2, seed=0)
    eng.set_prompt_embedding(torch.randn(2, 3, 32))
    eng.gen_latent()
    before = snapshot(eng)
    with pytest.raises(error, match=match):
        call(eng)
    assert_unchanged(eng, before)
    eng.gen_latent()  # and the engine goes on working
    assert eng.frame_index().tolist() == [2, 2]


def test_reset_forgets_a_non_finite_past(image_ckpt):
    """Masked cache slots still enter attention with weight 0; a reset zeroes them, so 0 * NaN cannot reach
    the next episode."""
    eng = WorldEngine(image_ckpt, batch_size=2, seed=0)
    eng.set_prompt_embedding(torch.randn(2, 3, 32))
    eng.gen_latent()
    for name, buf in eng.cache.named_buffers():
        if name[0] in "kv" and name[1:].isdigit():
            buf[1] = float("nan")  # env 1's past turned non-finite
    eng.reset(env_ids=[1])
    eng.gen_latent()
    assert torch.isfinite(eng.gen_latent()).all()


def test_an_autoencoder_of_other_latent_channels_is_refused(image_ckpt, tmp_path):
    other = random_checkpoint(tmp_path / "c8", WaypointConfig(**{**TINY, "channels": 8}), image_size=(32, 32))
    ckpt = shutil.copytree(image_ckpt, tmp_path / "ckpt")
    shutil.rmtree(ckpt / "autoencoder")
    shutil.copytree(other / "autoencoder", ckpt / "autoencoder")
    with pytest.raises(ValueError, match="autoencoder of 8 latent channels, but the model's latents have channels=4"):
        WorldEngine(ckpt)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(batch_size=True), ValueError, "batch_size must be a positive integer"),
    (dict(dtype="float32"), TypeError, "dtype must be a torch.dtype"),
    (dict(seed="abc"), TypeError, "seed must be an int or None"),
    (dict(n_denoise_steps=True), ValueError, "n_denoise_steps must be an integer"),
    (dict(prompt_guidance=True), ValueError, "prompt_guidance must be a finite number"),
])
def test_bad_constructor_arguments(latent_ckpt, kwargs, error, match):
    with pytest.raises(error, match=match):
        WorldEngine(latent_ckpt, **kwargs)


def test_preset_builds_random_weights_without_files():
    eng = WorldEngine("preset:waypoint-cpu-small", batch_size=2)
    assert eng.folder is None and eng.config.d_model == 256
    z = eng.gen_latent()
    assert z.shape == (2, *eng.latent_shape) and torch.isfinite(z).all()


def test_prompt_guidance_pulls_away_from_the_null_prompt(image_ckpt):
    torch.manual_seed(0)
    emb, noise = torch.randn(1, 5, 32), torch.randn(4, 8, 8)

    def one_step(guidance: float, prompt: torch.Tensor) -> torch.Tensor:
        # the first frame: guidance nulls the prompt of the frame being made, not of the frames in the cache
        eng = WorldEngine(image_ckpt, n_denoise_steps=1, prompt_guidance=guidance, seed=0)
        eng.set_prompt_embedding(prompt)
        return eng.gen_latent(CtrlInput(button={3}), noise=noise)

    null = WorldEngine(image_ckpt).model.prompt_cfg.null_emb.detach()  # [1, 1, 32]
    plain, unprompted = one_step(1.0, emb), one_step(1.0, null)
    assert (plain - unprompted).abs().max() > 1e-3
    torch.testing.assert_close(one_step(0.0, emb), unprompted, atol=1e-5, rtol=0)
    # One Euler step is linear in the velocity: w = 2 lands as far beyond the prompted frame as the null one is short
    torch.testing.assert_close(one_step(2.0, emb), 2 * plain - unprompted, atol=1e-5, rtol=0)


def test_prompt_guidance_default_comes_from_the_checkpoint(tmp_path):
    cfg = WaypointConfig(**TINY, extra={"prompt_guidance": 2.5})
    ckpt = random_checkpoint(tmp_path / "guided", cfg, image_size=(32, 32))
    assert WorldEngine(ckpt).prompt_guidance == 2.5
    assert WorldEngine(ckpt, prompt_guidance=1.0).prompt_guidance == 1.0
    with pytest.raises(ValueError, match="prompt_guidance must be a finite number >= 0, got nan"):
        WorldEngine(ckpt, prompt_guidance=float("nan"))
