"""Dropout with a cheaper mask draw. On the CPU torch draws its random numbers one at a time from a Mersenne
Twister, on one core: for the shipped model's five dropouts and two attention dropouts that was about a tenth of a
training step (bench/README.md, "Speed, round nine"). NumPy's SFC64 generator gives 64 random bits per call, several
times faster; its seed is drawn from torch's own generator, so `torch.manual_seed` still fixes every mask, and a run
that saves and restores torch's random state (a resumed run) draws the same masks again.

The model is written with plain `nn.Dropout`; `use_fast_dropout(model)` puts `FastDropout` in its place (CuteLLM
does so when it is built). Dropout holds no weights, so the state_dict is the same either way.
tests/test_fast.py pins FastDropout to nn.Dropout's statistics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A bool mask of `shape`, each entry True (kept) with probability 1 - p, independently.

    On the CPU: 32 random bits per entry from a NumPy SFC64 generator seeded from torch's generator, compared with
    p * 2^32 (p exact to 2^-32, finer than a float32 uniform's 2^-24). Elsewhere: torch's uniform numbers.
    """
    if p >= 1:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    if torch.device(device).type != "cpu":
        return torch.rand(shape, device=device) >= p
    n = int(np.prod(shape))
    seed = int(torch.randint(0, 2 ** 62, (1,)))              # from torch's generator: manual_seed decides it
    bits = np.random.SFC64(seed).random_raw((n + 1) // 2).view(np.uint32)[:n]   # (n,) uniform 32-bit integers
    return torch.from_numpy(bits >= np.uint32(round(p * 2 ** 32))).view(shape)


class FastDropout(nn.Dropout):
    """nn.Dropout (zero each value with probability p, scale the rest by 1/(1-p)), its mask from `keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * keep_mask(x.shape, self.p, x.device).to(x.dtype).mul_(1.0 / (1.0 - self.p))


def use_fast_dropout(model: nn.Module) -> nn.Module:
    """Replace every nn.Dropout inside `model` by a FastDropout with the same p; returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p))
    return model
