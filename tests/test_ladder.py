"""studies/ladder.py: its toy rungs are the dynamics they claim, and a recipe runs a rung end to end."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from waypoint_gym.engine import WaypointConfig

SPEC = importlib.util.spec_from_file_location("ladder", Path(__file__).parents[1] / "studies" / "ladder.py")
ladder = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ladder)
WORLD_GEOMETRY = WaypointConfig(**ladder.WORLD)  # 16x16x4 latents, tokens of 4x4


def test_fields_are_periodic_with_unit_variance_and_shift_by_whole_pixels_as_a_roll():
    rng = np.random.default_rng(0)
    fields = ladder.random_fields(rng, 8, 4, 16)
    one = np.ones(8)
    a = ladder.view(fields, 16, 0 * one, 0 * one, one)
    assert abs(a.var() - 1) < 0.35 and abs(a.mean()) < 0.3
    np.testing.assert_allclose(ladder.view(fields, 16, 16 * one, 0 * one, one), a, atol=1e-4)  # one period
    np.testing.assert_allclose(ladder.view(fields, 16, 3 * one, 0 * one, one), np.roll(a, -3, axis=-1), atol=1e-4)


def test_keyed_rungs_move_by_their_keys_and_blur_is_the_mean_of_the_choices():
    data = ladder.synthetic_rung("keys_token", WORLD_GEOMETRY, 16, seed=0)
    lat, keys, blur = data["latents"], data["keys"], data["blur"]
    for i in range(16):
        shift = 4 * (int(keys[i, 1, 3]) - int(keys[i, 1, 1]))  # D right, A left, by a whole token
        np.testing.assert_allclose(lat[i, 1], np.roll(lat[i, 0], -shift, axis=-1), atol=1e-4)
        options = [np.roll(lat[i, 0], -s, axis=-1) for s in (0, -4, 4)]
        np.testing.assert_allclose(blur[i, 1], np.mean(options, axis=0), atol=1e-4)
    assert data["mask"].all()


def test_a_zoom_out_masks_what_the_last_view_did_not_show():
    mask = ladder.zoom_mask(16, np.array([1.2**2]), np.array([1.2]))[0]
    assert mask[8, 8] and not mask[0, 0] and 0 < mask.mean() < 1
    assert ladder.zoom_mask(16, np.array([1.2]), np.array([1.2**2])).all(), "a zoom in shows nothing new"


def test_mouse_rungs_use_any_mouse_value_both_ways():
    data = ladder.synthetic_rung("mouse", WORLD_GEOMETRY, 64, seed=0)
    mouse = data["mouse"][:, 1:, 0]
    assert mouse.min() < -0.5 and mouse.max() > 0.5 and len(np.unique(mouse)) == mouse.size
    assert (data["mouse"][..., 1] == 0).all() and (data["keys"] == 0).all()


def test_the_arena_mouse_rung_turns_by_the_arenas_latent_pixels_whatever_the_token_size():
    fine = WaypointConfig(**ladder.recipe_parts("world-recipe-p2")[0])  # tokens of 2x2 latent pixels
    assert fine.latent_shape == WORLD_GEOMETRY.latent_shape and fine.patch == (2, 2)
    state = (np.zeros(1), np.zeros(1), np.ones(1))
    for patch in (2, 4):
        specs = ladder.rung_specs(patch)
        assert specs["mouse_arena"]["move"](state, None, np.array([[1.0, 0.0]]))[0] == pytest.approx(2.6)
        assert specs["mouse"]["move"](state, None, np.array([[1.0, 0.0]]))[0] == pytest.approx(0.65 * patch)
    data = ladder.synthetic_rung("mouse_arena", fine, 64, seed=0)
    assert (data["mouse"][..., 1] == 0).all() and len(np.unique(data["mouse"][:, 1:, 0])) == 64 * 7


def test_a_recipe_climbs_a_rung_and_reports_its_baselines(tmp_path, one_torch_thread):
    args = argparse.Namespace(segments=32, seed=0, stop_early=False)
    res = ladder.run_rung("copy", "toy-recipe", 120, 60, tmp_path, args)
    assert [c["step"] for c in res["curve"]] == [60, 120]
    assert res["copy"] == 0 and res["blur"] == pytest.approx(1.0, abs=0.3)
    assert res["final_error"] < 0.5 * res["blur"], res["curve"]
    assert ladder.recipe_parts("toy-recipe+d_model=128+lr=0.002") == (
        {**ladder.RECIPES["toy-recipe"][0], "d_model": 128}, {**ladder.RECIPES["toy-recipe"][1], "lr": 0.002})
    assert "| copy | " in ladder.markdown_table([res])
    assert 0 < res["curve"][-1]["detail"] and res["blur_detail"] < 0.5  # the mean of random fields is flat


def test_latent_detail_counts_edges_where_the_mask_holds():
    frame = torch.zeros(1, 4, 8, 8)
    frame[..., 4:] = 1.0  # one vertical edge, 8 rows x 4 channels long
    everywhere = torch.ones(1, 1, 8, 8)
    assert ladder.latent_detail(frame, everywhere) == 32
    assert ladder.latent_detail(0.5 * frame, everywhere) == 16  # a ramp of half the height
    left = everywhere.clone()
    left[..., 4:] = 0
    assert ladder.latent_detail(frame, left) == 0  # the edge crosses out of the known region


def test_the_centre_leaves_out_a_border_of_every_frame_and_scores_only_inside_it():
    frames = ladder.CLIP_FRAMES
    lat = np.random.default_rng(0).normal(size=(1, frames, 1, 8, 8)).astype(np.float32)
    pred = torch.as_tensor(lat[:, 1:]).clone()
    pred[..., 0, :] += 1.0  # wrong only on the top row, which a turn or walk could bring into view
    held_out = {"latents": lat, "mask": np.ones((1, frames, 8, 8), bool), "blur": lat}
    centre = ladder.without_border(held_out, 2)
    assert centre["mask"][0, 1].sum() == 16 and centre["mask"][0, 1, 2:6, 2:6].all()
    assert held_out["mask"].all()  # the clips themselves keep their whole mask
    assert ladder.one_step_scores(pred, held_out)["model"] == pytest.approx(1 / 8)
    assert ladder.one_step_scores(pred, centre)["model"] == 0


def test_motion_bins_split_every_frame_by_its_turn_walking_and_likeness_to_the_recording():
    mouse = np.array([[[0.1, 0], [-0.5, 0.2], [0.9, -0.6], [-1.0, 0.3]]], np.float32)
    keys = np.zeros((1, 4, 6), np.uint8)
    keys[0, 1, ladder.ARENA_KEYS.index("W")] = 1
    keys[0, 0, ladder.ARENA_KEYS.index("SPACE")] = 1
    bins = ladder.motion_bins({"mouse": mouse, "keys": keys})
    assert bins["turn < 1/3"].tolist() == [[True, False, False, False]]
    assert bins["turn 1/3-2/3"].tolist() == [[False, True, False, False]]
    assert bins["turn > 2/3"].tolist() == [[False, False, True, True]]
    assert bins["walking (W)"].tolist() == [[False, True, False, False]]
    assert (bins["walking (W)"] ^ bins["not walking"]).all()
    assert bins["like the recording (|y| < 0.25, no A/S/D/SPACE)"].tolist() == [[False, True, False, False]]
    assert bins["tilting (|y| >= 0.5)"].tolist() == [[False, False, True, False]]


def test_the_arena_rung_can_hold_out_play_like_the_recordings(tmp_path, one_torch_thread):
    from waypoint_gym.engine import Autoencoder
    from waypoint_gym.training.collect import collect_arena
    from waypoint_gym.training.data import encode_dataset

    collect_arena(tmp_path / "play", n_segments=2, segment_len=8, n_envs=2, progress=False, policy={"idle_prob": 0.0})
    encode_dataset(Autoencoder.from_pretrained(ladder.BUNDLED_AUTOENCODER), tmp_path / "play", tmp_path / "lat.npy",
                   progress=False)
    rung = {a: ladder.arena_rung(str(tmp_path / "play"), str(tmp_path / "lat.npy"), 2, 3, 6, actions=a)[1]
            for a in ("uniform", "recording")}
    assert np.abs(rung["uniform"]["mouse"][:, 1:, 1]).max() > 0.5  # uniform play tilts the view all the way
    assert np.abs(rung["recording"]["mouse"][:, 1:, 1]).max() < 0.5  # the policy keeps the view near level
    for held_out in rung.values():
        # the blur averages other actions than the one taken: it is not the real next frame
        assert np.abs(held_out["blur"][:, 1:] - held_out["latents"][:, 1:]).mean() > 1e-3
        np.testing.assert_array_equal(held_out["blur"][:, 0], held_out["latents"][:, 0])
    with pytest.raises(ValueError, match="actions must be 'uniform' or 'recording'"):
        ladder.arena_rung(str(tmp_path / "play"), str(tmp_path / "lat.npy"), 2, 3, 6, actions="greedy")
