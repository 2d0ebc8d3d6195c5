"""This project's extensions of the Waypoint format for the worlds it trains (docs/engine.md#extensions).

Each is a config field that published checkpoints lack; off, the model is the published architecture. On,
the engine, its speed paths, the envs and export handle it like any checkpoint.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from conftest import fixture_dir, speed_paths
from waypoint_gym.engine import Speedups, WaypointConfig, WorldEngine, random_checkpoint
from waypoint_gym.engine.config import EXTENSIONS, WAYPOINT_15_FIELDS
from waypoint_gym.engine.model import WaypointModel

TINY = dict(d_model=64, n_heads=2, n_kv_heads=1, n_layers=2, mlp_ratio=2, channels=4, height=2, width=2,
            patch=(2, 2), tokens_per_frame=4, n_frames=16, local_window=4, global_window=4,
            global_pinned_dilation=2, global_attn_period=2, n_buttons=256, prompt_embedding_dim=32,
            prompt_conditioning_period=1, ctrl_conditioning_period=1, scheduler_sigmas=[1.0, 0.5, 0.0])
EXTENDED = {"prediction": "x0", "attn_logit_scale": True, "ctrl_fusion": "gated", "last_frame_warp": True}


def test_published_configs_keep_their_keys_and_default_to_the_published_architecture(parity_dir):
    cfg = WaypointConfig.from_yaml(parity_dir / "config.yaml")
    assert all(getattr(cfg, name) == default for name, default in EXTENSIONS.items())
    assert not set(EXTENSIONS) & set(cfg.to_dict()), "a published config gains no extension keys on saving"
    file_keys = set(yaml.safe_load((parity_dir / "config.yaml").read_text()))
    assert not (set(WAYPOINT_15_FIELDS) - file_keys) & set(cfg.to_dict()), "nor Waypoint-1.5 keys it lacked"
    v15 = WaypointConfig.from_yaml(fixture_dir("waypoint15-parity-a") / "config.yaml")
    assert WaypointConfig.from_dict(v15.to_dict()) == v15 and set(WAYPOINT_15_FIELDS) <= set(v15.to_dict())
    on = WaypointConfig(**{**TINY, **EXTENDED})
    assert WaypointConfig.from_dict(on.to_dict()) == on
    with pytest.raises(ValueError, match=r"prediction must be one of \('velocity', 'x0'\), got 'eps'"):
        WaypointConfig(**{**TINY, "prediction": "eps"})
    with pytest.raises(ValueError, match="last_frame_warp needs prediction: x0"):
        WaypointConfig(**{**TINY, "last_frame_warp": True})


def test_an_x0_head_gives_the_velocity_of_its_clean_frame():
    torch.manual_seed(0)
    velocity = WaypointModel(WaypointConfig(**TINY)).eval()
    x0_model = WaypointModel(WaypointConfig(**{**TINY, "prediction": "x0"})).eval()
    x0_model.load_state_dict(velocity.state_dict())  # the same weights: the head's output is read as x0
    x = torch.randn(3, 4, 4, 4)
    sigma = torch.tensor([1.0, 0.5, 0.25])
    t = torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        head = velocity(x, sigma, t)
        v = x0_model(x, sigma, t)
    torch.testing.assert_close(v, (x - head) / sigma[:, None, None, None])


def test_the_logit_scale_sharpens_attention_and_is_a_checkpoint_tensor():
    torch.manual_seed(0)
    model = WaypointModel(WaypointConfig(**{**TINY, "attn_logit_scale": True})).eval()
    assert model.state_dict()["transformer.blocks.0.attn.log_logit_scale"].shape == (2,)
    x, sigma, t = torch.randn(1, 4, 4, 4), torch.ones(1), torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        before = model(x, sigma, t)
        model.transformer.blocks[1].attn.log_logit_scale.fill_(1.5)
        after = model(x, sigma, t)
    assert not torch.allclose(before, after)
    with pytest.raises(RuntimeError, match="log_logit_scale"):
        WaypointModel(WaypointConfig(**TINY)).load_state_dict(model.state_dict())


def test_gated_fusion_scales_the_content_features_by_the_control():
    torch.manual_seed(0)
    cfg = WaypointConfig(**{**TINY, "ctrl_fusion": "gated"})
    fusion = WaypointModel(cfg).transformer.blocks[0].ctrl_mlpfusion
    x, c = torch.randn(2, 4, 64), torch.randn(2, 1, 64)
    w = fusion.mlp.fc1.weight
    rms = lambda t: t / t.pow(2).mean(-1, keepdim=True).sqrt()
    want = fusion.mlp.fc2(torch.nn.functional.silu(rms(x) @ w[:, :64].T) * (1 + rms(c) @ w[:, 64:].T))
    torch.testing.assert_close(fusion(x, c), want, atol=1e-5, rtol=1e-5)
    assert fusion(x, torch.zeros_like(c)).allclose(fusion.mlp.fc2(torch.nn.functional.silu(rms(x) @ w[:, :64].T)),
                                                    atol=1e-6), "no control: the content path alone"
    with pytest.raises(ValueError, match="ctrl_fusion must be 'concat' or 'gated', got 'sum'"):
        WaypointConfig(**{**TINY, "ctrl_fusion": "sum"})


def test_the_last_frame_warp_moves_the_last_frame_by_the_predicted_flow():
    from waypoint_gym.engine.model import previous_frames, warp

    frames = torch.randn(2, 3, 4, 8, 8)
    shift = torch.zeros(2, 3, 2, 8, 8)
    shift[:, :, 0] = 2.0  # every pixel reads the one 2 to its right: the view turns right
    torch.testing.assert_close(warp(frames, shift)[..., :-2], frames[..., 2:])
    torch.testing.assert_close(warp(frames, torch.zeros_like(shift)), frames)
    assert previous_frames(frames)[:, 0].eq(0).all() and previous_frames(frames)[:, 1:].equal(frames[:, :-1])

    torch.manual_seed(0)
    model = WaypointModel(WaypointConfig(**{**TINY, "prediction": "x0", "last_frame_warp": True})).eval()
    assert model.warp_flow.weight.eq(0).all(), "starts as the last frame as it is, plus the head"
    x, last = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4)
    sigma, t = torch.ones(1), torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        base = x - model(x, sigma, t, last_frame=torch.zeros_like(last))  # the head alone (sigma 1: x0 = x - v)
        torch.testing.assert_close(x - model(x, sigma, t, last_frame=last), base + last)
        model.warp_flow.bias.zero_().view(2, 4)[0] = -1.0  # every pixel reads the one to its left
        moved = x - model(x, sigma, t, last_frame=last)
    torch.testing.assert_close((moved - base)[..., 1:], last[..., :-1])
    with pytest.raises(ValueError, match="this world warps each frame's last frame .* pass last_frame"):
        model(x, sigma, t)


def test_the_engine_warps_the_frame_it_stored_last_and_forgets_it_on_reset(extended_ckpt, one_torch_thread):
    eng = WorldEngine(extended_ckpt, batch_size=2, speedups=Speedups.plain())
    seed = torch.randn(2, 4, 4, 4)
    eng.append_latent(seed)
    torch.testing.assert_close(eng.last_latent, seed)
    frame = eng.gen_latent(noise=torch.randn(2, 4, 4, 4))
    torch.testing.assert_close(eng.last_latent, frame)
    eng.reset(env_ids=[1])
    assert eng.last_latent[1].eq(0).all() and eng.last_latent[0].equal(frame[0])
    noise = torch.randn(1, 4, 4, 4)
    eng.reset()
    first = eng.gen_latent(noise=noise, env_ids=[0])
    eng.reset()
    eng.append_latent(seed)
    eng.reset()
    assert eng.gen_latent(noise=noise, env_ids=[0]).equal(first), "a reset env starts from no last frame"


@pytest.fixture(scope="module")
def extended_ckpt(tmp_path_factory):
    folder = random_checkpoint(tmp_path_factory.mktemp("ext"), WaypointConfig(**{**TINY, **EXTENDED}),
                               image_size=(16, 16))
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    g = torch.Generator().manual_seed(0)
    for name in state:
        if name.endswith("log_logit_scale"):  # random_checkpoint leaves them at 0 (a scale of 1)
            state[name] = torch.randn(state[name].shape, generator=g)
    save_file(state, folder / "model.safetensors")
    return folder


def rollout(engine: WorldEngine, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    engine.reset()
    engine.append_latent(torch.randn(engine.batch_size, 4, 4, 4, generator=g))
    ctrl = torch.zeros(engine.batch_size, 259)
    out = []
    for t in range(n):
        ctrl[:, 0] = (t % 3 - 1) * 0.5
        out.append(engine.gen_latent(ctrl, noise=torch.randn(engine.batch_size, 4, 4, 4, generator=g)))
    return torch.stack(out)


PLAIN = Speedups.plain()
PATHS = {**speed_paths(), "compile": dataclasses.replace(Speedups(compile=False), compile=True)}


@pytest.mark.parametrize("name", list(PATHS))
def test_speed_paths_match_the_plain_path_on_an_extended_checkpoint(name, extended_ckpt, one_torch_thread):
    want = rollout(WorldEngine(extended_ckpt, batch_size=2, speedups=PLAIN))
    got = rollout(WorldEngine(extended_ckpt, batch_size=2, speedups=PATHS[name]))
    assert torch.isfinite(want).all() and want.abs().max() < 1e3
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_an_extended_world_runs_as_an_env_and_exports(extended_ckpt, tmp_path, one_torch_thread):
    from waypoint_gym.engine.prompt import CaptionEncoder
    from waypoint_gym.engine.world_engine import load_model
    from waypoint_gym.training.export import export_checkpoint, load_teacher

    env = gym.make("Waypoint-v0", model=str(extended_ckpt))
    obs, _ = env.reset(seed=0, options={"seed_frames": np.zeros((16, 16, 3), np.uint8)})
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (16, 16, 3)
    _, model = load_model(extended_ckpt)
    out = export_checkpoint(tmp_path / "world", model, extended_ckpt / "autoencoder",
                            CaptionEncoder.for_captions(["a red room"], 32))
    again, _ = load_teacher(out)
    assert again.cfg.prediction == "x0" and again.cfg.attn_logit_scale and again.cfg.last_frame_warp
    for name, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[name].float(), value.half().float()), name  # float16 on disk
