"""deploy/autoupdate.py against a local git remote: it pulls, reinstalls and restarts only on a new version.

A bare repository stands for the project's remote, a developer clone pushes to it, and a server
clone is what the updater keeps current. Reinstall and restart are injected and record their calls;
the pm2 side is tested with a stand-in ``pm2`` executable that logs its arguments.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.invalid",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def load_updater():
    spec = importlib.util.spec_from_file_location("autoupdate", ROOT / "deploy" / "autoupdate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


au = load_updater()


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def write_version(repo: Path, version: str) -> None:
    (repo / "cortex").mkdir(exist_ok=True)
    (repo / "cortex" / "__init__.py").write_text(f'"""Package."""\n\n__version__ = "{version}"\n')


def commit(repo: Path, message: str, **files: str) -> None:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """(dev clone, server clone), both on branch main of a bare remote at version 0.1.0."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)  # the updater's own git calls see the same isolated config
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    dev = tmp_path / "dev"
    subprocess.run(["git", "clone", "-q", str(bare), str(dev)], check=True, capture_output=True)
    git(dev, "checkout", "-q", "-b", "main")
    write_version(dev, "0.1.0")
    commit(dev, "first release", **{"README.md": "v0.1.0\n"})
    git(dev, "push", "-q", "-u", "origin", "main")
    server = tmp_path / "server"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(bare), str(server)], check=True)
    return dev, server


class Recorder:
    def __init__(self, fail: bool = False):
        self.calls: list = []
        self.fail = fail

    def reinstall(self, repo: Path) -> None:
        self.calls.append(("reinstall", repo))
        if self.fail:
            raise subprocess.CalledProcessError(1, ["pip", "install", "-e", str(repo)])

    def restart(self) -> None:
        self.calls.append(("restart",))


def test_a_commit_without_a_version_bump_changes_nothing(remote):
    dev, server = remote
    commit(dev, "docs only", **{"README.md": "better words\n"})
    git(dev, "push", "-q")
    head = git(server, "rev-parse", "HEAD")
    rec = Recorder()
    outcome = au.check_once(server, rec.reinstall, rec.restart)
    assert (outcome.old, outcome.new, outcome.updated, outcome.restarted) == ("0.1.0", "0.1.0", False, False)
    assert rec.calls == []
    assert git(server, "rev-parse", "HEAD") == head  # the running code's checkout is not touched
    assert (server / "README.md").read_text() == "v0.1.0\n"


def test_a_new_version_is_pulled_reinstalled_and_restarted_once(remote):
    dev, server = remote
    write_version(dev, "0.1.1")
    commit(dev, "release 0.1.1", **{"README.md": "v0.1.1\n"})
    git(dev, "push", "-q")
    rec = Recorder()
    outcome = au.check_once(server, rec.reinstall, rec.restart)
    assert (outcome.old, outcome.new, outcome.updated, outcome.restarted) == ("0.1.0", "0.1.1", True, True)
    assert rec.calls == [("reinstall", server), ("restart",)]
    assert git(server, "rev-parse", "HEAD") == git(dev, "rev-parse", "HEAD")
    assert (server / "README.md").read_text() == "v0.1.1\n"
    # the next check finds nothing new
    again = au.check_once(server, rec.reinstall, rec.restart)
    assert not again.updated and len(rec.calls) == 2


def test_a_failed_reinstall_puts_the_checkout_back_and_is_retried(remote):
    dev, server = remote
    before = git(server, "rev-parse", "HEAD")
    write_version(dev, "0.2.0")
    commit(dev, "release 0.2.0")
    git(dev, "push", "-q")
    broken = Recorder(fail=True)
    outcome = au.check_once(server, broken.reinstall, broken.restart)
    assert not outcome.updated and "failed" in outcome.reason
    assert broken.calls == [("reinstall", server)]  # never restarted onto a broken install
    assert git(server, "rev-parse", "HEAD") == before
    fixed = Recorder()
    assert au.check_once(server, fixed.reinstall, fixed.restart).updated
    assert fixed.calls == [("reinstall", server), ("restart",)]


