"""Gradient episodic memory (Lopez-Paz & Ranzato 2017)."""

from __future__ import annotations

import numpy as np
import quadprog
import torch
from torch import nn

from ..data.benchmarks import Task, TaskData
from ..gradients import grad_vector, loss_gradient, set_grad
from ..memory import EpisodicMemory
from ..validation import check
from .base import Strategy


def project_gem(g: torch.Tensor, G: torch.Tensor, margin: float = 0.0, eps: float = 1e-3) -> torch.Tensor:
    """GEM's projected gradient g̃ (Lopez-Paz & Ranzato 2017, §3: the primal QP and its dual).

    g: the current gradient, shape (P,); G: one past task's memory gradient per row, (K, P).
    If every ⟨g, g_k⟩ ≥ 0, g is returned as is. Otherwise the closest gradient that does not
    increase any past task's loss, min ½‖g̃ − g‖² s.t. G g̃ ≥ 0, is found through its
    dual, a K-dimensional QP solved with ``quadprog``:

        min_v ½ vᵀ (G Gᵀ + eps·I) v + gᵀ Gᵀ v   s.t. v ≥ margin,    then g̃ = Gᵀ v + g.

    ``eps`` (1e-3 in the authors' code) makes G Gᵀ strictly positive definite. ``margin`` γ is
    their ``memory_strength``: v ≥ γ instead of v ≥ 0 ("adding a small constant γ ≥ 0 to v*
    biased the projection to updates that favoured backward transfer", §3). Writing v = γ + u,
    it is exactly the projection of g + γ Σ_k g_k onto {G g̃ ≥ 0} (for eps = 0).
    """
    if bool((G @ g >= 0).all()):
        return g
    # only K×K and K numbers go to the solver; g̃ is assembled in torch (P is the model's size)
    P = (G @ G.T).cpu().double().numpy()  # to the CPU first: MPS has no float64
    P = 0.5 * (P + P.T) + eps * np.eye(len(P))  # symmetric, as quadprog requires
    Gg = (G @ g).cpu().double().numpy()
    # quadprog.solve_qp(P, a, C, b) minimises ½ vᵀPv − aᵀv subject to Cᵀv ≥ b
    v = quadprog.solve_qp(P, -Gg, np.eye(len(P)), np.full(len(P), float(margin)))[0]
    return g + torch.from_numpy(v).to(G) @ G


class GEM(Strategy):
    """Every step, the gradient of the current batch is projected (``project_gem``) so that,
    to first order, it increases the loss on no past task's episodic memory.

    Memory (``memory.EpisodicMemory``): ``mem_size`` samples in all, split equally over the
    tasks seen so far and refilled after each task, as Hsu et al. 2018's GEM_1100. The
    gradient g_k of each past task is taken on *all* of its memory, through its own head in
    task-IL (the memory's task ids), as in the paper. ``self.projections`` counts the steps
    where a constraint was violated and the gradient was projected.

    Defaults follow Hsu et al. 2018's scripts (SGD, lr 0.01, margin 0.5; ``reproduce``);
    ``eps`` the authors' 1e-3.

    Cost: each step back-propagates every past task's memory, ``mem_size`` samples in all
    once two tasks are seen, about mem_size / batch size times a plain step (≈ 9× for 1,100
    and 128). ``memory_batch_size`` caps the samples per past task drawn at each step (an
    approximation, not in the paper: noisier constraints for a bounded cost).

    Args:
        mem_size: total episodic memory (≥ number of tasks).
        margin: γ ≥ 0, the dual variables' lower bound (``memory_strength``).
        eps: ε ≥ 0 added to the diagonal of G Gᵀ.
        memory_batch_size: samples of each past task's memory per step (None: all of it).
        options: the step's settings (``Strategy``: precision, clip_grad_norm, ...).
    """

    key = "gem"
    state_attributes = ("memory", "projections")

    def __init__(self, model: nn.Module, *, mem_size: int = 1000, margin: float = 0.5, eps: float = 1e-3,
                 memory_batch_size: int | None = None, lr: float = 0.01, optimizer: str = "sgd", **options):
        super().__init__(model, lr=lr, optimizer=optimizer, **options)
        check("mem_size", mem_size, integer=True, at_least=1, example=1000)
        self.margin = check("margin", margin, number=True, at_least=0, example=0.5)
        self.eps = check("eps", eps, number=True, at_least=0, example=1e-3)
        self.memory_batch_size = check("memory_batch_size", memory_batch_size, integer=True, at_least=1,
                                       optional=True, example=256)
        self.memory = EpisodicMemory(mem_size)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.projections = 0

    def adjust_gradients(self) -> None:
        """g → g̃ (``project_gem``) against one memory gradient g_k per past task, (K, P)."""
        if not self.memory.tasks:
            return
        g = grad_vector(self.params)
        G = torch.stack([self._memory_gradient(m) for m in self.memory.tasks])
        g_tilde = project_gem(g, G, self.margin, self.eps)
        if g_tilde is not g:
            set_grad(self.params, g_tilde)
            self.projections += 1

    def _memory_gradient(self, memory: TaskData) -> torch.Tensor:
        """g_k: the flat gradient of the loss on one past task's memory (or a random part of it)."""
        if self.memory_batch_size is not None and self.memory_batch_size < len(memory):
            memory = memory.subset(torch.randperm(len(memory), device=memory.y.device)[:self.memory_batch_size])
        with self.autocast():
            loss = self.loss(self.model(memory.x, memory.task), memory.y)
        return loss_gradient(loss, self.params)

    def after_task(self, task: Task) -> None:
        self.memory.add_task(task.train)
