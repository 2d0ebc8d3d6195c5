"""The command line: a rollout of the parity checkpoint, and the whole training pipeline at toy scale."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import yaml

from waypoint_gym.cli import build_parser, main
from waypoint_gym.engine import WaypointConfig, WorldEngine
from waypoint_gym.envs import WaypointWorldEnv
from waypoint_gym.worlds import ArenaBatch


def test_rollout_saves_latent_statistics(parity_dir, tmp_path):
    main(["rollout", str(parity_dir), "--frames", "20", "--batch-size", "2", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "rollout.json").read_text())
    assert report["frames"] == 20 and len(report["per_frame"]) == 20
    assert all(f["finite"] for f in report["per_frame"])


def test_the_readme_main_job_rolls_out_the_bundled_world_from_its_start_frames(tmp_path, one_torch_thread):
    main(["rollout", "--frames", "3", "--batch-size", "2", "--out", str(tmp_path)])  # the README's job, shorter
    report = json.loads((tmp_path / "rollout.json").read_text())
    assert report["frames"] == 3 and report["checkpoint"].endswith("default_world")
    assert (tmp_path / "frames.png").is_file()


def test_training_pipeline_end_to_end(tmp_path):
    """collect -> autoencoder -> encode -> world model + export -> reward head, each for a few steps."""
    torch.set_num_threads(1)
    data, ae, lat = tmp_path / "data", tmp_path / "ae", tmp_path / "latents.npy"
    main(["train", "collect", "--out", str(data), "--segments", "6", "--segment-len", "10", "--envs", "3"])
    main(["train", "autoencoder", "--data", str(data), "--out", str(ae), "--steps", "3", "--batch-size", "4",
          "--ch-0", "8", "--ch-max", "16"])
    main(["train", "autoencoder", "--data", str(data), "--out", str(tmp_path / "dec"), "--steps", "2", "--batch-size",
          "4", "--ch-0", "8", "--ch-max", "16", "--blocks-per-stage", "0", "--encoder", str(ae / "autoencoder")])
    assert yaml.safe_load((tmp_path / "dec" / "autoencoder" / "decoder_conf.yml").read_text())["model"][
        "decoder_blocks_per_stage"] == [0, 0]
    main(["train", "encode", "--data", str(data), "--autoencoder", str(ae / "autoencoder"), "--out", str(lat)])
    latents = np.load(lat)
    assert latents.shape == (6, 10, 4, 16, 16)
    main(["train", "reward-head", "--data", str(data), "--latents", str(lat), "--out", str(tmp_path / "rh"),
          "--steps", "3"])
    cfg = WaypointConfig(
        d_model=64, n_heads=2, n_kv_heads=1, n_layers=2, mlp_ratio=2, channels=4, height=4, width=4, patch=(4, 4),
        tokens_per_frame=16, n_frames=32, local_window=4, global_window=8, global_pinned_dilation=2,
        global_attn_period=2, n_buttons=256, prompt_embedding_dim=32, scheduler_sigmas=[1.0, 0.5, 0.0],
    )
    (tmp_path / "wm.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    world = tmp_path / "world"
    main(["train", "world-model", "--data", str(data), "--latents", str(lat), "--config", str(tmp_path / "wm.yaml"),
          "--run", str(tmp_path / "run"), "--steps", "3", "--batch-size", "2", "--clip-frames", "6",
          "--clean-context-prob", "0.75", "--ctrl-init-scale", "4", "--start-frames", "4", "--export", str(world),
          "--autoencoder", str(ae / "autoencoder"), "--reward-head", str(tmp_path / "rh"),
          "--default-prompt", "a sunny desert canyon at noon"])
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["steps"] == 3 and np.isfinite(report["teacher_forced_x0_mse"])
    assert np.isfinite(report["prompt_start_x0_mse"])
    training = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert training["clean_context_prob"] == 0.75 and training["ctrl_init_scale"] == 4 and training["start_frames"] == 4
    assert (tmp_path / "run" / "samples.png").is_file() and (ae / "ae_samples.png").is_file()
    eng = WorldEngine(world, batch_size=2)
    eng.set_prompt(["a mossy stone dungeon", "a snowy ice cave at night"])
    eng.append_frame(np.zeros((2, 64, 64, 3), np.uint8))
    assert eng.gen_frame().shape == (2, 64, 64, 3)
    config = yaml.safe_load((world / "config.yaml").read_text())
    assert (world / "reward_head").is_dir() and config["ae_uri"] == "autoencoder"
    assert config["default_prompt"] == "a sunny desert canyon at noon" and config["default_keys"][0] == "W"
    assert np.load(world / "start_frames.npy").shape == (1, 64, 64, 3)
    env = WaypointWorldEnv(model=world)  # reward head, prompt and start frame come with the checkpoint
    obs, info = env.reset(seed=0)
    assert info["prompt"] == "a sunny desert canyon at noon" and obs.shape == (64, 64, 3)
    assert env.step(env.action_space.sample())[0].shape == (64, 64, 3)
    # A reward head that reads that world's one-step predictions instead of the recorded latents, on the
    # collection's first 4 segments (3 to train on, 1 held out).
    main(["train", "reward-head", "--data", str(data), "--latents", str(lat), "--out", str(tmp_path / "rh_world"),
          "--steps", "3", "--world", str(world), "--world-batch", "4", "--segments", "4"])
    report = json.loads((tmp_path / "rh_world" / "report.json").read_text())
    assert report["n_train"] == 3 * 9 and report["one_step_latents_of"] == str(world)
    # Or its open-loop dreams: frames 0-5 of each 10-frame segment real, the steps into frames 6-9 dreamed.
    main(["train", "reward-head", "--data", str(data), "--latents", str(lat), "--out", str(tmp_path / "rh_open"),
          "--steps", "3", "--world", str(world), "--world-batch", "4", "--segments", "4", "--open-loop"])
    report = json.loads((tmp_path / "rh_open" / "report.json").read_text())
    assert report["n_train"] == 3 * 4 and report["open_loop_latents_of"] == str(world)
    with pytest.raises(SystemExit, match="--open-loop needs --world"):
        main(["train", "reward-head", "--data", str(data), "--latents", str(lat), "--out", str(tmp_path / "rh_x"),
              "--open-loop"])

    # The self-forcing stage distils that world into a 1-step student and exports it the same way.
    student = tmp_path / "student"
    main(["train", "self-forcing", "--data", str(data), "--latents", str(lat), "--teacher", str(world),
          "--run", str(tmp_path / "sf"), "--student-steps", "1", "--steps", "2", "--batch-size", "2",
          "--clip-frames", "4", "--export", str(student), "--autoencoder", str(ae / "autoencoder"),
          "--reward-head", str(tmp_path / "rh"), "--default-prompt", "a snowy ice cave at night"])
    config = yaml.safe_load((student / "config.yaml").read_text())
    assert config["scheduler_sigmas"] == [1.0, 0.0] and config["default_prompt"] == "a snowy ice cave at night"
    np.testing.assert_array_equal(np.load(student / "start_frames.npy"),
                                  ArenaBatch(1, size=64).reset(seed=10_000_000, prompt="a snowy ice cave at night")[0])
    assert WaypointWorldEnv(model=student).reset(seed=0)[1]["prompt"] == "a snowy ice cave at night"


def test_rollout_of_the_real_game(tmp_path):
    main(["rollout", "real", "--frames", "12", "--batch-size", "2", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "rollout.json").read_text())
    assert report["world"] == "WaypointArena-v0" and report["frames"] == 12 and (tmp_path / "frames.png").is_file()


def test_errors_are_one_line_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["rollout", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "out")])
    assert done.value.code == 2
    assert "waypoint-gym rollout: error: checkpoint folder not found" in capsys.readouterr().err


def test_every_option_has_help_and_shows_its_default(capsys):
    def commands(parser: argparse.ArgumentParser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from commands(sub)

    for parser in commands(build_parser()):
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{parser.prog} {action.dest} has no help"
    with pytest.raises(SystemExit):
        main(["rollout", "--help"])
    shown = capsys.readouterr().out
    assert "(default: 32)" in shown and "preset:waypoint-1-small" in shown and "'real'" in shown


def test_key_prob_reads_key_equals_share_and_names_a_bad_value(capsys):
    args = build_parser().parse_args(["train", "collect", "--out", "x", "--key-prob", "s=0.4", "--key-prob", "W=0.3"])
    assert args.key_probs == [("S", 0.4), ("W", 0.3)]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "collect", "--out", "x", "--key-prob", "S:0.4"])
    assert "expected KEY=P (e.g. S=0.4), got 'S:0.4'" in capsys.readouterr().err
