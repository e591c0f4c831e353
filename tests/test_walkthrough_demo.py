"""`make demo` (for now `cortex walkthrough`) runs and prints the subnet's state."""

from cortex.cli import main


def test_walkthrough_runs(tmp_path, capsys):
    assert main(["walkthrough", "--workdir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "validators verified 4 of 4 commitments" in out
    assert out.count("cx1:a:cortex-tiny:miner") == 4
    assert "validator0" in out and "after 2 epochs" in out
