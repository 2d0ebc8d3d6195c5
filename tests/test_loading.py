"""Loading checkpoints: strict key matching, missing files, hub repo ids through the hub cache, presets."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from waypoint_gym.engine import WaypointConfig, WorldEngine, preset_config
from waypoint_gym.engine.loading import resolve_uri


def writable_copy(src, dst):
    shutil.copytree(src, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def edit_weights(folder, edit):
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors")


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda s: s.pop("transformer.blocks.1.attn.v_lamb"), r"missing keys \(1\): transformer.blocks.1.attn.v_lamb"),
        (lambda s: s.__setitem__("transformer.blocks.0.attn.extra", torch.zeros(1)),
         r"unexpected keys \(1\): transformer.blocks.0.attn.extra"),
        (lambda s: s.__setitem__("patchify.weight", torch.zeros(128, 4, 1, 1)),
         r"mis-shaped keys \(1\): patchify.weight: file \(128, 4, 1, 1\) vs model \(128, 4, 2, 2\)"),
        (lambda s: s.__setitem__("transformer.blocks.1.cond_head.cond_proj.0.weight",
                                 torch.full_like(s["transformer.blocks.0.cond_head.cond_proj.0.weight"], 7.0)),
         r"copies of one shared tensor that differ \(1\): transformer.blocks.0.cond_head.cond_proj.0.weight / "
         r"transformer.blocks.1.cond_head.cond_proj.0.weight"),
    ],
    ids=["missing", "unexpected", "misshaped", "tied copies differ"],
)
def test_strict_loading_lists_bad_keys(parity_dir, tmp_path, edit, match):
    folder = writable_copy(parity_dir, tmp_path / "ckpt")
    edit_weights(folder, edit)
    with pytest.raises(ValueError, match=match):
        WorldEngine(folder)


def test_shards_that_overlap_or_an_index_that_lists_too_much_are_refused(parity_dir, tmp_path):
    folder = writable_copy(parity_dir, tmp_path / "ckpt")
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[:41], "model-00002-of-00002.safetensors": names[40:]}
    for shard, keys in halves.items():
        save_file({k: state[k] for k in keys}, folder / shard)
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match="has no weight_map"):
        WorldEngine(folder)
    weight_map = {k: shard for shard, keys in halves.items() for k in keys}
    index.write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(ValueError, match=rf"tensors \['{names[40]}'\] are in more than one shard"):
        WorldEngine(folder)
    save_file({k: state[k] for k in names[41:]}, folder / "model-00002-of-00002.safetensors")
    ghost = {"transformer.ghost": "model-00001-of-00002.safetensors"}
    index.write_text(json.dumps({"weight_map": {**weight_map, **ghost}}))
    with pytest.raises(ValueError, match=r"lists tensors no shard holds: \['transformer.ghost'\]"):
        WorldEngine(folder)
    index.write_text(json.dumps({"weight_map": weight_map}))
    assert WorldEngine(folder).config.d_model == 128  # the same shards, listed as they are, load


def test_missing_files(parity_dir, tmp_path):
    folder = writable_copy(parity_dir, tmp_path / "ckpt")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lacks model.safetensors"):
        WorldEngine(folder)
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        WorldEngine(tmp_path / "nowhere")


def test_hub_repo_id_resolves_through_the_hub_cache(parity_dir, tmp_path, monkeypatch):
    """A repo id goes through huggingface_hub.snapshot_download; here offline, from a cache laid out as the hub's."""
    cache = tmp_path / "hub"
    snap = cache / "models--Overworld--Tiny-Parity" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(parity_dir, snap)
    (cache / "models--Overworld--Tiny-Parity" / "refs").mkdir()
    (cache / "models--Overworld--Tiny-Parity" / "refs" / "main").write_text(snap.name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache), raising=False)
    from huggingface_hub import snapshot_download

    assert snapshot_download("Overworld/Tiny-Parity", cache_dir=cache) == str(snap)
    monkeypatch.setattr(
        "huggingface_hub.snapshot_download",
        lambda repo, **kw: snapshot_download(repo, cache_dir=cache, **kw),
    )
    eng = WorldEngine("Overworld/Tiny-Parity")
    assert eng.folder == snap and eng.config.d_model == 128
    with pytest.raises(FileNotFoundError, match="could not be fetched from the hub"):
        resolve_uri("Overworld/Not-In-Cache")


def test_config_round_trip_and_validation(parity_dir, tmp_path):
    cfg = WaypointConfig.from_yaml(parity_dir / "config.yaml")
    assert cfg.extra["rope_impl"] == "ortho" and cfg.is_global(0) and not cfg.is_global(1)
    cfg.save_yaml(tmp_path / "config.yaml")
    assert WaypointConfig.from_yaml(tmp_path / "config.yaml") == cfg
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        WaypointConfig(d_model=100, n_heads=3)
    with pytest.raises(ValueError, match="scheduler_sigmas must descend"):
        WaypointConfig(scheduler_sigmas=[1.0, 0.5, 0.7, 0.0])
    with pytest.raises(KeyError, match="unknown preset 'waypoint-9'"):
        preset_config("waypoint-9")


def test_waypoint_1_small_preset_is_the_published_size():
    cfg = preset_config("waypoint-1-small")
    with torch.device("meta"):
        from waypoint_gym.engine.model import WaypointModel

        n = sum(p.numel() for p in WaypointModel(cfg).parameters())
    assert 2.2e9 < n < 2.5e9, n
    assert cfg.tokens_per_frame == 256 and cfg.latent_shape == (16, 32, 32)
