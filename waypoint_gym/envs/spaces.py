"""The agent's side of the controller as a Gymnasium space.

An action is `{"keys": MultiBinary(n_keys), "mouse": Box(-1, 1, (2,))}`; checking one and turning it into the
model's control vectors is `waypoint_gym.engine.controls`.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


def action_space(n_keys: int) -> spaces.Dict:
    """Dict({"keys": MultiBinary(n_keys), "mouse": Box(-1, 1, (2,), float32)})."""
    return spaces.Dict(
        {"keys": spaces.MultiBinary(n_keys), "mouse": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)}
    )
