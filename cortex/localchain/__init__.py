"""The embedded chain: a bittensor v11 ``bt.Substrate`` backend over one SQLite file.

The node side only (storage, pallets, runtime API, Yuma Consensus, the epoch hook,
signed extrinsics and the MEV shield, genesis, and the ``cortex chain`` set-up
commands). Roles never import it: they reach any chain, this one included,
through ``cortex.chain.connect`` and the SDK.
"""
