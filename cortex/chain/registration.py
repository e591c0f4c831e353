"""Is this hotkey registered, and may it validate? Checked when a neuron starts, before any work.

A validator that is not registered, or whose weights the chain would refuse, would otherwise
evaluate for minutes and fail only at ``bt.SetWeights``. The chain refuses weights on other uids
from a neuron without a validator permit (subtensor's ``NeuronNoValidatorPermit``), and each epoch
gives the permits to the ``max_validators`` largest non-zero stakes: a registered hotkey without a
permit is refused here when its stake cannot earn one at the next epoch, and warned about when it can.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import bittensor as bt

from cortex.chain.connect import EMBEDDED
from cortex.errors import CortexError

log = logging.getLogger(__name__)


class NotRegistered(CortexError):
    """The hotkey has no uid on the subnet, or the chain would refuse its weights."""


@dataclass(frozen=True)
class Standing:
    """A hotkey's place on the subnet at start."""

    uid: int
    validator_permit: bool
    stake: int  # rao, in the subnet's units
    larger_stakes: int  # neurons with more stake (the permits go to the largest)


def _hint(network: str, netuid: int, *, register: bool, stake: bool) -> str:
    """The commands that register and/or stake a hotkey on this network (the embedded chain has no btcli)."""
    if network == EMBEDDED:
        return f"`cortex chain register --netuid {netuid}{' --stake TAO' if stake else ''}` with this wallet"
    steps = ([f"`btcli subnet register --netuid {netuid}`"] if register else []) + \
        ([f"`btcli stake add --netuid {netuid}`"] if stake else [])
    return " and ".join(steps)


def require_registered(sub: bt.Subtensor, netuid: int, hotkey: str, network: str, *, role: str = "neuron") -> Standing:
    """The hotkey's standing; :class:`NotRegistered` (one line that says what to do) when it has no uid."""
    graph = sub.subnets.metagraph(netuid, commitments=False)
    if graph is None:
        raise NotRegistered(f"subnet {netuid} does not exist on this chain: check --netuid")
    me = next((n for n in graph.neurons if n.hotkey == hotkey), None)
    if me is None:
        raise NotRegistered(f"hotkey {hotkey} is not registered on subnet {netuid}: register it with "
                            f"{_hint(network, netuid, register=True, stake=role == 'validator')}, then start the {role} again")
    stake = me.total_stake.rao
    return Standing(int(me.uid), bool(me.validator_permit), stake,
                    sum(n.total_stake.rao > stake for n in graph.neurons))


def require_validator(sub: bt.Subtensor, netuid: int, hotkey: str, network: str) -> Standing:
    """:func:`require_registered`, with a permit now or one the next epoch gives (else :class:`NotRegistered`)."""
    me = require_registered(sub, netuid, hotkey, network, role="validator")
    if me.validator_permit:
        return me
    slots = int(sub.query(bt.storage.SubtensorModule.MaxAllowedValidators, [netuid]) or 0)
    if me.stake <= 0 or me.larger_stakes >= slots:
        why = "no stake" if me.stake <= 0 else f"its stake is not among the {slots} largest"
        how = _hint(network, netuid, register=False, stake=True)
        raise NotRegistered(f"hotkey {hotkey} (uid {me.uid}) has no validator permit ({why}), so the chain would "
                            f"refuse its weights: add stake with {how}, then start the validator again")
    log.warning("uid %d has no validator permit yet; the next epoch gives it one (its stake is among the %d largest): "
                "until then the chain refuses its weights", me.uid, slots)
    return me
