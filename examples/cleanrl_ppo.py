"""PPO written out in one file, CleanRL style, on a Gymnasium vector env of Waypoint worlds (no RL library).

The vector env is `gymnasium.make_vec("Waypoint-v0", vectorization_mode="vector_entry_point")`, one batched
forward pass for all envs, under `VectorDiscreteActions` (a table of key and mouse macros). Gymnasium's
next-step autoreset: the step after an episode ends resets that env, and its transition is masked out.

    python examples/cleanrl_ppo.py --world real --updates 20 --out runs/examples/cleanrl_ppo.pt
"""

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import waypoint_gym  # noqa: F401  (registers Waypoint-v0 and WaypointArena-v0)
from waypoint_gym.envs import VectorDiscreteActions

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--world", choices=["dream", "real"], default="dream", help="the bundled world or the real game")
parser.add_argument("--n-envs", type=int, default=8)
parser.add_argument("--n-steps", type=int, default=64, help="steps in each env per update")
parser.add_argument("--updates", type=int, default=20)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default="runs/examples/cleanrl_ppo.pt")
args = parser.parse_args()
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)
torch.manual_seed(args.seed)

world_id = "Waypoint-v0" if args.world == "dream" else "WaypointArena-v0"
if args.world == "dream":
    envs = gym.make_vec(world_id, num_envs=args.n_envs, vectorization_mode="vector_entry_point", max_episode_steps=64)
else:
    envs = gym.make_vec(world_id, num_envs=args.n_envs, vectorization_mode="sync", max_episode_steps=64)
envs = VectorDiscreteActions(envs)
n_actions = envs.single_action_space.n


class Agent(nn.Module):
    """Nature-CNN trunk on 64x64 RGB frames, a policy head and a value head."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                                   nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(), nn.LazyLinear(256),
                                   nn.ReLU())
        self.policy, self.value = nn.Linear(256, n_actions), nn.Linear(256, 1)

    def forward(self, obs: torch.Tensor):
        h = self.trunk(obs.permute(0, 3, 1, 2).float() / 255)  # [N, 64, 64, 3] uint8 -> [N, 256]
        return torch.distributions.Categorical(logits=self.policy(h)), self.value(h)[:, 0]


agent = Agent()
obs, _ = envs.reset(seed=args.seed)
agent(torch.as_tensor(obs))  # materialise the lazy layer
opt = torch.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5)
gamma, lam, clip = 0.97, 0.95, 0.2
T, N = args.n_steps, args.n_envs
starts = np.zeros(N, bool)  # next-step autoreset: this step only resets the env, it is not a transition
returns, episode_return = [], np.zeros(N)
for update in range(args.updates):
    buf = {k: [] for k in ("obs", "action", "logp", "value", "reward", "done", "valid")}
    for _ in range(T):
        with torch.no_grad():
            dist, value = agent(torch.as_tensor(obs))
            action = dist.sample()
        next_obs, reward, terminated, truncated, _ = envs.step(action.numpy())
        for k, v in (("obs", obs), ("action", action), ("logp", dist.log_prob(action)), ("value", value),
                     ("reward", reward), ("done", terminated), ("valid", ~starts)):
            buf[k].append(torch.as_tensor(np.asarray(v)))
        episode_return += np.where(starts, 0, reward)
        ended = terminated | truncated
        returns += episode_return[ended].tolist()
        episode_return[ended] = 0
        obs, starts = next_obs, ended
    b = {k: torch.stack(v).float() if k != "action" else torch.stack(v) for k, v in buf.items()}  # [T, N]
    with torch.no_grad():
        next_value = agent(torch.as_tensor(obs))[1]
    advantage, gae = torch.zeros(T, N), torch.zeros(N)
    for t in reversed(range(T)):  # GAE; an episode's end cuts the bootstrap
        value_next = next_value if t == T - 1 else b["value"][t + 1]
        ends_here = b["done"][t] if t == T - 1 else torch.maximum(b["done"][t], 1 - b["valid"][t + 1])
        delta = b["reward"][t] + gamma * value_next * (1 - ends_here) - b["value"][t]
        gae = delta + gamma * lam * (1 - ends_here) * gae
        advantage[t] = gae
    target = advantage + b["value"]
    flat = {k: v.reshape(T * N, *v.shape[2:]) for k, v in {**b, "advantage": advantage, "target": target}.items()}
    keep = flat["valid"] > 0
    for _ in range(4):  # epochs over the rollout, in 4 minibatches
        for rows in torch.randperm(int(keep.sum())).chunk(4):
            m = {k: v[keep][rows] for k, v in flat.items()}
            dist, value = agent(m["obs"])
            ratio = (dist.log_prob(m["action"]) - m["logp"]).exp()
            adv = (m["advantage"] - m["advantage"].mean()) / (m["advantage"].std() + 1e-8)
            policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
            loss = policy_loss + 0.5 * F.mse_loss(value, m["target"]) - 0.01 * dist.entropy().mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
            opt.step()
    recent = np.mean(returns[-20:]) if returns else float("nan")
    print(f"update {update + 1}/{args.updates}: loss {loss.item():.3f}, mean episode return {recent:.2f}")
envs.close()
torch.save(agent.state_dict(), out)
print("saved", out)
