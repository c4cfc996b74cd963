"""Dropout with a cheaper mask draw: on the CPU torch's bernoulli costs ~1.5x one uniform draw compared with p,
forward and backward together, and dropout runs five times a training step (bench/README.md, "Speed, round two").

The model is written with plain `nn.Dropout`; `use_fast_dropout(model)` puts `FastDropout` in its place (CuteLLM
does so when it is built). Dropout holds no weights, so the state_dict is the same either way.
tests/test_fast.py pins FastDropout to nn.Dropout's statistics.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class FastDropout(nn.Dropout):
    """nn.Dropout (zero each value with probability p, scale the rest by 1/(1-p)), its mask drawn as one uniform
    number per value compared with p."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p   # float32 draws whatever x's dtype: p stays exact
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


def use_fast_dropout(model: nn.Module) -> nn.Module:
    """Replace every nn.Dropout inside `model` by a FastDropout with the same p; returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p))
    return model
