"""Waypoint-1.5 world models: the parity fixture through the public calls, the key remap in every spelling, the two
frame clocks, batching with per-env resets, the speed paths against the plain one, and bad configs."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import fixture_ctrls, fixture_dir
from waypoint_gym.engine import CtrlInput, Speedups, WaypointConfig, WorldEngine, random_checkpoint
from waypoint_gym.engine.loading import remap_waypoint15
from waypoint_gym.engine.model import rope_tables, spatial_angles

PLAIN = Speedups.plain()


@pytest.fixture(scope="module")
def wp15_dir():
    return fixture_dir("waypoint15-parity-a")


@pytest.fixture(scope="module")
def wp15_rollout(wp15_dir):
    return load_file(wp15_dir / "rollout.safetensors")


def run_protocol(engine: WorldEngine, rollout) -> torch.Tensor:
    """The fixture README's protocol (no prompt): 2 seed latents by cache pass, 14 generated from the given noise."""
    engine.reset()
    out = []
    for f, ctrl in enumerate(fixture_ctrls(rollout)):
        if f < 2:
            engine.append_latent(rollout["seed_latents"][f], ctrl)
        else:
            out.append(engine.gen_latent(ctrl, noise=rollout["noise"][f - 2]))
    return torch.stack(out)


def assert_parity(got: torch.Tensor, rollout) -> None:
    for f, (x, want) in enumerate(zip(got, rollout["expected_x0"]), start=2):
        err = (x - want).abs().max().item()
        assert err < 1e-4, f"frame {f}: max abs error {err:.2e}"


