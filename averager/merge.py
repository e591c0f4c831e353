"""Exact merging of LoRA and DoRA adapters into a base weight: pure tensor functions.

Every function works on one module at a time, in ``nn.Linear`` orientation: the base weight
``W`` is (out, in), an adapter's factors are ``A`` (r, in) and ``B`` (out, r) with scaling ``s``,
so its update is ``ΔW = s·B·A``. A DoRA adapter also carries a magnitude ``m`` (out,) and its
merged weight is ``diag(σ)(W + ΔW)`` with ``σ = m / rownorm(W + ΔW)`` (peft's ``weight_norm``:
the L2 norm of each output row).

A weighted merge of adapters ``i`` with weights ``wᵢ`` is the weighted average of each adapter's
merged weight, the leftover weight ``1 − Σwᵢ`` staying on the unchanged base:

    W' = Σ wᵢ diag(σᵢ)(W + ΔWᵢ) + (1 − Σ wᵢ) W  =  diag(σ̄) W + Σ wᵢ diag(σᵢ) ΔWᵢ
       = diag(σ̄)(W + ΔW*),   σ̄ = Σ wᵢ σᵢ + (1 − Σ wᵢ),   ΔW* = Σ wᵢ diag(σᵢ/σ̄) ΔWᵢ

with ``σᵢ = 1`` for a plain LoRA adapter, which gives ``W' = W + Σ wᵢ sᵢ Bᵢ Aᵢ``. See
docs/merging.md for the derivations. Nothing here averages ``A`` and ``B`` separately. The factors
(``LowRank``) come from ``cortex.adapter.load_adapter``, which builds them only from checked tensors.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from cortex.adapter import LowRank, Term

# (name, fp32 tensor) -> fp32 tensor: e.g. a 4-bit quantise/dequantise round trip of the base.
BaseTransform = Callable[[str, Tensor], Tensor]


def delta(f: LowRank) -> Tensor:
    """The dense update ``s·B·A`` (out, in)."""
    return f.scale * (f.B @ f.A)


def row_norms(W: Tensor, f: LowRank, w_sq: Tensor | None = None) -> Tensor:
    """``‖W + s·B·A‖`` per output row without forming ``B·A`` densely.

    ``‖W_o + s(BA)_o‖² = ‖W_o‖² + 2s⟨W_o, (BA)_o⟩ + s²‖(BA)_o‖²`` where ``⟨W_o, (BA)_o⟩ = Σ_k B_ok (W Aᵀ)_ok``
    and ``‖(BA)_o‖² = (B (A Aᵀ) Bᵀ)_oo``: the same O(out·in·r) work as forming ``B·A``, but only
    (out, r) and (r, r) temporaries. ``w_sq`` is ``(W*W).sum(1)`` when the caller already has it.
    """
    return _row_norms((W * W).sum(1) if w_sq is None else w_sq, W @ f.A.T, f)


def _row_norms(w_sq: Tensor, w_at: Tensor, f: LowRank) -> Tensor:
    """``row_norms`` given ``‖W_o‖²`` and ``W Aᵀ`` (out, r)."""
    cross = (f.B * w_at).sum(1)
    own = ((f.B @ (f.A @ f.A.T)) * f.B).sum(1)
    return (w_sq + 2.0 * f.scale * cross + f.scale * f.scale * own).clamp_min(0.0).sqrt()


def check_shapes(W: Tensor, terms: Sequence[Term], name: str = "weight") -> None:
    """Raise ``ValueError`` unless every term's factors fit ``W`` (out, in)."""
    if W.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D weight, got shape {tuple(W.shape)}")
    out, inp = W.shape
    for _, f in terms:
        if f.A.shape != (f.rank, inp) or f.B.shape != (out, f.rank):
            raise ValueError(f"{name}: adapter factors A{tuple(f.A.shape)} B{tuple(f.B.shape)} do not fit "
                             f"the base weight {tuple(W.shape)}")
        if f.magnitude is not None and f.magnitude.shape != (out,):
            raise ValueError(f"{name}: DoRA magnitude {tuple(f.magnitude.shape)} does not fit {out} rows")


def combine(W: Tensor | None, terms: Sequence[Term]) -> tuple[Tensor | None, Tensor, Tensor]:
    """``(σ̄, B̃, Ã)`` with ``W' = diag(σ̄) W + B̃ Ã``; ``σ̄`` is None when no term is DoRA (σ̄ ≡ 1).

    ``B̃ = [w₁ s₁ diag(σ₁) B₁ | … ]`` (out, Σr) and ``Ã = [A₁; …]`` (Σr, in). ``W`` may be None when no
    term is DoRA (the LoRA delta does not depend on the base).
    """
    if not terms:
        raise ValueError("nothing to merge: no adapter targets this module")
    A = torch.cat([f.A for _, f in terms], 0)
    if not any(f.is_dora for _, f in terms):
        return None, torch.cat([(w * f.scale) * f.B for w, f in terms], 1), A
    if W is None:
        raise ValueError("DoRA terms need the base weight")
    w_sq, w_at = (W * W).sum(1), W @ A.T  # one (out, Σr) product serves every adapter's row norms
    sigma_bar = torch.full((W.shape[0],), 1.0 - sum(w for w, _ in terms), dtype=W.dtype)
    b_parts, start = [], 0
    for w, f in terms:
        if f.is_dora:
            sigma = f.magnitude / _row_norms(w_sq, w_at[:, start:start + f.rank], f)
            b_parts.append((w * f.scale) * sigma[:, None] * f.B)
        else:
            sigma = 1.0
            b_parts.append((w * f.scale) * f.B)
        sigma_bar = sigma_bar + w * sigma
        start += f.rank
    return sigma_bar, torch.cat(b_parts, 1), A


