"""Cortex: the shared core of the subnet (protocol, chain, model store, data, reward, model)."""

__version__ = "0.1.0"
