"""Auto-updater for Cortex neurons under pm2: pull, reinstall and restart only when the version changed.

Runs as its own pm2 app (deploy/ecosystem.config.js, docs/operations.md). Every ``--interval``
seconds it fetches the branch the checkout tracks and reads ``__version__`` from
``cortex/__init__.py`` at the fetched commit (with ``git show``: fetched code is never executed
before it is installed). Then:

- **same version**: nothing is touched. Commits without a version bump wait for the next release;
  pulling them would put code on disk that the running neurons have not loaded (they import some
  modules lazily), so a process could mix two versions.
- **new version**: fast-forward the checkout (``git merge --ff-only``; a diverged branch or local
  edits in the way stop the update, logged, and nothing else happens), reinstall
  (``pip install -e .[EXTRAS]`` with this interpreter), restart the neuron apps pm2 runs, then re-execute
  itself so the new updater code runs too. If the reinstall fails, the checkout goes back to where
  it was (``git reset --keep``) and the next check tries again; a failed restart is retried every
  minute (new code on disk must not stay under old processes).

Written here, not taken from a library: no package does "git fetch, compare a version, pip
install, pm2 restart"; the peer subnets each keep a script of their own for it. Standard library
only, on purpose: it must keep working when an update breaks the environment it reinstalls.
``__version__`` is read from the file the same way setup.py reads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger("cortex.autoupdate")

VERSION_FILE = "cortex/__init__.py"
VERSION_RE = re.compile(r'^__version__ = "([^"]+)"$', re.M)
APPS = ("cortex-validator", "cortex-miner", "cortex-averager")  # the neuron apps of ecosystem.config.js
REPO = Path(__file__).resolve().parents[1]


class UpdateError(Exception):
    """A check that could not complete (no upstream, fetch failed, no version in the file)."""


@dataclass(frozen=True)
class Outcome:
    """What one check found and did."""

    old: str  # the checkout's version before the check
    new: str  # the version at the tracked branch's head
    updated: bool  # pulled and reinstalled
    restarted: bool  # and the neuron apps restarted (retried by the loop until it succeeds)
    reason: str  # one line for the log


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UpdateError(f"git {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout.strip()


def version_at(repo: Path, rev: str) -> str:
    """``__version__`` of ``cortex/__init__.py`` at commit ``rev``."""
    match = VERSION_RE.search(git(repo, "show", f"{rev}:{VERSION_FILE}"))
    if match is None:
        raise UpdateError(f"no __version__ line in {VERSION_FILE} at {rev}")
    return match.group(1)


def upstream(repo: Path) -> tuple[str, str]:
    """(remote, branch) the checkout's branch tracks, e.g. ("origin", "main")."""
    ref = git(repo, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}")
    remote, _, branch = ref.partition("/")
    if not branch:
        raise UpdateError(f"the checkout's branch tracks {ref!r}, not a remote branch")
    return remote, branch


def check_once(repo: Path, reinstall: Callable[[Path], None], restart: Callable[[], None]) -> Outcome:
    """Fetch, compare versions, and update (merge, ``reinstall(repo)``, ``restart()``) only on a new one."""
    remote, branch = upstream(repo)
    git(repo, "fetch", "--quiet", remote, branch)
    target = f"{remote}/{branch}"
    old, new = version_at(repo, "HEAD"), version_at(repo, target)
    if new == old:
        return Outcome(old, new, False, False, f"version {old} is current")
    before = git(repo, "rev-parse", "HEAD")
    try:
        git(repo, "merge-base", "--is-ancestor", "HEAD", target)
    except UpdateError:
        return Outcome(old, new, False, False, f"{target} ({new}) has diverged from the checkout: not updating")
    try:
        git(repo, "merge", "--ff-only", "--quiet", target)
    except UpdateError as exc:
        return Outcome(old, new, False, False, f"cannot fast-forward to {new} (local changes in the way?): {exc}")
    try:
        reinstall(repo)
    except Exception as exc:  # any failure: put the checkout back and try again next time
        git(repo, "reset", "--keep", before)
        return Outcome(old, new, False, False, f"reinstalling {new} failed, checkout back at {old}: {exc}")
    try:
        restart()
    except Exception as exc:  # the loop retries: new code on disk must not stay with old processes
        return Outcome(old, new, True, False, f"updated {old} -> {new}, but the restart failed: {exc}")
    return Outcome(old, new, True, True, f"updated {old} -> {new}")


def pip_reinstall(repo: Path, extras: str = "") -> None:
    """``pip install -e REPO[EXTRAS]`` with the interpreter running the updater (the neurons' venv)."""
    target = f"{repo}[{extras}]" if extras else str(repo)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", target], check=True)


@dataclass(frozen=True)
class Pm2:
    """The pm2 command: which of our apps it runs, and restarting them."""

    executable: str = "pm2"
    apps: tuple[str, ...] = APPS

    def running(self) -> list[str]:
        out = subprocess.run([self.executable, "jlist"], capture_output=True, text=True, check=True).stdout
        listed = {p.get("name") for p in json.loads(out or "[]")}
        return [name for name in self.apps if name in listed]

    def restart(self, names: Iterable[str] | None = None) -> list[str]:
        names = list(self.running() if names is None else names)
        for name in names:
            subprocess.run([self.executable, "restart", name], check=True)
        return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/autoupdate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to keep up to date")
    parser.add_argument("--interval", type=float, default=900, help="seconds between checks")
    parser.add_argument("--apps", nargs="+", default=list(APPS), help="pm2 apps to restart (those running)")
    parser.add_argument("--pm2", default="pm2", help="the pm2 executable")
    parser.add_argument("--extras", default="", help="extras to reinstall with, e.g. gpu,deepspeed")
    parser.add_argument("--once", action="store_true", help="check once and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pm2 = Pm2(args.pm2, tuple(args.apps))

    def restart() -> None:
        log.info("restarted %s", ", ".join(pm2.restart()) or "no running app")

    while True:
        try:
            outcome = check_once(args.repo, lambda repo: pip_reinstall(repo, args.extras), restart)
            (log.info if outcome.restarted or not outcome.updated else log.error)(outcome.reason)
        except (UpdateError, subprocess.CalledProcessError, OSError, ValueError) as exc:
            log.error("update check failed: %s", exc)
            outcome = None
        while outcome is not None and outcome.updated and not outcome.restarted and not args.once:
            time.sleep(min(args.interval, 60))
            try:
                restart()
                outcome = Outcome(outcome.old, outcome.new, True, True, "restart retried")
            except (subprocess.CalledProcessError, OSError, ValueError) as exc:
                log.error("restart failed again: %s", exc)
        if args.once:
            return 0 if outcome is not None and (outcome.restarted or not outcome.updated) else 1
        if outcome is not None and outcome.updated:  # run the new updater code too
            os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