def merge_weight(W: Tensor, terms: Sequence[Term]) -> Tensor:
    """The exact merged weight ``W'`` (see the module docstring), computed in ``W``'s dtype."""
    check_shapes(W, terms)
    sigma_bar, B, A = combine(W, terms)
    if sigma_bar is None:
        return torch.addmm(W, B, A)
    return torch.addmm(sigma_bar[:, None] * W, B, A)


def merged_delta(W: Tensor | None, terms: Sequence[Term]) -> Tensor:
    """``W' − W`` densely: ``diag(σ̄ − 1) W + B̃ Ã`` (full rank in general when any term is DoRA)."""
    sigma_bar, B, A = combine(W, terms)
    out = B @ A
    if sigma_bar is not None:
        out += (sigma_bar - 1.0)[:, None] * W
    return out


def _split(U: Tensor, S: Tensor, Vh: Tensor, rank: int) -> tuple[Tensor, Tensor, float]:
    """Top-``rank`` factors ``(B, A)`` of ``U diag(S) Vh`` (√S on each side, zero-padded) and energy kept."""
    keep = min(rank, S.numel())
    total = float((S.double() ** 2).sum())
    energy = float((S[:keep].double() ** 2).sum()) / total if total > 0 else 1.0
    root = S[:keep].sqrt()
    B = torch.zeros(U.shape[0], rank, dtype=U.dtype)
    A = torch.zeros(rank, Vh.shape[1], dtype=Vh.dtype)
    B[:, :keep] = U[:, :keep] * root
    A[:keep] = root[:, None] * Vh[:keep]
    return B, A, energy


def truncate_factors(B: Tensor, A: Tensor, rank: int) -> tuple[Tensor, Tensor, float]:
    """Best rank-``rank`` approximation of ``B @ A`` as factors, with the fraction of energy kept.

    QR of both stacked factors (``B = Q_B R_B``, ``Aᵀ = Q_A R_A``) leaves a small core ``R_B R_Aᵀ``
    whose SVD ``U S Vᵀ`` gives ``B·A = (Q_B U) S (Q_A V)ᵀ``; energy is ``Σ_{k≤r} S_k² / Σ S_k²``.
    """
    if rank < 1:
        raise ValueError(f"rank must be positive, got {rank}")
    qb, rb = torch.linalg.qr(B)
    qa, ra = torch.linalg.qr(A.T)
    U, S, Vh = torch.linalg.svd(rb @ ra.T, full_matrices=False)
    return _split(qb @ U, S, Vh @ qa.T, rank)


def rank_r_delta(W: Tensor | None, terms: Sequence[Term], rank: int) -> tuple[Tensor, Tensor, float]:
    """A rank-``rank`` LoRA ``(B, A)`` (scaling 1) of the exact merged delta ``W' − W``, and the energy kept.

    All-LoRA terms: from the stacked factors (cheap, never dense). With any DoRA term the delta has the
    full-rank part ``diag(σ̄ − 1) W``, so it is formed densely and decomposed with a dense SVD.
    """
    if rank < 1:
        raise ValueError(f"rank must be positive, got {rank}")
    if W is not None:
        check_shapes(W, terms)
    sigma_bar, B, A = combine(W, terms)
    if sigma_bar is None:
        return truncate_factors(B, A, rank)
    U, S, Vh = torch.linalg.svd(merged_delta(W, terms), full_matrices=False)
    return _split(U, S, Vh, rank)


def merge_state_dict(state: Mapping[str, Tensor], modules: Mapping[str, Sequence[Term]],
                     transform: BaseTransform | None = None) -> dict[str, Tensor]:
    """In-memory exact merge of a whole state dict (fp32 master for merged tensors).

    ``modules`` maps a module name (``model.layers.0.self_attn.q_proj``) to its terms; its weight is
    ``<module>.weight``. Untargeted tensors are returned as given (after ``transform``, if any).
    """
    missing = sorted(m for m in modules if f"{m}.weight" not in state)
    if missing:
        raise KeyError(f"modules not in the base: {missing[:5]}")
    out = {}
    for name, tensor in state.items():
        if transform is not None and tensor.is_floating_point():
            tensor = transform(name, tensor.float())
        module = name[: -len(".weight")] if name.endswith(".weight") else None
        out[name] = merge_weight(tensor.float(), modules[module]) if module in modules else tensor
    return out


def weight_warnings(weights: Sequence[float], any_dora: bool) -> list[str]:
    """Raise on non-finite weights; return warnings worth logging (e.g. DoRA weights not summing to 1)."""
    if not weights:
        raise ValueError("no adapters to merge")
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"weights must be finite, got {list(weights)}")
    notes = []
    total = sum(weights)
    if any_dora and abs(total - 1.0) > 1e-6:
        notes.append(f"DoRA weights sum to {total:g}, not 1: the remaining {1 - total:g} stays on the "
                     "unchanged base (σ = 1, ΔW = 0)")
    if any(w < 0 for w in weights):
        notes.append("negative merge weights subtract those adapters' updates")
    return notes
