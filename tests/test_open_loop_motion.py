"""studies/open_loop_motion.py: policies parse as documented, the seen and new columns follow the real view's
slide, and the study runs on a checkpoint."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from envs_support import tiny_checkpoint

SPEC = importlib.util.spec_from_file_location("open_loop_motion",
                                              Path(__file__).parents[1] / "studies" / "open_loop_motion.py")
study = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(study)


def test_policies_are_turns_and_walks_with_a_turn():
    assert study.held_action("explore") is None
    assert study.held_action("W") == (("W",), 0.0)
    assert study.held_action("turn 0.25") == ((), -0.25)
    assert study.held_action("W + turn 0.5") == (("W",), -0.5)
    for bad in ("S + turn 1", "turn left", "jump"):
        with pytest.raises(ValueError, match="unknown policy"):
            study.held_action(bad)
    pressed, mouse = study.HeldAction(2, 4, -0.5, pressed=[0]).act()
    assert pressed.tolist() == [[1, 0, 0, 0]] * 2 and mouse.tolist() == [[-0.5, 0.0]] * 2


def sliding_clips(n_steps: int, slide: int, sign: int = 1) -> dict[str, np.ndarray]:
    """Real clips of a random texture sliding `slide` px a step (right for sign 1), dreamed ones equal to them
    where the first frame's content is and flat grey where new content has come in."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    real = np.stack([np.roll(texture, sign * slide * t, axis=1) for t in range(n_steps + 1)])[None]
    dreamed = real.copy()
    for t in range(1, n_steps + 1):
        edge = slide * t
        if sign > 0:
            dreamed[0, t, :, :edge] = 128
        else:
            dreamed[0, t, :, 64 - edge:] = 128
    return {"real": real, "dreamed": dreamed, "reconstructed": real.copy()}


@pytest.mark.parametrize("sign", [1, -1])
def test_the_seen_columns_are_those_the_first_frame_showed(sign):
    rows = study.seen_and_new(sliding_clips(4, 5, sign))
    slides = [sign * 5 * t for t in range(1, 5)]
    assert [r["slide_px"] for r in rows] == pytest.approx(slides, abs=0.5)  # phase correlation, sub-pixel
    for row in rows:
        assert row["seen"]["worlds"] == 1 and row["seen"]["detail_ratio"] == pytest.approx(1.0)
        assert row["seen"]["autoencoder_detail_ratio"] == pytest.approx(1.0)
        if row["new"]["worlds"]:
            assert row["new"]["detail_ratio"] == pytest.approx(0.0)
    assert rows[0]["new"]["worlds"] == 0  # 5 px of new content leave fewer than 4 columns beside the seam
    assert rows[-1]["new"]["worlds"] == 1


def test_the_study_runs_on_a_checkpoint(tmp_path, one_torch_thread):
    folder = tiny_checkpoint(tmp_path / "ckpt", image_size=(64, 64))
    out = tmp_path / "motion.json"
    report = study.main([str(folder), "--worlds", "2", "--policies", "turn 0.5,W + turn 0.25", "--horizon", "3",
                         "--strips", str(tmp_path / "strips"), "--out", str(out)])
    assert json.loads(out.read_text()) == report
    turn, walk = report["policies"]["turn 0.5"], report["policies"]["W + turn 0.25"]
    assert len(turn["detail_ratio"]) == len(turn["psnr"]) == 4 and len(turn["seen_and_new"]) == 3
    assert "seen_and_new" not in walk  # a walk zooms the view: no columns to split
    assert sorted(p.name for p in (tmp_path / "strips").iterdir()) == ["open_loop_W_turn_0.25.png",
                                                                      "open_loop_turn_0.5.png"]
    with pytest.raises(SystemExit):
        study.main([str(folder), "--policies", "jump"])
