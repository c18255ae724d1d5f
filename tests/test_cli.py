"""`python -m lecture13`: every command has --help, and the data/train/evaluate/sample commands work."""
import subprocess
import sys

import pytest

from lecture13.__main__ import main

from notebook_tools import ROOT


@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "release", "data"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage" in capsys.readouterr().out


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "lecture13", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "train" in result.stdout and "release" in result.stdout


def test_data_command_reports_the_embedded_subset(capsys):
    assert main(["data"]) == 0
    assert "checksum ok, 10000 train / 2000 test" in capsys.readouterr().out


def test_train_evaluate_sample_round_trip(tmp_path, capsys):
    out = tmp_path / "f.pt"
    assert main(["train", "factorized", "--subset", "embedded", "--out", str(out), "--no-progress"]) == 0
    assert out.exists()
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    assert '"nll_nats": 382.' in capsys.readouterr().out
    png = tmp_path / "s.png"
    assert main(["sample", str(out), "--n", "16", "--out", str(png)]) == 0 and png.stat().st_size > 1000


def test_bad_names_give_an_error_not_a_traceback(capsys):
    assert main(["evaluate", "no-such-model"]) == 2
    assert "no shipped checkpoint named 'no-such-model'" in capsys.readouterr().err
    assert main(["train", "no-such-recipe"]) == 2


def test_train_list(capsys):
    assert main(["train", "--list"]) == 0
    assert "factorized" in capsys.readouterr().out