def writable_copy(src, dst):
    shutil.copytree(src, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


# ---------------------------------------------------------------------------------------------- the fixture


def test_config_reads_the_15_fields_and_defaults(wp15_dir):
    cfg = WaypointConfig.from_yaml(wp15_dir / "config.yaml")
    assert cfg.model_type == "waypoint-1.5" and cfg.temporal_compression == 4 and cfg.taehv_ae
    assert (cfg.base_fps, cfg.inference_fps, cfg.latent_fps, cfg.rope_time_step) == (15, 60, 15.0, 1)
    # left out of the file: the 1.5 loader's defaults
    assert (cfg.rope_nyquist_frac, cfg.rope_theta, cfg.auto_aspect_ratio) == (0.8, 10000.0, True)
    assert [i for i in range(4) if cfg.is_global(i)] == [1, 3]  # global_attn_offset -1
    assert [i for i in range(4) if cfg.has_ctrl(i)] == [0, 3] and not cfg.prompt_conditioning
    assert cfg.latent_shape == (8, 4, 8)


@pytest.mark.parametrize("speedups", [PLAIN, Speedups(compile=False)], ids=["plain", "fast"])
def test_parity(wp15_dir, wp15_rollout, speedups):
    assert_parity(run_protocol(WorldEngine(wp15_dir, speedups=speedups), wp15_rollout), wp15_rollout)


def test_first_velocities_match_reference(wp15_dir, wp15_rollout):
    r = wp15_rollout
    eng = WorldEngine(wp15_dir, speedups=PLAIN)
    ctrls = fixture_ctrls(r)
    for f in range(2):
        eng.append_latent(r["seed_latents"][f], ctrls[f])
    inputs = eng._frame_inputs(eng._ctrl_vector(ctrls[2], 1), None)
    x = r["noise"][0][None]
    for i, (s, s_next) in enumerate(zip(eng.sigmas, eng.sigmas[1:])):
        v = eng._forward(x, eng._sigma(i, 1), inputs)
        err = (v[0] - r["expected_first_velocities"][i]).abs().max().item()
        assert err < 1e-4, f"step {i}: {err:.2e}"
        x = x + (s_next - s) * v


@pytest.mark.parametrize(
    "change", [dict(fused_qkv=True), dict(cached_conditioning=True), dict(split_ctrl_fusion=True),
               dict(attention="flex"), dict(compile=True)],
    ids=["fused_qkv", "cached_conditioning", "split_ctrl_fusion", "flex_attention", "compile"],
)
def test_each_speedup_matches_the_fixture(wp15_dir, wp15_rollout, change):
    # Every compiled engine recompiles the same pass, and dynamo allows 8 per process: this test leaves the count
    # as it found it, whatever the order of the test files.
    torch._dynamo.reset()
    try:
        eng = WorldEngine(wp15_dir, speedups=dataclasses.replace(PLAIN, **change))
        assert_parity(run_protocol(eng, wp15_rollout), wp15_rollout)
    finally:
        torch._dynamo.reset()


def test_batched_envs_with_per_env_reset(wp15_dir, wp15_rollout):
    """3 envs in one engine: env 1 is reset 5 frames after env 0 starts and then follows the same episode, batched
    with env 0 where their phases allow; env 2 dreams on its own in every call. Both episodes match the fixture."""
    r, ctrls = wp15_rollout, fixture_ctrls(wp15_rollout)
    eng = WorldEngine(wp15_dir, batch_size=3, speedups=Speedups(compile=False))
    got = {0: [], 1: []}
    for k in range(21):
        if k == 5:
            eng.reset(env_ids=[1])
        seed, gen, free = [], [], [2]
        for e, f in ((0, k), (1, k - 5 if k >= 5 else -1)):
            (seed if 0 <= f < 2 else gen if 2 <= f < 16 else free).append((e, f))
        if seed:
            eng.append_latent(torch.stack([r["seed_latents"][f] for _, f in seed]), [ctrls[f] for _, f in seed],
                              env_ids=[e for e, _ in seed])
        if gen:
            x = eng.gen_latent([ctrls[f] for _, f in gen], noise=torch.stack([r["noise"][f - 2] for _, f in gen]),
                               env_ids=[e for e, _ in gen])
            for (e, _), z in zip(gen, x):
                got[e].append(z)
        eng.gen_latent(CtrlInput(button={1}), env_ids=[e if isinstance(e, int) else e[0] for e in free])
    assert_parity(torch.stack(got[0]), r)
    assert_parity(torch.stack(got[1]), r)


def test_cost_is_flat_over_long_episodes(wp15_dir, wp15_rollout):
    """The ring is allocated once and never grows, however long the episode (RoPE time has no table either)."""
    eng = WorldEngine(wp15_dir, batch_size=2)
    buffers = {name: (b.data_ptr(), b.shape) for name, b in eng.cache.named_buffers()}
    for _ in range(40):
        z = eng.gen_latent(noise=wp15_rollout["noise"][:2])
    assert torch.isfinite(z).all() and eng.frame_index().tolist() == [40, 40]
    assert {name: (b.data_ptr(), b.shape) for name, b in eng.cache.named_buffers()} == buffers


# ---------------------------------------------------------------------------------------------- key spellings


def canonical_state(wp15_dir) -> tuple[WaypointConfig, dict[str, torch.Tensor]]:
    cfg = WaypointConfig.from_yaml(wp15_dir / "config.yaml")
    return cfg, remap_waypoint15(load_file(wp15_dir / "model.safetensors"), cfg)


def test_remap_turns_75_legacy_keys_into_69(wp15_dir):
    legacy = load_file(wp15_dir / "model.safetensors")
    cfg, state = canonical_state(wp15_dir)
    assert len(legacy) == 75 and len(state) == 69
    # the MLP head's bias_in is kept; fc1_x then fc1_c along dim 1
    assert torch.equal(state["transformer.blocks.2.cond_head.bias_in"],
                       legacy["transformer.blocks.2.mlp_cond_head.bias_in"])
    fc1 = state["transformer.blocks.3.ctrl_mlpfusion.mlp.fc1.weight"]
    assert fc1.shape == (128, 256)
    assert torch.equal(fc1[:, 128:], legacy["transformer.blocks.3.ctrl_mlpfusion.fc1_c.weight"])
    # the 4-D kernel: row c*ph*pw + i*pw + j is kernel[:, c, i, j]
    w = state["unpatchify.weight"]
    assert w.shape == (32, 128) and torch.equal(w[1 * 4 + 1 * 2 + 0], legacy["unpatchify.weight"][:, 1, 1, 0])
    assert torch.equal(state["unpatchify.bias"][4:8], legacy["unpatchify.bias"][1].expand(4))
    assert remap_waypoint15(dict(state), cfg).keys() == state.keys(), "canonical keys pass through"


def test_canonical_sharded_and_fused_spellings_load_the_same(wp15_dir, wp15_rollout, tmp_path):
    cfg, state = canonical_state(wp15_dir)
    # canonical spelling, cond projections under block 0 only, a fused qkv, a stale `.cond_heads.` copy
    for i in range(1, cfg.n_layers):
        for j in range(6):
            state.pop(f"transformer.blocks.{i}.cond_head.cond_proj.{j}.weight")
    p = "transformer.blocks.2.attn."
    state[p + "qkv_proj.weight"] = torch.cat([state.pop(p + n) for n in ("q_proj.weight", "k_proj.weight",
                                                                       "v_proj.weight")])
    state["transformer.blocks.0.cond_heads.0.weight"] = torch.zeros(1)
    folder = tmp_path / "sharded"
    folder.mkdir()
    shutil.copyfile(wp15_dir / "config.yaml", folder / "config.yaml")
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[:40], "model-00002-of-00002.safetensors": names[40:]}
    for shard, keys in halves.items():
        save_file({k: state[k].contiguous() for k in keys}, folder / shard)
    index = {"weight_map": {k: shard for shard, keys in halves.items() for k in keys}}
    (folder / "model.safetensors.index.json").write_text(__import__("json").dumps(index))
    assert_parity(run_protocol(WorldEngine(folder, speedups=PLAIN), wp15_rollout), wp15_rollout)


