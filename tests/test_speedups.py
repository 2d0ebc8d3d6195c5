"""Each inference speed-up, switched on alone, reproduces the plain path on the parity fixture."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import run_parity_protocol, speed_paths
from waypoint_gym.engine import Speedups, WorldEngine

PLAIN = Speedups.plain()
ONE_AT_A_TIME = speed_paths()


@pytest.fixture(scope="module")
def plain_frames(parity_dir, parity_rollout):
    return torch.stack(run_parity_protocol(WorldEngine(parity_dir, speedups=PLAIN), parity_rollout))


@pytest.mark.parametrize("name", list(ONE_AT_A_TIME))
def test_speedup_matches_plain(name, parity_dir, parity_rollout, plain_frames):
    eng = WorldEngine(parity_dir, speedups=ONE_AT_A_TIME[name])
    got = torch.stack(run_parity_protocol(eng, parity_rollout))
    torch.testing.assert_close(got, plain_frames, atol=2e-5, rtol=0)


def test_fused_qkv_shares_storage_with_checkpoint_weights(parity_dir):
    eng = WorldEngine(parity_dir, speedups=ONE_AT_A_TIME["fused_qkv"])
    attn = eng.model.transformer.blocks[0].attn
    assert attn.q_proj.weight.data_ptr() == attn.qkv_weight.data_ptr()
    assert set(eng.model.state_dict()) == set(WorldEngine(parity_dir, speedups=PLAIN).model.state_dict())


def test_compiled_passes_match_plain(parity_dir, parity_rollout, plain_frames):
    """torch.compile(fullgraph=True, dynamic=False) of the denoise and cache passes (inductor on CPU here)."""
    eng = WorldEngine(parity_dir, speedups=dataclasses.replace(PLAIN, compile=True))
    got = torch.stack(run_parity_protocol(eng, parity_rollout))
    torch.testing.assert_close(got, plain_frames, atol=1e-4, rtol=0)


def test_bfloat16_runs_close_to_float32(parity_dir, parity_rollout, plain_frames):
    eng = WorldEngine(parity_dir, dtype=torch.bfloat16)
    got = torch.stack(run_parity_protocol(eng, parity_rollout))
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    rel = (got - plain_frames).norm() / plain_frames.norm()
    assert rel < 0.05, f"bf16 relative error {rel:.3f}"


def test_fewer_denoising_steps(parity_dir, parity_rollout):
    eng = WorldEngine(parity_dir, n_denoise_steps=2)
    assert eng.sigmas == [1.0, 0.73, 0.0]
    z = eng.gen_latent(noise=parity_rollout["noise"][0])
    assert z.shape == parity_rollout["noise"][0].shape and torch.isfinite(z).all()
    for steps in (5, 4.0, np.True_):  # 4.0 is the full schedule's count, but not an integer
        with pytest.raises(ValueError, match=r"n_denoise_steps must be an integer in \[1, 4\]"):
            WorldEngine(parity_dir, n_denoise_steps=steps)


def test_compile_settings_resolve_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # resolving needs no GPU
    on_cuda = Speedups().resolved(cuda)
    assert (on_cuda.compile, on_cuda.compile_mode, on_cuda.compile_backend, on_cuda.attention) == (
        True, "max-autotune", "inductor", "flex")
    on_cpu = Speedups(compile=True).resolved(cpu)
    assert (on_cpu.compile, on_cpu.compile_mode, on_cpu.attention) == (True, "default", "sdpa")
    assert Speedups(compile_mode="max-autotune-no-cudagraphs").resolved(cuda).compile_mode == (
        "max-autotune-no-cudagraphs")
    assert Speedups(compile=True, compile_backend="aot_eager").resolved(cpu).compile_mode is None
    with pytest.raises(ValueError, match="compile_mode 'default' is inductor's"):
        Speedups(compile_mode="default", compile_backend="aot_eager").resolved(cpu)
    assert Speedups.plain().resolved(cuda).compile is False
