"""RL agents for waypoint-gym worlds: training, dream-versus-real evaluation, baselines and play."""
