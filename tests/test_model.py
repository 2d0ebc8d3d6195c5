"""The plain forward pass against the format's parity fixture, and the RoPE tables against the formulas."""

from __future__ import annotations

import math

import torch

from conftest import run_parity_protocol
from waypoint_gym.engine import Speedups, WaypointConfig, WorldEngine
from waypoint_gym.engine.model import apply_rope, rope_tables, sigma_features, spatial_angles


def test_parity_plain_path(parity_dir, parity_rollout):
    eng = WorldEngine(parity_dir, speedups=Speedups.plain())
    got = run_parity_protocol(eng, parity_rollout)
    for t, (x, want) in enumerate(zip(got, parity_rollout["expected_x0"]), start=2):
        err = (x - want).abs().max().item()
        assert err < 1e-4, f"frame {t}: max abs error {err:.2e}"


def test_first_velocities_match_reference(parity_dir, parity_rollout):
    r = parity_rollout
    eng = WorldEngine(parity_dir, speedups=Speedups.plain())
    eng.set_prompt_embedding(r["prompt_emb"], r["prompt_pad_mask"])
    from conftest import fixture_ctrls

    ctrls = fixture_ctrls(r)
    for t in range(2):
        eng.append_latent(r["seed_latents"][t], ctrls[t])
    ctrl_vec = eng._ctrl_vector(ctrls[2], 1)
    x = r["noise"][0][None]
    for i, (s, s_next) in enumerate(zip(eng.sigmas, eng.sigmas[1:])):
        v = eng._forward(x, eng._sigma(i, 1), eng._frame_inputs(ctrl_vec, None))
        assert (v[0] - r["expected_first_velocities"][i]).abs().max() < 1e-4, f"step {i}"
        x = x + (s_next - s) * v


def test_sigma_features_formula():
    s = torch.tensor([0.0, 0.37, 1.0])
    e = sigma_features(s)
    k = torch.arange(256, dtype=torch.float64)
    f = 10000.0 ** (-k / 255)
    arg = s.double()[:, None] * 1000 * f
    want = math.sqrt(2) * torch.cat([torch.sin(arg), torch.cos(arg)], -1)
    assert e.dtype == torch.float32 and e.shape == (3, 512)
    torch.testing.assert_close(e.double(), want, atol=2e-4, rtol=0)


def rope_reference(cfg: WaypointConfig, t: int, y: int, x: int) -> torch.Tensor:
    """Angles of one token straight from the format document, in float64."""
    Dh = cfg.head_dim
    max_f = 0.8 * min(cfg.height, cfg.width)
    w = [math.pi * v for v in torch.linspace(1, max_f / 2, Dh // 16, dtype=torch.float64).tolist()]
    px = torch.linspace(-1 + 1 / cfg.width, 1 - 1 / cfg.width, cfg.width, dtype=torch.float64)[x].item()
    py = torch.linspace(-1 + 1 / cfg.height, 1 - 1 / cfg.height, cfg.height, dtype=torch.float64)[y].item()
    u = [10000 ** (-2 * i / (Dh / 4)) for i in range(Dh // 8)]
    twice = lambda vals: [v for v in vals for _ in range(2)]  # noqa: E731
    angles = twice([a * px for a in w]) + twice([a * py for a in w]) + twice([a * t for a in u])
    return torch.tensor(angles, dtype=torch.float64)


def test_rope_angles_any_frame_index():
    cfg = WaypointConfig(d_model=64, n_heads=2, n_kv_heads=1, n_layers=1, height=3, width=5,
                         tokens_per_frame=15, n_frames=8, prompt_conditioning=None)
    spatial = spatial_angles(cfg)
    for t in (0, 7, 8, 1000, 123_457):  # far beyond n_frames
        cos, sin = rope_tables(cfg, spatial, torch.tensor([[t]]))
        for y, x in ((0, 0), (1, 3), (2, 4)):
            want = rope_reference(cfg, t, y, x)
            tok = y * cfg.width + x
            torch.testing.assert_close(cos[0, 0, tok].double(), want.cos(), atol=1e-6, rtol=0)
            torch.testing.assert_close(sin[0, 0, tok].double(), want.sin(), atol=1e-6, rtol=0)


def test_apply_rope_layout():
    Dh = 16
    q = torch.randn(1, 1, 1, Dh)
    ang = torch.rand(Dh // 2) * 3
    out = apply_rope(q, ang.cos()[None, None, None], ang.sin()[None, None, None])[0, 0, 0]
    for j in range(Dh // 2):
        a, b = q[0, 0, 0, 2 * j], q[0, 0, 0, 2 * j + 1]
        assert torch.isclose(out[j], a * ang[j].cos() - b * ang[j].sin(), atol=1e-6)
        assert torch.isclose(out[Dh // 2 + j], b * ang[j].cos() + a * ang[j].sin(), atol=1e-6)