def test_a_failed_restart_is_reported(remote):
    dev, server = remote
    write_version(dev, "0.1.2")
    commit(dev, "release 0.1.2")
    git(dev, "push", "-q")
    rec = Recorder()

    def restart() -> None:
        raise subprocess.CalledProcessError(1, ["pm2", "restart", "cortex-validator"])

    outcome = au.check_once(server, rec.reinstall, restart)
    assert outcome.updated and not outcome.restarted and "restart failed" in outcome.reason


def test_diverged_or_locally_edited_checkouts_are_not_updated(remote):
    dev, server = remote
    write_version(dev, "0.3.0")
    commit(dev, "release 0.3.0", **{"README.md": "v0.3.0\n"})
    git(dev, "push", "-q")
    (server / "README.md").write_text("an operator's edit\n")  # in the way of the fast-forward
    rec = Recorder()
    outcome = au.check_once(server, rec.reinstall, rec.restart)
    assert not outcome.updated and rec.calls == []
    assert (server / "README.md").read_text() == "an operator's edit\n"  # kept
    git(server, "checkout", "-q", "--", "README.md")
    commit(server, "a local commit", **{"LOCAL.md": "local\n"})  # now the branches have diverged
    outcome = au.check_once(server, rec.reinstall, rec.restart)
    assert not outcome.updated and "diverged" in outcome.reason and rec.calls == []


def test_no_upstream_is_an_error(tmp_path, monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    repo = tmp_path / "alone"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    write_version(repo, "0.1.0")
    commit(repo, "first")
    with pytest.raises(au.UpdateError):
        au.check_once(repo, Recorder().reinstall, Recorder().restart)


def fake_pm2(tmp_path: Path, running: list[str]) -> tuple[Path, Path]:
    """A ``pm2`` stand-in: ``jlist`` prints the running apps, every call is appended to a log."""
    calls = tmp_path / "pm2-calls.txt"
    script = tmp_path / "pm2"
    listing = json.dumps([{"name": n, "pm2_env": {"status": "online"}} for n in running])
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                      f"print({listing!r}) if sys.argv[1:] == ['jlist'] else None\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, calls


def test_pm2_restarts_only_our_running_apps(tmp_path):
    script, calls = fake_pm2(tmp_path, ["cortex-validator", "some-other-subnet", "cortex-averager"])
    pm2 = au.Pm2(str(script))
    assert pm2.running() == ["cortex-validator", "cortex-averager"]
    assert pm2.restart() == ["cortex-validator", "cortex-averager"]
    assert calls.read_text().splitlines() == ["jlist", "jlist", "restart cortex-validator",
                                              "restart cortex-averager"]


def test_main_once_updates_through_pm2(remote, tmp_path, monkeypatch):
    """The command as pm2 runs it, with a recorded reinstall: one check, the running apps restarted."""
    dev, server = remote
    write_version(dev, "1.0.0")
    commit(dev, "release 1.0.0")
    git(dev, "push", "-q")
    script, calls = fake_pm2(tmp_path, ["cortex-miner"])
    installed: list[Path] = []
    monkeypatch.setattr(au, "pip_reinstall", lambda repo, extras: installed.append((repo, extras)))
    assert au.main(["--repo", str(server), "--pm2", str(script), "--extras", "gpu", "--once"]) == 0
    assert installed == [(server, "gpu")]
    assert calls.read_text().splitlines() == ["jlist", "restart cortex-miner"]
    assert au.main(["--repo", str(server), "--pm2", str(script), "--once"]) == 0  # nothing new
    assert len(installed) == 1 and calls.read_text().splitlines()[-1] == "restart cortex-miner"


def test_reinstall_is_an_editable_pip_install_with_the_extras(monkeypatch, tmp_path):
    ran: list[list[str]] = []
    monkeypatch.setattr(au.subprocess, "run", lambda cmd, check: ran.append(cmd))
    au.pip_reinstall(tmp_path)
    au.pip_reinstall(tmp_path, "gpu,deepspeed")
    assert ran == [[sys.executable, "-m", "pip", "install", "--quiet", "-e", str(tmp_path)],
                   [sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{tmp_path}[gpu,deepspeed]"]]
