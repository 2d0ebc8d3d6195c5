"""Play any world by hand: `python -m agents.play [dream|real|CHECKPOINT] [--prompt ...] [--record out.mp4]`.

The same as `waypoint-gym play`; the controls are described in waypoint_gym/play.py.
"""

from waypoint_gym.cli import main

if __name__ == "__main__":
    import sys

    main(["play", *sys.argv[1:]])
