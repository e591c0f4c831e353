"""min_compute.yml names every built-in competition and every role, with the figures behind them."""

from __future__ import annotations

from pathlib import Path

import yaml

from cortex.protocol.competition import BUILTIN_COMPETITIONS

ROLES = ("miner", "validator", "averager")
SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "min_compute.yml").read_text())


def test_every_builtin_competition_and_role_is_sized():
    assert set(SPEC["competitions"]) == set(BUILTIN_COMPETITIONS)
    for comp, roles in SPEC["competitions"].items():
        for role in ROLES:
            entry = roles[role]
            assert "gpu" in entry, (comp, role)
            for key in ("memory_gb", "disk_gb"):
                low, high = entry[key]["minimum"], entry[key]["recommended"]
                assert 0 < low <= high, (comp, role, key)


def test_the_offline_competition_cites_measurements():
    for role in ROLES:
        assert SPEC["competitions"]["cortex-tiny"][role]["measured"], role
