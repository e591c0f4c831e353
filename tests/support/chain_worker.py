"""A separate process that writes to a shared chain file (for the concurrency tests).

usage: python chain_worker.py CHAIN WALLETS NAME COUNT MODE
MODE "ops": COUNT rounds of a commitment and a weight setting from wallet NAME.
MODE "transfers": transfers between two dev accounts until killed.
"""

import sys

import bittensor as bt
import bittensor_core

from cortex.chain.connect import connect
from cortex.wallets import load_wallet

path, wallets, name, count, mode = sys.argv[1:6]
sub = connect("embedded", path)
if mode == "ops":
    wallet = load_wallet(name, "default", wallets)
    for k in range(int(count)):
        text = f"{name}-{k}".encode()
        call = bt.calls.Commitments.set_commitment(1, {"fields": [[{f"Raw{len(text)}": text}]]})
        sub.submit_call(call, wallet, signer="hotkey").raise_for_failure()
        sub.execute(bt.SetWeights(netuid=1, uids=[0, 1], weights=[1.0, float(k + 1)]), wallet).raise_for_failure()
    print("done", flush=True)
else:
    alice = bittensor_core.Keypair.create_from_uri("//Alice")
    bob = bittensor_core.Keypair.create_from_uri("//Bob").ss58_address
    print("started", flush=True)
    while True:
        sub.submit_call(bt.calls.Balances.transfer_keep_alive(bob, 10**9), alice).raise_for_failure()
