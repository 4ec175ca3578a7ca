"""Checkpoints and resume (``run(..., checkpoint_dir=...)``): a run killed with SIGKILL and
rerun gives the uninterrupted run's numbers bit for bit; other arguments are refused by
name; writes are atomic; a finished run is not trained again."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cl_course_lib as cl
from cl_course_lib import checkpoint
from cl_course_lib.data.benchmarks import split
from cl_course_lib.data.vision import load_digits
from cl_course_lib.models import MLP
from cl_course_lib.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]

# The child: replay on five digits tasks, checkpointing after each. With STALL set it stops
# in the middle of the third task (after task 2's checkpoint, several steps in) and waits to be killed.
CHILD = '''
import json, os, sys, time
import cl_course_lib as cl
from cl_course_lib.data.benchmarks import split
from cl_course_lib.data.vision import load_digits
from cl_course_lib.models import MLP
from cl_course_lib.strategies import Replay


class Stalling(Replay):
    def before_task(self, task):
        self.step_in_task = 0
        self.begun = getattr(self, "begun", []) + [task.id]
        super().before_task(task)

    def prepare_batch(self, x, y, task):
        self.step_in_task += 1
        if os.environ.get("STALL") and task == 2 and self.step_in_task == 5:
            print("stalled", flush=True)
            time.sleep(600)
        return super().prepare_batch(x, y, task)


cl.seed_everything(0)
bench = split(load_digits(), [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)], scenario="class")
strategy = Stalling(MLP(64, [32], bench.n_outputs), mem_size=100)
result = cl.run(strategy, bench, epochs=3, batch_size=32, progress=False,
                checkpoint_dir=sys.argv[1] if len(sys.argv) > 1 else None)
print(json.dumps({"acc_matrix": result.acc_matrix.values.tolist(), "losses": result.losses.tolist(),
                  "tasks_trained": strategy.begun}))
'''


def child(tmp_path, *args, stall=False):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "STALL": "1" if stall else ""}
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)


def test_a_killed_run_resumes_to_the_uninterrupted_numbers_bit_for_bit(tmp_path):
    uninterrupted = json.loads(child(tmp_path).communicate(timeout=300)[0])
    folder = tmp_path / "checkpoints"
    killed = child(tmp_path, folder, stall=True)
    assert killed.stdout.readline().strip() == "stalled"  # in task 3, after task 2's checkpoint
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    saved = torch.load(folder / checkpoint.FILE, weights_only=True)
    assert saved["progress"]["tasks"] == 2
    resumed = json.loads(child(tmp_path, folder).communicate(timeout=300)[0])
    assert uninterrupted["tasks_trained"] == [0, 1, 2, 3, 4] and resumed["tasks_trained"] == [2, 3, 4]
    assert resumed["acc_matrix"] == uninterrupted["acc_matrix"]  # floats compared exactly
    assert resumed["losses"] == uninterrupted["losses"]


def digits():
    return split(load_digits(), [(0, 1), (2, 3), (4, 5)], scenario="task")


def strategy(key="naive", seed=0, **kwargs):
    cl.seed_everything(seed)
    bench = digits()
    if key == "pnn":
        model = cl.models.ProgressiveNet(64, [16], bench.n_outputs, columns=bench.n_heads)
    else:
        model = MLP(64, [16], bench.n_outputs, heads=bench.n_heads)
    return STRATEGIES[key](model, **kwargs)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("key", ["ewc", "si", "mas", "lwf", "gem", "agem", "replay", "pnn", "cumulative"])
def test_every_kind_of_state_resumes_in_process(key, tmp_path, monkeypatch):
    """Interrupted after task 2's checkpoint (an exception in task 3), then rerun: equal to one run."""
    whole = cl.run(strategy(key), digits(), epochs=2, batch_size=32, progress=False)
    cls = STRATEGIES[key]
    original = cls.before_task

    def interrupting(self, task):
        if task.id == 2:
            raise Interrupt
        original(self, task)
    monkeypatch.setattr(cls, "before_task", interrupting)
    with pytest.raises(Interrupt):
        cl.run(strategy(key), digits(), epochs=2, batch_size=32, progress=False, checkpoint_dir=tmp_path)
    begun = []

    def recording(self, task):
        begun.append(task.id)
        original(self, task)
    monkeypatch.setattr(cls, "before_task", recording)
    rerun = strategy(key)
    torch.manual_seed(12345)  # the rerun's random state comes from the checkpoint, not from here
    resumed = cl.run(rerun, digits(), epochs=2, batch_size=32, progress=False, checkpoint_dir=tmp_path)
    assert begun == [2], "the rerun did not resume after task 2"
    assert np.array_equal(resumed.acc_matrix.values, whole.acc_matrix.values)
    assert np.array_equal(resumed.losses, whole.losses) and resumed.task_starts == whole.task_starts


def test_a_finished_run_is_read_back_not_trained_again(tmp_path, monkeypatch):
    first = cl.run(strategy(), digits(), epochs=1, progress=False, checkpoint_dir=tmp_path)
    monkeypatch.setattr(STRATEGIES["naive"], "observe", lambda *a: pytest.fail("trained again"))
    again = cl.run(strategy(), digits(), epochs=1, progress=False, checkpoint_dir=tmp_path)
    assert np.array_equal(first.acc_matrix.values, again.acc_matrix.values)


@pytest.mark.parametrize("change, named", [
    (dict(epochs=2), "its epochs is '1', this run's is '2'"),
    (dict(batch_size=64), "its batch_size is '128'"),
    (dict(lam=5.0), "its strategy arguments is 'lam=1.0'"),
    (dict(seed=1), "its model's initial weights"),
    (dict(key="mas"), "its strategy is 'EWC', this run's is 'MAS'"),
])
def test_a_checkpoint_of_other_arguments_is_refused_by_name(change, named, tmp_path):
    cl.run(strategy("ewc", lam=1.0), digits(), epochs=1, progress=False, checkpoint_dir=tmp_path)
    run_kwargs = {k: change.pop(k) for k in ("epochs", "batch_size") if k in change}
    key, seed = change.pop("key", "ewc"), change.pop("seed", 0)
    other = strategy(key, seed=seed, **({"lam": 1.0} | change))
    with pytest.raises(ValueError, match=named.replace("(", r"\(")) as error:
        cl.run(other, digits(), **({"epochs": 1} | run_kwargs), progress=False, checkpoint_dir=tmp_path)
    assert "delete" in str(error.value) and "checkpoint_dir" in str(error.value)


def test_writes_are_atomic(tmp_path, monkeypatch):
    cl.run(strategy(), digits(), epochs=1, progress=False, checkpoint_dir=tmp_path)
    before = (tmp_path / checkpoint.FILE).read_bytes()

    def failing_save(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path, {"x": "y"}, strategy(), {"tasks": 1})
    assert (tmp_path / checkpoint.FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.FILE]  # no temporary file left behind
