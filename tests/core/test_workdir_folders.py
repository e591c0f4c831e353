"""A folder a command did not make is never emptied (cortex/workdir.py): `cortex data build --out`,
`cortex localnet --workdir`, `cortex base bootstrap --out/--store`, and the removed walkthrough. Each
refusal is one line on stderr with exit status 2, before any work, and the user's files survive."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cortex import workdir
from cortex.cli import areas, main
from cortex.errors import CortexError

OWNER = workdir.Owner("cortex test", "--out", legacy=("old.json",))
OTHER = workdir.Owner("cortex other", "--out")


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _users_folder(root: Path) -> Path:
    """The README's `work/` layout: a chain, wallets, notes of the user's own."""
    root.mkdir(parents=True)
    (root / "chain.db").write_bytes(b"SQLite format 3\x00 the user's chain")
    (root / "wallets" / "miner1" / "hotkeys").mkdir(parents=True)
    (root / "wallets" / "miner1" / "coldkey").write_text('{"secretPhrase": "the user\'s only copy"}')
    (root / "notes.md").write_text("my notes")
    return root


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# --- the rule ------------------------------------------------------------------------------------


def test_new_empty_and_own_folders_are_reused_and_marked(tmp_path):
    for folder in (tmp_path / "new" / "deep", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        assert workdir.claim(folder, OWNER) == folder.resolve()
        assert workdir.marked_by(folder) == "cortex test"
    (tmp_path / "empty" / "output.txt").write_text("made by the command")
    workdir.clear(tmp_path / "empty", OWNER)  # its own folder: emptied, the marker kept
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == [workdir.MARKER]


def test_foreign_folders_are_refused_and_survive(tmp_path):
    users = _users_folder(tmp_path / "work")
    before = _files(users)
    with pytest.raises(CortexError, match="holds files that cortex test did not make.*--force"):
        workdir.clear(users, OWNER)
    theirs = tmp_path / "theirs"
    workdir.claim(theirs, OTHER)
    with pytest.raises(CortexError, match="was made by cortex other"):
        workdir.clear(theirs, OWNER)
    (theirs / "old.json").write_text("{}")  # a legacy file does not outweigh another command's marker
    assert not workdir.owns(theirs, OWNER)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(CortexError, match="is a file"):
        workdir.clear(afile, OWNER, force=True)
    assert _files(users) == before and afile.read_text() == "x"


def test_legacy_marker_and_force(tmp_path):
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "old.json").write_text("{}")
    (legacy / "kept").mkdir()
    (legacy / "stale.txt").write_text("old output")
    workdir.clear(legacy, OWNER, keep=("kept",))
    assert sorted(p.name for p in legacy.iterdir()) == [workdir.MARKER, "kept"]
    users = _users_folder(tmp_path / "work")
    workdir.clear(users, OWNER, force=True)  # the brave asked for it
    assert sorted(p.name for p in users.iterdir()) == [workdir.MARKER]
    no_force = workdir.Owner("cortex strict", "--out", force=False)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("f")
    with pytest.raises(CortexError) as err:
        workdir.clear(tmp_path / "x", no_force, force=True)
    assert "--force" not in str(err.value) and (tmp_path / "x" / "f").exists()


def test_nested():
    assert workdir.nested("a/b", "a") and workdir.nested("a", "a/b/c") and workdir.nested("a", "a")
    assert not workdir.nested("a/b", "a/c") and not workdir.nested("ab", "a")


# --- the commands --------------------------------------------------------------------------------

BUILD = ["data", "build", "--source", "synthetic", "--assets", "BTC,ETH", "--horizons", "1", "--start", "2024-01-01",
         "--end", "2024-04-01", "--stride", "3", "--no-progress"]


def test_data_build_refuses_an_unrelated_folder(tmp_path, capsys):
    users = _users_folder(tmp_path / "work")
    before = _files(users)
    line = _refused(capsys, BUILD + ["--out", str(users)])
    assert line.startswith("cortex data: error: --out ") and "did not make" in line
    assert _files(users) == before


def test_data_build_replaces_only_its_own_output(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(BUILD + ["--out", str(out)]) == 0
    assert workdir.marked_by(out) == "cortex data build"
    assert main(BUILD + ["--out", str(out)]) == 0  # its own folder: rebuilt
    assert workdir.marked_by(out) == "cortex data build" and (out / "card.json").exists()
    capsys.readouterr()
    localnet = tmp_path / "net"
    workdir.claim(localnet, workdir.Owner("cortex localnet", "--workdir"))
    assert "was made by cortex localnet" in _refused(capsys, BUILD + ["--out", str(localnet)])


def test_localnet_refuses_the_readme_work_folder(tmp_path, capsys):
    users = _users_folder(tmp_path / "work")
    before = _files(users)
    line = _refused(capsys, ["localnet", "--workdir", str(users)])
    assert line.startswith("cortex localnet: error: --workdir ") and "did not make" in line
    assert _files(users) == before


def test_localnet_empties_its_own_folder_but_keeps_the_base(tmp_path):
    from cortex.localnet.config import Settings
    from cortex.localnet.setup import BASE_DIR, prepare_workdir

    s = Settings(workdir=tmp_path / "net")
    prepare_workdir(s)
    (s.workdir / BASE_DIR).mkdir()
    (s.workdir / BASE_DIR / "bootstrap.json").write_text("{}")
    (s.workdir / "chain.db").write_text("last run's chain")
    prepare_workdir(s)
    assert sorted(p.name for p in s.workdir.iterdir()) == [workdir.MARKER, BASE_DIR]
    older = tmp_path / "older"  # a folder an earlier version of localnet made: its plan marks it
    older.mkdir()
    (older / "localnet.json").write_text("{}")
    prepare_workdir(Settings(workdir=older))
    assert sorted(p.name for p in older.iterdir()) == [workdir.MARKER]


@pytest.mark.parametrize("layout", ["store inside out", "out inside store", "same folder"])
def test_bootstrap_refuses_a_store_nested_with_out(tmp_path, capsys, layout):
    out, store = {"store inside out": ("m", "m/store"), "out inside store": ("s/m", "s"),
                  "same folder": ("m", "m")}[layout]
    line = _refused(capsys, ["base", "bootstrap", "--out", str(tmp_path / out), "--store", f"local:{tmp_path / store}"])
    assert "lie one inside the other" in line
    assert list(tmp_path.iterdir()) == []  # refused before anything was made


def test_bootstrap_refuses_an_unrelated_out_before_any_work(tmp_path, capsys):
    users = _users_folder(tmp_path / "work")
    before = _files(users)
    line = _refused(capsys, ["base", "bootstrap", "--out", str(users), "--store", f"local:{tmp_path / 'store'}"])
    assert "did not make" in line and "--force" in line
    assert _files(users) == before and not (tmp_path / "store").exists()


def test_the_walkthrough_is_gone_and_touches_nothing(tmp_path, capsys):
    users = _users_folder(tmp_path / "work")
    before = _files(users)
    assert "walkthrough" not in {name for name, _, _ in areas()}
    with pytest.raises(SystemExit) as exit_:
        main(["walkthrough", "--workdir", str(users)])
    assert exit_.value.code == 2 and _files(users) == before