def test_strict_load_names_the_keys_the_remap_leaves(wp15_dir, tmp_path):
    folder = writable_copy(wp15_dir, tmp_path / "ckpt")
    state = load_file(folder / "model.safetensors")
    state.pop("transformer.blocks.1.dit_mlp.fc2.weight")
    state["transformer.blocks.0.attn.gate_proj.weight"] = torch.zeros(4, 4)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing keys \(1\): transformer.blocks.1.mlp.fc2.weight; "
                                         r"unexpected keys \(1\): transformer.blocks.0.attn.gate_proj.weight"):
        WorldEngine(folder)


def test_without_the_remap_the_legacy_file_does_not_load(wp15_dir, tmp_path):
    folder = writable_copy(wp15_dir, tmp_path / "ckpt")
    text = (folder / "config.yaml").read_text().replace("model_type: waypoint-1.5", "model_type: waypoint-1")
    (folder / "config.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"missing keys \(.*unexpected keys \(.*dit_mlp"):
        WorldEngine(folder)


def test_hub_repo_id_fetches_only_the_root_checkpoint(wp15_dir, tmp_path, monkeypatch):
    """A 1.5 hub repo also holds diffusers copies; the engine asks the hub for the root config and weights only."""
    calls = []

    def fake_snapshot_download(repo, allow_patterns=None, token=None):
        calls.append(allow_patterns)
        return str(wp15_dir)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    eng = WorldEngine("Overworld/Waypoint-1.5-Tiny")
    assert eng.config.model_type == "waypoint-1.5"
    assert calls == [["config.yaml"], ["config.yaml", "model.safetensors", "model.safetensors.index.json",
                                       "model-*.safetensors"]]


# ---------------------------------------------------------------------------------------------- the two clocks


def test_rope_time_is_frame_times_the_time_step():
    """base_fps 30 with 60 fps video and 4 frames per latent: RoPE time 2 per latent frame (the ring still counts 1)."""
    common = dict(d_model=64, n_heads=2, n_kv_heads=1, n_layers=1, height=2, width=4, tokens_per_frame=8,
                  prompt_conditioning=None, temporal_compression=4, inference_fps=60)
    slow, fast = WaypointConfig(**common, base_fps=30), WaypointConfig(**common, base_fps=15, rope_theta=500.0)
    assert slow.rope_time_step == 2 and fast.rope_time_step == 1
    f = torch.tensor([[0, 3, 7]])
    got = rope_tables(slow, spatial_angles(slow), f)
    want = rope_tables(dataclasses.replace(slow, base_fps=15), spatial_angles(slow), 2 * f)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    other = rope_tables(fast, spatial_angles(fast), f)
    assert not torch.allclose(other[0], rope_tables(dataclasses.replace(fast, rope_theta=10000.0),
                                                    spatial_angles(fast), f)[0])


def test_other_grids_and_clock_ratios_run(tmp_path):
    cfg = WaypointConfig(
        d_model=64, n_heads=2, n_kv_heads=1, n_layers=3, mlp_ratio=2, channels=4, height=3, width=6,
        tokens_per_frame=18, local_window=3, global_window=4, global_pinned_dilation=2, global_attn_period=2,
        global_attn_offset=-1, gated_attn=False, value_residual=True, n_buttons=8, prompt_conditioning=None,
        model_type="waypoint-1.5", temporal_compression=4, base_fps=30, inference_fps=60,
        scheduler_sigmas=[1.0, 0.9, 0.75, 0.3, 0.0], rope_nyquist_frac=0.5,
    )
    eng = WorldEngine(random_checkpoint(tmp_path / "ckpt", cfg), batch_size=2, speedups=PLAIN)
    assert eng.config.rope_time_step == 2 and eng.latent_shape == (4, 6, 12)
    z = torch.stack([eng.gen_latent(CtrlInput(button={f % 8})) for f in range(10)])
    assert z.shape == (10, 2, 4, 6, 12) and torch.isfinite(z).all()


# ---------------------------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    "fields,match",
    [
        (dict(moe=True), r"moe: true \(a mixture-of-experts MLP\) is not supported"),
        (dict(extra={"rope_impl": "yarn"}), r"rope_impl 'yarn' is not supported \(only 'ortho'\)"),
        (dict(temporal_compression=0), r"temporal_compression must be a positive integer, got 0"),
        (dict(base_fps=10, inference_fps=60, temporal_compression=4),
         r"base_fps 10 is below the latent frame rate 15.0"),
    ],
    ids=["moe", "rope_impl", "temporal_compression", "base_fps"],
)
def test_bad_15_configs_are_rejected(fields, match):
    with pytest.raises(ValueError, match=match):
        WaypointConfig(prompt_conditioning=None, **fields)


def test_interpolated_values_resolve():
    cfg = WaypointConfig.from_dict(dict(model_type="waypoint-1.5", d_model=64, n_heads=2, height=2, width=2,
                                        tokens_per_frame=4, base_fps=15, inference_fps="${base_fps}"))
    assert cfg.inference_fps == 15 and cfg.n_kv_heads == 2 and not cfg.gated_attn and cfg.patch == (1, 1)
    with pytest.raises(ValueError, match=r"config value '\$\{nope\}' names a field the config does not set"):
        WaypointConfig.from_dict(dict(base_fps="${nope}"))
    with pytest.raises(ValueError, match=r"config value '\$\{inference_fps\}' names a field the config does not "
                                         r"set \(or a cycle of them\)"):
        WaypointConfig.from_dict(dict(base_fps="${inference_fps}", inference_fps="${base_fps}"))


def test_bfloat16_runs_close_to_float32(wp15_dir, wp15_rollout):
    plain = run_protocol(WorldEngine(wp15_dir, speedups=PLAIN), wp15_rollout)
    got = run_protocol(WorldEngine(wp15_dir, dtype=torch.bfloat16), wp15_rollout)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    rel = (got - plain).norm() / plain.norm()
    assert rel < 0.05, f"bf16 relative error {rel:.3f}"
