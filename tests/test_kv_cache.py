"""The rolling KV cache: batched envs equal separate ones, envs reset and step independently, no growth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fixture_ctrls
from waypoint_gym.engine import CtrlInput, Speedups, WaypointConfig, WorldEngine, random_checkpoint


def env_inputs(rollout, n_envs: int, n_frames: int, seed: int = 0):
    """Distinct controls, prompts and noise per env, drawn reproducibly."""
    g = torch.Generator().manual_seed(seed)
    ctrls = fixture_ctrls(rollout)
    per_env = []
    for e in range(n_envs):
        prompt = rollout["prompt_emb"] * (1 + e) if e != 2 else rollout["prompt_emb"][:4]  # env 2: shorter prompt
        noise = torch.randn(n_frames, *rollout["noise"].shape[1:], generator=g)
        seeds = torch.randn(2, *rollout["noise"].shape[1:], generator=g)
        env_ctrls = [ctrls[(t + 3 * e) % 16] for t in range(n_frames)]
        per_env.append(dict(prompt=prompt, noise=noise, seeds=seeds, ctrls=env_ctrls))
    return per_env


@pytest.mark.parametrize("speedups", [Speedups.plain(), Speedups()], ids=["plain", "fast"])
def test_batched_equals_separate_with_staggered_resets(parity_dir, parity_rollout, speedups):
    """3 envs in one engine vs 3 batch-1 engines; env 1 resets mid-way, env 2 sits out some frames."""
    n_envs, n_steps = 3, 22  # more frames than both rings hold, so they wrap
    inputs = env_inputs(parity_rollout, n_envs, n_steps)
    batched = WorldEngine(parity_dir, batch_size=n_envs, speedups=speedups)
    single = [WorldEngine(parity_dir, speedups=speedups) for _ in range(n_envs)]
    for e, inp in enumerate(inputs):
        batched.set_prompt_embedding(inp["prompt"], env_ids=[e])
        single[e].set_prompt_embedding(inp["prompt"])
    step = [0] * n_envs  # next frame of each env's own episode

    def advance(env_ids: list[int]):
        latents = []
        for e in env_ids:
            inp, t = inputs[e], step[e]
            latents.append(inp["seeds"][t] if t < 2 else inp["noise"][t])
        ctrls = [inputs[e]["ctrls"][step[e]] for e in env_ids]
        seeding = [step[e] < 2 for e in env_ids]
        assert len(set(seeding)) == 1, "the test steps envs in the same phase together"
        if seeding[0]:
            batched.append_latent(torch.stack(latents), ctrls, env_ids=env_ids)
            for e, z, c in zip(env_ids, latents, ctrls):
                single[e].append_latent(z, c)
        else:
            got = batched.gen_latent(ctrls, noise=torch.stack(latents), env_ids=env_ids)
            for i, (e, z, c) in enumerate(zip(env_ids, latents, ctrls)):
                want = single[e].gen_latent(c, noise=z)
                err = (got[i] - want).abs().max().item()
                assert err < 1e-4, f"env {e} frame {step[e]}: batched differs from separate by {err:.2e}"
        for e in env_ids:
            step[e] += 1

    for k in range(n_steps):
        if k == 9:  # env 1 starts a new episode while the others go on
            batched.reset(env_ids=[1])
            single[1].reset()
            step[1] = 0
        if step[1] < 2 and k >= 9:
            advance([1])
            advance([0])
            continue
        active = [0, 1] if 4 <= k < 8 else [0, 1, 2]  # env 2 sits out four frames
        advance(active)
    np.testing.assert_array_equal(batched.frame_index(), [single[e].frame_index()[0] for e in range(n_envs)])


def test_cache_is_allocated_once(parity_dir, parity_rollout):
    eng = WorldEngine(parity_dir, batch_size=2)
    buffers = {name: (b.data_ptr(), b.shape) for name, b in eng.cache.named_buffers()}
    z = parity_rollout["noise"][:2]
    for _ in range(3 * eng.config.global_window):
        eng.gen_latent(noise=z)
    assert {name: (b.data_ptr(), b.shape) for name, b in eng.cache.named_buffers()} == buffers


def test_rollout_beyond_n_frames_is_shift_invariant(tmp_path):
    """Attention sees only relative frame positions: an episode started at frame 1000 (past n_frames=8)
    gives the same frames as one started at 0, which proves the RoPE and the ring work at any index."""
    cfg = WaypointConfig(
        d_model=64, n_heads=2, n_kv_heads=1, n_layers=3, mlp_ratio=2, channels=4, height=2, width=2,
        patch=(2, 2), tokens_per_frame=4, n_frames=8, local_window=3, global_window=8, global_pinned_dilation=2,
        global_attn_period=2, value_residual=True, n_buttons=8, prompt_conditioning=None,
    )
    folder = random_checkpoint(tmp_path / "ckpt", cfg, seed=3)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(30, *cfg.latent_shape, generator=g)
    runs = []
    for start in (0, 1000):  # 1000 is a multiple of the dilation, so the same frames are pinned
        eng = WorldEngine(folder, speedups=Speedups.plain())
        eng.cache.frame.fill_(start)
        runs.append(torch.stack([eng.gen_latent(CtrlInput(button={t % 8}), noise=noise[t]) for t in range(30)]))
        assert eng.frame_index()[0] == start + 30
    assert torch.isfinite(runs[1]).all()
    torch.testing.assert_close(runs[1], runs[0], atol=1e-4, rtol=0)


EXTENDED = {"prediction": "x0", "attn_logit_scale": True, "ctrl_fusion": "gated",  # docs/engine.md's extensions
            "last_frame_warp": True}


@pytest.mark.parametrize("extensions", [{}, EXTENDED], ids=["published", "extended"])
def test_frame_causal_training_pass_equals_cached_inference(extensions):
    """One teacher-forced pass over a clip (as in training) gives, frame by frame, what cached inference
    gives: clean context frames at sigma 0 and a noisy last frame, with rings that wrap."""
    from waypoint_gym.engine.kv_cache import FrameCausalMask, KVCache
    from waypoint_gym.engine.model import previous_frames
    from waypoint_gym.engine.world_engine import random_model

    cfg = WaypointConfig(
        d_model=64, n_heads=4, n_kv_heads=2, n_layers=4, mlp_ratio=2, channels=4, height=2, width=3,
        patch=(2, 2), tokens_per_frame=6, n_frames=64, local_window=3, global_window=4, global_pinned_dilation=2,
        global_attn_period=2, value_residual=True, n_buttons=8, prompt_embedding_dim=32,
        prompt_conditioning_period=2, ctrl_conditioning_period=1, **extensions,
    )
    model = random_model(cfg, seed=1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("log_logit_scale"):  # 0 (a scale of 1) at the start
                p.normal_(0, 0.5)
    B, n = 2, 13
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, n, *cfg.latent_shape, generator=g)
    ctrl = torch.randn(B, n, cfg.n_buttons + 3, generator=g)
    prompt = torch.randn(B, 5, cfg.prompt_embedding_dim, generator=g)
    sigma = torch.zeros(B, n)
    sigma[:, -1] = 0.6
    t = torch.arange(n).expand(B, -1)
    with torch.no_grad():
        last_frame = previous_frames(x)  # read by last_frame_warp only
        clip = model(x, sigma, t, ctrl, prompt, cache=FrameCausalMask(cfg, n), last_frame=last_frame)
        cache = KVCache(cfg, B)
        for i in range(n):
            last = i == n - 1
            plan = cache.plan(None, commit=not last)
            v = model(x[:, i], sigma[:, i], cache.frame, ctrl[:, i], prompt, plan, cache, last_frame=last_frame[:, i])
            if last or cfg.prediction == "velocity":  # an x0 head's velocity at sigma 0 is unused and ill-conditioned
                torch.testing.assert_close(v, clip[:, i], atol=1e-5, rtol=0, msg=f"frame {i}")
            if not last:
                cache.advance(plan)
