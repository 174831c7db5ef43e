"""Species embedding with the optional learned mask embedding of masked pretraining."""

from typing import Optional

import torch
from torch import Tensor, nn


class SpeciesEmbedding(nn.Module):
    """(N,) species index (into the model's ``species``) -> (N, F) features; ``mask_flag`` (N,) 0/1 adds a learned
    mask vector to flagged atoms."""

    def __init__(self, n_species: int, hidden: int) -> None:
        super().__init__()
        self.species = nn.Embedding(n_species, hidden)
        self.mask = nn.Parameter(torch.randn(hidden) * 0.1)

    def forward(self, species_index: Tensor, mask_flag: Optional[Tensor] = None) -> Tensor:
        s = self.species(species_index)
        if mask_flag is not None:
            s = s + mask_flag.to(s.dtype).unsqueeze(-1) * self.mask
        return s
