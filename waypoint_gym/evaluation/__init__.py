"""Measuring a learned world against its ground-truth game: paired rollouts (`harness`), one module per family of
metrics (`fidelity`, `control`, `prompts`, `rewards`, `drift`) and the report that runs them all (`report`)."""

from .control import controllability, view_shift, view_zoom
from .drift import colour_stats, long_rollout_drift
from .fidelity import one_step_psnr, open_loop_psnr, psnr
from .harness import CALIBRATION_SEED, DEFAULT_CAPTIONS, EVAL_SEED, SEED_BLOCK, Harness, Pair, validation_captions
from .prompts import ThemeClassifier, prompt_following, theme_clips
from .report import TARGETS, evaluate_world, save_strips
from .rewards import calibrate_reward_threshold, open_loop_reward_events, reward_events

__all__ = [
    "CALIBRATION_SEED", "DEFAULT_CAPTIONS", "EVAL_SEED", "SEED_BLOCK", "TARGETS", "Harness", "Pair", "ThemeClassifier",
    "calibrate_reward_threshold", "colour_stats", "controllability", "evaluate_world", "long_rollout_drift",
    "one_step_psnr", "open_loop_psnr", "open_loop_reward_events", "prompt_following", "psnr", "reward_events",
    "save_strips", "theme_clips", "validation_captions", "view_shift", "view_zoom",
]
