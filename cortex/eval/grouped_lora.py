"""Grouped LoRA: many LoRA adapters in one batch, two batched matmuls per layer.

Written here because no library we use does it off a GPU server: peft's mixed-adapter batches
(``generate(adapter_names=...)``) loop over the adapters in Python in every LoRA layer at every
token (a gather, two small matmuls, a scale and a scatter per adapter: with 8 adapters on 70
layers, about 4,000 small operations per generated token, a third of the decode time on a CPU and
as many kernel launches on a GPU), and vLLM's grouped kernels (punica) need vLLM and a GPU. This is
the same idea in plain torch: peft loads and checks the adapters exactly as before; for one batch
whose rows come in equal, contiguous segments, one segment per model, the adapters' layers are
stacked and each LoRA layer adds ``bmm(bmm(x, A), B)`` over the segments, with peft's own layers
switched off (``disable_adapter``) so that they compute the base alone.

Only plain LoRA ``Linear`` layers are grouped (no DoRA or other variants, no LoRA bias); a model
with anything else returns ``None`` from :meth:`GroupedLora.build` and the caller uses peft's
mixed batches. The arithmetic is peft's, in the adapter weights' dtype, with the scale folded into
``B`` and ranks padded with zeros (which add exact zeros); tests compare the answers with peft's.
The stacks are a second copy of the adapters' factors (small beside the base: 16 rank-16 adapters
on every projection of an 8B model hold about 4 GB in float32), and the slots of the batch being
decoded a third (:meth:`GroupedLora.routing`: filled in place per batch, so that a compiled decode step
with a static KV cache, ``Generator(kv_cache="static")``, always reads the current batch's adapters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch

BASE_SLOT = 0  # the zero adapter: rows of the bare base, and models a layer does not target


def _supported(layer, names: Sequence[str]) -> bool:
    from peft.tuners.lora.layer import Linear

    if type(layer) is not Linear:  # noqa: E721 - subclasses (quantized bases) compute differently
        return not any(n in getattr(layer, "lora_A", {}) for n in names)
    for name in names:
        if name not in layer.lora_A:
            continue
        if name in layer.lora_variant or layer.lora_bias.get(name) or getattr(layer, "use_dora", {}).get(name):
            return False
        if not isinstance(layer.lora_A[name], torch.nn.Linear) or not isinstance(layer.lora_B[name], torch.nn.Linear):
            return False
    return True


class GroupedLora:
    """The stacked LoRA factors of every attached adapter, layer by layer; slot 0 is the bare base."""

    def __init__(self, peft_model: torch.nn.Module, layers: list[tuple[torch.nn.Module, torch.Tensor, torch.Tensor]],
                 slots: dict[str, int]):
        self.peft_model = peft_model
        self.layers = layers  # (lora layer, A [slots, in, r], B [slots, r, out]) with the scale in B
        self.slots = slots  # peft adapter name -> slot

    @classmethod
    def build(cls, peft_model: torch.nn.Module, names: Sequence[str], *, rank: int = 0) -> GroupedLora | None:
        """Stacks for ``names`` (peft adapter names), or None when some layer cannot be grouped.

        Ranks are zero-padded to at least ``rank`` (the competition's ``max_rank``): a stack's width then
        does not depend on which other adapters share it, so neither does the matmul's shape."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        names = list(dict.fromkeys(names))
        tuner_layers = [m for m in peft_model.modules() if isinstance(m, BaseTunerLayer)]
        if not names or not all(_supported(m, names) for m in tuner_layers):
            return None
        slots = {name: i + 1 for i, name in enumerate(names)}
        layers = []
        with torch.no_grad():
            for layer in tuner_layers:
                mine = [n for n in names if n in getattr(layer, "lora_A", {})]
                if not mine:
                    continue
                ref = layer.lora_A[mine[0]].weight
                width = max(rank, *(layer.lora_A[n].weight.shape[0] for n in mine))
                a = torch.zeros(len(names) + 1, layer.in_features, width, dtype=ref.dtype, device=ref.device)
                b = torch.zeros(len(names) + 1, width, layer.out_features, dtype=ref.dtype, device=ref.device)
                for n in mine:
                    w_a, w_b = layer.lora_A[n].weight, layer.lora_B[n].weight  # [r, in], [out, r]
                    if w_a.dtype != ref.dtype or w_a.device != ref.device:
                        return None
                    r = w_a.shape[0]
                    a[slots[n], :, :r] = w_a.t()
                    b[slots[n], :r, :] = w_b.t() * layer.scaling[n]
                layers.append((layer, a, b))
        return cls(peft_model, layers, slots)

    @contextlib.contextmanager
    def routing(self, segments: int) -> Iterator[Callable[[Sequence[str | None]], None]]:
        """While open, a forward pass splits its rows into ``segments`` equal segments and routes segment
        ``i`` through the adapter that the yielded ``route(names)`` last put in slot ``i`` (a peft adapter
        name, or None for the bare base).

        The hooks and the slots' factors (``segments`` x each layer's stacks) are allocated once per
        context and ``route`` copies into them in place: what a forward pass reads never changes
        identity between batches, and they are marked as static addresses (as transformers' StaticCache
        marks its tensors), so a decode step captured in CUDA graphs reads them in place rather than
        copying every slot's factors into the graph at each token, and is not re-recorded per batch.
        The copy into the slots is per batch, not per token."""
        live = [(a.new_zeros(segments, *a.shape[1:]), b.new_zeros(segments, *b.shape[1:])) for _, a, b in self.layers]
        for pair in live:
            for t in pair:  # CUDA graphs read them where they are, not from a copy made at every step
                torch._dynamo.mark_static_address(t, guard=False)
        hooks = []

        def route(names: Sequence[str | None]) -> None:
            if len(names) != segments:
                raise ValueError(f"grouped LoRA: {len(names)} segments routed to {segments} slots")
            index = torch.tensor([BASE_SLOT if n is None else self.slots[n] for n in names])
            with torch.no_grad():
                for (_, a, b), (a_live, b_live) in zip(self.layers, live):
                    torch.index_select(a, 0, index.to(a.device), out=a_live)
                    torch.index_select(b, 0, index.to(b.device), out=b_live)

        try:
            for (layer, _, _), (a_live, b_live) in zip(self.layers, live):
                hooks.append(layer.register_forward_hook(_hook(a_live, b_live)))
            with self.peft_model.disable_adapter():  # peft's layers compute the base alone
                yield route
        finally:
            for h in hooks:
                h.remove()


def _hook(a: torch.Tensor, b: torch.Tensor):
    segments = a.shape[0]

    def add_lora(module, inputs, output):
        x = inputs[0]
        if x.shape[0] % segments:
            raise RuntimeError(f"grouped LoRA: {x.shape[0]} rows do not split into {segments} equal segments")
        xs = x.reshape(segments, -1, x.shape[-1]).to(a.dtype)
        return output + torch.bmm(torch.bmm(xs, a), b).reshape(output.shape).to(output.dtype)

    return add_lora


def mixed_batches(models: int, prompts: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """(model, prompt) rows in batches of a fixed composition, each a grid of whole segments: ``slots``
    model segments x the same run of ``per`` prompts, model-major.

    The composition depends only on ``batch_size`` (the competition's) and the number of prompts, never
    on how many models a validator evaluates at once: a batch with fewer models than ``slots`` is
    filled with copies of its first model's segment (rows computed and discarded), so every batch
    of a prompt run has the same shape and a row's answer does not depend on what shares its batch
    (docs/validator.md, "Validators agree")."""
    per = max(1, min(prompts, batch_size))
    slots = max(1, batch_size // per)
    out = []
    for start in range(0, prompts, per):
        chunk = range(start, min(start + per, prompts))
        for first in range(0, models, slots):
            members = list(range(first, min(first + slots, models)))
            members += members[:1] * (slots - len(members))
            out.append([(m, i) for m in members for i in chunk])
    return out


def segments_of(batch: Sequence[tuple[int, int]]) -> list[int]:
    """The model of each segment of one of ``mixed_batches``' batches, in order (its rows are model-major)."""
    per = len({i for _, i in batch})
    return [batch[j][0] for j in range(0, len(batch), per)]
