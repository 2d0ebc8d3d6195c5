"""Training Waypoint-format world models: data collection, autoencoder, world model, self-forcing post-training,
reward head and export. Measuring a trained world is `waypoint_gym.evaluation`."""

from .autoencoder import autoencoder_config, train_autoencoder
from .collect import ExplorationPolicy, collect_arena, collect_env
from .data import RecordedStarts, encode_dataset, load_chunks, load_latents, read_meta
from .export import export_checkpoint
from .reward_head import train_reward_head
from .self_forcing import SelfForcingTraining, train_self_forcing
from .world_model import WorldModelTraining, train_world_model

__all__ = [
    "ExplorationPolicy", "RecordedStarts", "SelfForcingTraining", "WorldModelTraining", "autoencoder_config",
    "collect_arena", "collect_env", "encode_dataset", "export_checkpoint", "load_chunks", "load_latents", "read_meta",
    "train_autoencoder", "train_reward_head", "train_self_forcing", "train_world_model",
]
