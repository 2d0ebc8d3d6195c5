"""studies/one_step_controls.py replays the evaluation's one-step control rows trial by trial."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from waypoint_gym.engine import WorldEngine
from waypoint_gym.evaluation.control import controllability
from waypoint_gym.evaluation.harness import DEFAULT_CAPTIONS, EVAL_SEED, SEED_BLOCK

SPEC = importlib.util.spec_from_file_location(
    "one_step_controls", Path(__file__).parents[1] / "studies" / "one_step_controls.py")
study = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(study)
BUNDLED = Path(__file__).parents[1] / "waypoint_gym" / "assets" / "default_world"


def test_the_trials_agree_as_often_as_the_evaluation_says(one_torch_thread):
    records, rows = study.trials(str(BUNDLED), 3, grid={(1, "left"), (0, "back")})
    assert len(records) == 12 and len(rows) == 2 and rows[0].shape == (64, 256, 3)
    summary = study.summary(records)
    engine = WorldEngine(BUNDLED, device="cpu", batch_size=16, n_denoise_steps=2, seed=study.SEED)
    engine.generator.manual_seed(study.SEED)
    gate = controllability(engine, 3, seed=study.SEED, captions=DEFAULT_CAPTIONS, n_frames=1, turn=1.0,
                           n_context=study.CONTEXT, progress=False)
    assert summary["turn"]["agree"] == pytest.approx(gate["turn"]["agreement"])
    assert summary["turn"]["trials"] == gate["turn"]["n_trials"] == 6
    assert summary["walk"]["trials"] == gate["move"]["n_trials"]
    if gate["move"]["n_trials"]:
        assert summary["walk"]["agree"] == pytest.approx(gate["move"]["agreement"])
    assert summary["turn"]["reconstruction"]["trials"] == 6
    assert summary["turn"]["reconstruction"]["agree"] == pytest.approx(gate["turn"]["reconstruction_agreement"])
    split = summary["turn"]["by_direction"]
    assert split["left"]["trials"] + split["right"]["trials"] == 6


def test_fewer_actions_play_the_same_worlds():
    records, _ = study.trials(str(BUNDLED), 2, actions=("back",))
    assert [(r["world"], r["action"]) for r in records] == [(0, "back"), (1, "back")]
    assert all(r["real"] < 0.02 for r in records)  # a step back shrinks the real view (or a wall stops it)


def test_the_summary_splits_by_the_last_action_and_counts_still_failures():
    def trial(action, real, dreamed, last_x):
        return {"world": 0, "action": action, "real": real, "dreamed": dreamed, "reconstructed": real, "walked": 0.0,
                "detail": 1.0, "last_mouse_x": last_x, "last_walk": 0}

    records = [trial("right", 10.0, 9.0, 1.0), trial("right", 10.0, -0.5, -1.0), trial("left", -10.0, -8.0, 0.0),
               trial("left", -10.0, 3.0, -0.5)]
    turn = study.summary(records)["turn"]
    assert turn["agree"] == 0.5 and turn["failed"] == 2 and turn["failed_without_motion"] == 1
    assert turn["after_the_same_action"] == {"agree": 0.5, "trials": 2}  # right after right, left after left
    assert turn["after_the_opposite"] == {"agree": 0.0, "trials": 1}
    assert turn["after_neither"] == {"agree": 1.0, "trials": 1}
    assert turn["reconstruction"]["agree"] == 1.0 and turn["failed_where_the_reconstruction_agrees"] == 2
    assert "walk" not in study.summary(records)


def test_other_seed_blocks_replay_the_evaluations_rows_on_fresh_worlds(one_torch_thread):
    seed = EVAL_SEED + 20 * SEED_BLOCK
    records, _ = study.trials(str(BUNDLED), 2, seed=seed)
    engine = WorldEngine(BUNDLED, device="cpu", batch_size=16, n_denoise_steps=2, seed=seed)
    engine.generator.manual_seed(seed)
    gate = controllability(engine, 2, seed=seed, captions=DEFAULT_CAPTIONS, n_frames=1, turn=1.0,
                           n_context=study.CONTEXT, progress=False)
    assert study.summary(records)["turn"]["agree"] == pytest.approx(gate["turn"]["agreement"])
    at_the_evaluations, _ = study.trials(str(BUNDLED), 2, actions=("left",))
    fresh, _ = study.trials(str(BUNDLED), 2, actions=("left",), seed=seed)
    assert [r["real"] for r in fresh] != [r["real"] for r in at_the_evaluations]  # other worlds


@pytest.mark.parametrize("steps", ["two", "0", "-1"])
def test_a_denoise_steps_that_is_no_positive_integer_is_a_usage_error(steps, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["one_step_controls.py", str(BUNDLED), "--denoise-steps", steps])
    with pytest.raises(SystemExit):
        study.main()
    assert f"--denoise-steps must be a positive integer or 'all', got {steps!r}" in capsys.readouterr().err
