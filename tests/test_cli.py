"""`python -m cl_course_lib`: the run command's JSON contract, doctor, start-exercise."""

import json
import subprocess
import sys

import nbformat
import pytest
import torch

from cl_course_lib import __main__ as cli
from cl_course_lib.models import MLP


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cl_course_lib", *args], capture_output=True, text=True, timeout=120)


def test_run_prints_one_json_line_with_the_contract_keys():
    done = run_cli("run", "--benchmark", "split_mnist", "--scenario", "task", "--strategy", "naive",
                   "--epochs", "1", "--max-train-per-task", "300", "--hidden", "32", "--seed", "0", "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert {"acc_matrix", "acc", "bwt", "fwt", "forgetting", "train_seconds"} <= report.keys()
    assert len(report["acc_matrix"]) == 6 and all(len(row) == 5 for row in report["acc_matrix"])
    assert 0.5 < report["acc"] <= 1.0  # task-IL with two classes per task: far above chance


def test_bad_scenario_is_refused_with_the_choices():
    done = run_cli("run", "--scenario", "clas")
    assert done.returncode == 2 and "invalid choice: 'clas'" in done.stderr


def test_doctor_reports_versions_and_data():
    done = run_cli("doctor")
    assert done.returncode == 0 and "torch" in done.stdout and "mnist" in done.stdout.lower()


def make_course(tmp_path, monkeypatch):
    (tmp_path / "exercises").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["jupytext"] = {"formats": "ipynb,md:myst"}
    nbformat.write(nb, tmp_path / "exercises" / "01_demo_exercises.ipynb")
    monkeypatch.setattr(cli, "COURSE_ROOT", tmp_path)
    return tmp_path / "my_work" / "01_demo_exercises.ipynb"


def test_start_exercise_copies_without_pairing(tmp_path, monkeypatch):
    target = make_course(tmp_path, monkeypatch)
    assert cli.main(["start-exercise", "1"]) == 0
    copy = nbformat.read(target, as_version=4)
    assert copy.cells[0].source == "x = 1" and "jupytext" not in copy.metadata


def test_start_exercise_never_overwrites_the_learners_work(tmp_path, monkeypatch, capsys):
    target = make_course(tmp_path, monkeypatch)
    target.parent.mkdir()
    target.write_text("my precious work")
    assert cli.main(["start-exercise", "1"]) == 1
    assert target.read_text() == "my precious work"
    assert "already exists" in capsys.readouterr().err


def test_start_exercise_unknown_number_lists_the_available_ones(tmp_path, monkeypatch, capsys):
    make_course(tmp_path, monkeypatch)
    assert cli.main(["start-exercise", "7"]) == 2
    assert "available: 01" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["run", "--epochs", "0", "--max-train-per-task", "10"]])
def test_invalid_values_give_one_clear_line(args):
    done = run_cli(*args)
    assert done.returncode == 2 and done.stderr.startswith("error: epochs=0 is not allowed: epochs must be an int >= 1")


def test_unset_hyperparameters_take_the_tuned_values_and_flags_override_them():
    from cl_course_lib.strategies.tuned import TUNED

    args = cli.parser().parse_args(["run", "--strategy", "ewc", "--scenario", "domain"])
    strategy = cli.make_strategy(args, MLP(784, [8], 2))
    assert strategy.lam == TUNED["ewc"]["domain"]["lam"]
    args = cli.parser().parse_args(["run", "--strategy", "si", "--scenario", "task", "--si-c", "3"])
    strategy = cli.make_strategy(args, MLP(784, [8], 2, heads=5))
    assert strategy.c == 3.0


@pytest.mark.parametrize("strategy,extra", [("replay", ["--buffer", "class_balanced"]), ("gem", ["--gem-margin", "0.1"]),
                                            ("agem", []), ("lwf", ["--lwf-alpha", "2", "--temperature", "3"])])
def test_run_replay_and_distillation_strategies(strategy, extra):
    done = run_cli("run", "--scenario", "task", "--strategy", strategy, "--mem-size", "200", *extra,
                   "--epochs", "1", "--max-train-per-task", "300", "--hidden", "32", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 0.5 < report["acc"] <= 1.0 and report["settings"]["strategy"] == strategy


def test_memory_flags_reach_the_strategies():
    args = cli.parser().parse_args(["run", "--strategy", "gem", "--mem-size", "300", "--gem-margin", "0.2"])
    gem = cli.make_strategy(args, MLP(784, [8], 10))
    assert gem.memory.size == 300 and gem.margin == 0.2 and isinstance(gem.optimizer, torch.optim.SGD)
    args = cli.parser().parse_args(["run", "--strategy", "lwf", "--lwf-alpha", "3", "--temperature", "4"])
    lwf = cli.make_strategy(args, MLP(784, [8], 10))
    assert (lwf.alpha, lwf.temperature) == (3.0, 4.0) and isinstance(lwf.optimizer, torch.optim.Adam)
    args = cli.parser().parse_args(["run", "--strategy", "replay", "--buffer", "class_balanced"])
    assert cli.make_strategy(args, MLP(784, [8], 10)).buffer.size == 1000  # the default total buffer


def test_reproduce_carries_each_methods_protocol(monkeypatch):
    from cl_course_lib import reproduce

    class Built(Exception):
        """Raised by the stub of train.run: we only look at the learner run_one built."""

    def stub(learner, *args, **kwargs):
        raise Built(learner)

    monkeypatch.setattr(reproduce, "run", stub)
    with pytest.raises(Built) as built:
        reproduce.run_one("gem", "class", reproduce.HYPERPARAMETERS["gem"]["class"], max_train_per_task=10)
    gem = built.value.args[0]
    assert isinstance(gem.optimizer, torch.optim.SGD) and gem.optimizer.defaults["lr"] == 0.01
    assert gem.memory.size == 1100 and gem.margin == 0.5
    assert reproduce.PUBLISHED["gem"]["class"] == 92.20 and reproduce.PUBLISHED["replay"]["task"] == 99.40


def test_run_pnn_in_task_il_and_refuse_it_without_task_ids():
    args = ("run", "--strategy", "pnn", "--pnn-adapter", "linear", "--epochs", "1", "--max-train-per-task", "300",
            "--hidden", "32", "--json")
    done = run_cli(*args, "--scenario", "task")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 0.5 < report["acc"] <= 1.0 and report["bwt"] == 0.0 and report["settings"]["pnn_adapter"] == "linear"
    done = run_cli(*args, "--scenario", "class")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert 'PNN needs task ids: use scenario="task"' in done.stderr
