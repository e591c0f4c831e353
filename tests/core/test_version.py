"""The package's one version and the weights version key derived from it."""

import subprocess
import sys
from pathlib import Path

import pytest

from cortex import WEIGHTS_VERSION_KEY, __version__, version_key

ROOT = Path(__file__).resolve().parents[2]


def test_key_follows_the_version():
    assert version_key("0.1.0") == 1_000
    assert version_key("1.2.3") == 1_002_003
    assert WEIGHTS_VERSION_KEY == version_key(__version__)


def test_key_is_strictly_increasing_with_the_version():
    versions = ["0.1.9", "0.1.10", "0.2.0", "0.10.0", "0.999.999", "1.0.0", "2.0.1"]
    keys = [version_key(v) for v in versions]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


@pytest.mark.parametrize("bad", ["0.1", "0.1.0rc1", "v0.1.0", "0.1000.0", "0.1.1000", ""])
def test_malformed_versions_are_refused(bad):
    with pytest.raises(ValueError):
        version_key(bad)


def test_setup_reads_the_same_version():
    """setup.py takes the version from cortex/__init__.py, not a second literal."""
    done = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == __version__


def test_validators_send_the_derived_key():
    from validator.config import WEIGHTS_VERSION

    assert WEIGHTS_VERSION == WEIGHTS_VERSION_KEY
