"""waypoint_gym: Gymnasium environments inside real-time generative world models (Waypoint-1 format)."""

from waypoint_gym.envs.registration import register_envs

register_envs()

try:
    from waypoint_gym.worlds import register_worlds
except ImportError:  # the ground-truth worlds are optional
    pass
else:
    register_worlds()
