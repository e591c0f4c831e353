"""`cortex localnet`: a whole subnet on one machine, offline (docs/localnet.md).

An embedded chain and a local model store in a work directory; an owner, miners and validators
registered through the bittensor SDK; the tiny base bootstrapped; then every miner, validator and
the averager run as their own processes through ``neurons/*.py`` for a few rounds, and the subnet's
state is summarised from the same data the leaderboard shows.
"""
