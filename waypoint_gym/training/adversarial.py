"""An adversarial term: a patch discriminator, hinge losses, and the weight that balances them.

A network trained on squared error alone draws the mean of what it may be asked for, so fine texture (brick
mortar, moss) fades: a decoder's of what a latent may hold, a world model's of where a moved view may have
gone. A discriminator that judges 64x64 frames patch by patch (each output scores a patch of 26x26 pixels)
pushes it to draw what the real frames have. As in VQGAN (Esser et al., 2021), the adversarial gradient is
scaled to the reconstruction gradient's size at one tensor of the network (a last layer, or its output), so
one weight works whatever the loss scales are.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """Images [N, in_channels, H, W] in [-1, 1] (a frame, or frames stacked on channels) -> realness scores
    [N, 1, H / 2^levels - 2, W / 2^levels - 2], one per overlapping patch: with 2 stride-2 levels (the default)
    each score judges 26x26 pixels, with 4 levels 110x110, the whole of a 64x64 frame.

    With `condition_dim`, each image comes with a condition [N, condition_dim] (a frame pair's controls), read
    by a projection term (Miyato and Koyama, 2018): the inner product of its embedding with each patch's
    features joins the score, so a pair that does not fit its condition can score as fake."""

    def __init__(self, ch: int = 32, in_channels: int = 3, condition_dim: int = 0, levels: int = 2):
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        deeper, c = [], 2 * ch  # each halves the size again and widens the receptive field by 3 times its stride
        for _ in range(levels - 2):
            deeper += [nn.Conv2d(c, 4 * ch, 4, stride=2, padding=1), nn.GroupNorm(8, 4 * ch), nn.LeakyReLU(0.2)]
            c = 4 * ch
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # [N, ch, H/2, W/2]
            nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * ch), nn.LeakyReLU(0.2),  # H/4
            *deeper,  # [N, 4 ch, H / 2^levels, W / 2^levels]
            nn.Conv2d(c, 4 * ch, 3, padding=1), nn.GroupNorm(8, 4 * ch), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * ch, 1, 3),  # [N, 1, H / 2^levels - 2, W / 2^levels - 2]
        )
        self.embed = nn.Linear(condition_dim, 4 * ch, bias=False) if condition_dim else None

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if (condition is None) != (self.embed is None):
            raise ValueError("a discriminator built with condition_dim needs a condition, and one without takes none")
        if self.embed is None:
            return self.net(x)
        h = self.net[:-1](x)  # [N, 4 ch, H / 2^levels, W / 2^levels] each patch's features
        projection = (self.embed(condition)[:, :, None, None] * h[:, :, 1:-1, 1:-1]).sum(1, keepdim=True)
        return self.net[-1](h) + projection


class Critic:
    """A patch discriminator and its optimiser, as a training loop keeps them: one hinge update a step, and a
    state saved and resumed with the run (keys "disc" and "disc_opt")."""

    def __init__(self, lr: float, device, in_channels: int = 3, condition_dim: int = 0, levels: int = 2):
        self.net = PatchDiscriminator(in_channels=in_channels, condition_dim=condition_dim, levels=levels).to(device)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=0.0)

    def update(self, real: torch.Tensor, fake: torch.Tensor, autocast: AbstractContextManager | None = None,
               condition: torch.Tensor | None = None) -> float:
        """One step of the discriminator on real and (detached) generated images, each pair of them under one
        `condition` where the discriminator reads one; returns its loss."""
        with autocast or nullcontext():
            loss = discriminator_loss(self.net(real, condition), self.net(fake.detach(), condition))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()

    def state_dict(self) -> dict:
        return {"disc": self.net.state_dict(), "disc_opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["disc"])
        self.opt.load_state_dict(state["disc_opt"])


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Hinge loss: real patches scored above 1, decoded ones below -1."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The decoder's side of the hinge game: raise its patches' scores."""
    return -fake_scores.mean()


def balanced_weight(reconstruction: torch.Tensor, adversarial: torch.Tensor, last_layer: torch.Tensor,
                    adversarial_at: torch.Tensor | None = None, max_weight: float = 1e4) -> torch.Tensor:
    """|d reconstruction / d last_layer| / |d adversarial / d last_layer|, detached: the adversarial term's
    gradient at `last_layer` (a parameter, or any tensor both losses depend on) then has the reconstruction
    gradient's norm (times the caller's weight). Where the adversarial term judges other outputs of the network
    (frames it generated itself), `adversarial_at` names them and its gradient there is matched instead."""
    g_rec = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adversarial, last_layer if adversarial_at is None else adversarial_at,
                                retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(max=max_weight).detach()
