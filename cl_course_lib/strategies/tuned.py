"""Tuned strengths of the regularisation strategies on Split MNIST (Hsu et al. 2018 protocol).

How they were found (``results/hsu2018_sweep.json`` holds every run):

    CL_COURSE_THREADS=1 python -m cl_course_lib.reproduce sweep --out results/hsu2018_sweep.json

- Protocol: Split MNIST, 5 tasks of 2 digits; MLP 784-400-400 (ReLU); Adam, lr 0.001;
  batch 128; 4 epochs per task; one seed (0); every other setting the class default.
- Grid (log-spaced): L2 λ ∈ {1e-3, 1e-2, 0.1, 1, 10}; EWC λ ∈ {10, 1e2, ..., 1e8};
  online EWC the same λ × γ ∈ {1.0, 0.9}; SI c ∈ {1, 10, 1e2, 1e3, 1e4} (ξ = 0.1);
  MAS λ ∈ {1e-2, 0.1, ..., 1e4}; each in the task-, domain- and class-IL scenarios.
- Selection: the highest average accuracy after the last task on a *validation split*:
  10% of each task's training set held out (the models trained on the other 90%). The test
  set is never used for selection, so the test accuracies of ``reproduce`` are not
  optimistic from tuning. (Hsu et al.'s public code evaluates on the MNIST test split,
  which it calls "validation"; we did not find how they chose their coefficients.)

Caveats: one seed, so differences of a point or two between grid values are noise. EWC and
online EWC have no interior peak: from λ ≈ 1e5 up, task-IL stays within a point (98.5–99.3)
and domain-IL wanders within the seed noise (57.6–62.3 for EWC), so the picks at the top of
the grid are one point of a plateau. With Adam that is expected: once the penalty's gradient
dominates on a weight, Adam's per-weight normalisation makes the step about lr whatever λ
is, so a larger λ mostly holds more of the weights with a small Fisher. (The grid first
stopped at 1e5, then at 1e7; the pick moved to the top both times.) In class-IL no value
helps (all ≈ 20%, the chance-like level of forgetting all but the last task), so the
class-IL picks there are arbitrary.
"""

from __future__ import annotations

import copy

from ..data.benchmarks import SCENARIOS
from ..validation import check

TUNED: dict[str, dict[str, dict]] = {
    "l2": {"task": {"lam": 0.01}, "domain": {"lam": 1.0}, "class": {"lam": 0.01}},
    "ewc": {"task": {"lam": 1e8}, "domain": {"lam": 1e8}, "class": {"lam": 1e4}},
    "online_ewc": {"task": {"lam": 1e8, "gamma": 0.9}, "domain": {"lam": 1e7, "gamma": 0.9},
                   "class": {"lam": 1e5, "gamma": 1.0}},
    "si": {"task": {"c": 100.0}, "domain": {"c": 1000.0}, "class": {"c": 10.0}},
    "mas": {"task": {"lam": 0.1}, "domain": {"lam": 100.0}, "class": {"lam": 0.01}},
}


def tuned(strategy: str, scenario: str) -> dict:
    """The tuned keyword arguments of ``strategy`` in ``scenario`` (a copy), e.g.
    ``EWC(model, **tuned("ewc", "task"))``."""
    check("strategy", strategy, one_of=TUNED, fix=f"Only these have tuned values: {', '.join(TUNED)}.")
    check("scenario", scenario, one_of=SCENARIOS)
    return copy.deepcopy(TUNED[strategy][scenario])
