"""Online EWC (Schwarz et al. 2018, "Progress & Compress"): one running Fisher, decayed by γ."""

from __future__ import annotations

from torch import nn

from ..data.benchmarks import Task
from ..importance import snapshot, weighted_squared_distance
from ..validation import check
from .ewc import EWC


class OnlineEWC(EWC):
    """Loss + ``λ/2 Σ_i γ F̃_i (θ_i − θ*_i)²``: one penalty, anchored at the weights after the
    latest task, with the running Fisher ``F̃_k = γ F̃_{k−1} + F_k`` (Schwarz et al. 2018,
    §2.2). γ < 1 lets old tasks fade; with γ = 1 and one past task it is exactly EWC.
    It keeps one Fisher and one anchor, where EWC keeps one of each per task.

    Args:
        gamma: γ in (0, 1], the decay of old Fisher information.
        lam, fisher_kind, fisher_samples, options: as for :class:`EWC`.
    """

    key = "online_ewc"
    state_attributes = ("running_fisher", "anchor")

    def __init__(self, model: nn.Module, *, lam: float = 1e4, gamma: float = 1.0, fisher_kind: str = "true",
                 fisher_samples: int | None = 1000, **options):
        super().__init__(model, lam=lam, fisher_kind=fisher_kind, fisher_samples=fisher_samples, **options)
        self.gamma = check("gamma", gamma, number=True, above=0, at_most=1, example=0.9)
        self.running_fisher: dict | None = None
        self.anchor: dict | None = None

    def penalty(self):
        if self.anchor is None:
            return 0.0
        return weighted_squared_distance(self.model, self.running_fisher, self.anchor,
                                         scale=self.lam / 2 * self.gamma)

    def after_task(self, task: Task) -> None:
        fisher = self.fisher(task)
        if self.running_fisher is not None:
            fisher = {name: self.gamma * old + fisher[name] for name, old in self.running_fisher.items()}
        self.running_fisher, self.anchor = fisher, snapshot(self.model)
