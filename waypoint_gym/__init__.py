"""waypoint_gym: Gymnasium environments inside real-time generative world models (Waypoint-1 format).

Importing the package registers `Waypoint-v0`, `Waypoint-Small-v0` and the ground truth `WaypointArena-v0`.
"""

from waypoint_gym.envs.registration import register_envs
from waypoint_gym.worlds import register_worlds

register_envs()
register_worlds()
