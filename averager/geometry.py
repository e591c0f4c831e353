"""Inner products of adapter updates, computed in low-rank form (never forming ``B·A``).

For updates ``ΔWᵢ = sᵢ BᵢAᵢ`` of one module, ``⟨ΔWᵢ, ΔWⱼ⟩_F = sᵢsⱼ tr((BᵢᵀBⱼ)(AⱼAᵢᵀ))``: two
(rᵢ, rⱼ) products, O(r²(in + out)) work instead of O(out·in·r). Summed over the modules both
adapters target, this gives the Gram matrix whose diagonal holds the squared norms and whose
normalised entries are the cosines ``averager.select`` uses for duplicates, outliers and clipping.
For DoRA the update measured is the directional ``s·B·A`` (the magnitudes are per-row rescalings
of the base, not part of the trained low-rank update).
"""

from __future__ import annotations

from typing import Sequence

import torch

from cortex.adapter import Adapter, LowRank


def inner(f: LowRank, g: LowRank) -> float:
    """⟨s_f B_f A_f, s_g B_g A_g⟩_F in float64."""
    bb = f.B.double().T @ g.B.double()  # (r_f, r_g)
    aa = g.A.double() @ f.A.double().T  # (r_g, r_f)
    return float(f.scale * g.scale * torch.trace(bb @ aa))


def gram(adapters: Sequence[Adapter]) -> list[list[float]]:
    """``G[i][j] = Σ_modules ⟨ΔWᵢ, ΔWⱼ⟩`` over the modules both adapters target."""
    n = len(adapters)
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            shared = adapters[i].modules.keys() & adapters[j].modules.keys()
            value = sum(inner(adapters[i].modules[m], adapters[j].modules[m]) for m in sorted(shared))
            out[i][j] = out[j][i] = value
    return out
