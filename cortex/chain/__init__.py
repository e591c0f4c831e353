"""The chain client every role uses: connecting through the bittensor SDK, and model commitments.

The embedded chain itself (the node side) lives in ``cortex.localchain``; only
``connect`` opens it, behind the SDK's ``substrate=`` seam.
"""
