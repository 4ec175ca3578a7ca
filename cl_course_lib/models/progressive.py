"""Progressive neural networks (Rusu et al. 2016): one column per task, earlier columns frozen."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..validation import check

ADAPTERS = ("mlp", "linear")


class NonlinearAdapter(nn.Module):
    """The paper's adapter into layer i of column k: ``U σ(V (α ⊙ h_{i−1}^{(<k)}))`` (eq. 2),
    with ``h^{(<k)}`` the concatenated layer-(i−1) activations of the k earlier columns
    ``(B, k·d_{i−1})``, α one learned scalar per earlier column (drawn from U(0, 0.1): the
    paper's "small random value", which adjusts for the inputs' scales), V a projection of
    all k columns together to ``width`` units (one V, as the paper's h^{(<k)} is the
    concatenation) and U the map to the layer's ``d_i`` units. No biases: the layer's own
    bias b_i holds the constant."""

    def __init__(self, n_earlier: int, d_in: int, width: int, d_out: int):
        super().__init__()
        self.alpha = nn.Parameter(0.1 * torch.rand(n_earlier))
        self.V = nn.Linear(n_earlier * d_in, width, bias=False)
        self.U = nn.Linear(width, d_out, bias=False)
        self.d_in = d_in

    def forward(self, earlier: torch.Tensor) -> torch.Tensor:
        scale = self.alpha.repeat_interleave(self.d_in)  # (k·d_in,): α_j on column j's units
        return self.U(torch.relu(self.V(earlier * scale)))


def _adapter(kind: str, n_earlier: int, d_in: int, d_out: int, reduction: int) -> nn.Module:
    if kind == "linear":  # eq. 1: Σ_j U^{(k:j)} h^{(j)} is one matrix on the concatenation
        return nn.Linear(n_earlier * d_in, d_out, bias=False)
    return NonlinearAdapter(n_earlier, d_in, math.ceil(d_in / reduction), d_out)


class ProgressiveNet(nn.Module):
    """``columns`` MLP columns ``d_0 → d_1 … d_L → d_{L+1}`` (``d_0 = in_features``,
    ``d_1..d_L = hidden``, ``d_{L+1} = n_outputs``, ReLU σ on hidden layers), one per task.
    Column k's layer i ≥ 2 also receives layer i−1 of every earlier column j < k
    (Rusu et al. 2016, eq. 1 for ``adapter="linear"``, eq. 2 for ``"mlp"``):

        h_i^{(k)} = σ(W_i^{(k)} h_{i−1}^{(k)} + b_i^{(k)} + Σ_{j<k} U_i^{(k:j)} h_{i−1}^{(j)})         (1)
        h_i^{(k)} = σ(W_i^{(k)} h_{i−1}^{(k)} + b_i^{(k)} + U_i^{(k)} σ(V_i^{(k)} α_i^{(k)} h_{i−1}^{(<k)}))  (2)

    the output layer i = L+1 included (no outer σ there: logits). Layer 1 has no lateral: its
    input x is the same for every column. The task id picks the column (task-incremental
    learning only); column k depends on columns ≤ k alone, so once those are frozen
    (``freeze_columns``: ``requires_grad`` off and eval mode, kept by ``train()``) its
    outputs never change: zero forgetting by construction.

    Every column is built up front, so the model answers for every task from the start
    (``n_heads = columns``, as the training loop's probe and its before-training row expect);
    the ``PNN`` strategy brings them into training one per task. ``parameter_count`` gives
    the size after k columns, growing quadratically in k.

    Args:
        columns: number of columns (tasks), ≥ 1.
        adapter: ``"mlp"`` (eq. 2, default) or ``"linear"`` (eq. 1).
        adapter_reduction: ρ ≥ 1; V projects the k·d_{i−1} earlier units to ⌈d_{i−1}/ρ⌉
            (ρ = 1: the paper's projection onto a d_{i−1}-dimensional subspace, whatever k).
        dropout: drop probability after every hidden ReLU (0: none).
    """

    def __init__(self, in_features: int, hidden: Sequence[int], n_outputs: int, *, columns: int,
                 adapter: str = "mlp", adapter_reduction: int = 1, dropout: float = 0.0):
        super().__init__()
        self.widths = _check_architecture(in_features, hidden, n_outputs, columns, adapter, adapter_reduction)
        check("dropout", dropout, number=True, at_least=0, below=1, example=0.0)
        self.columns = nn.ModuleList()
        for k in range(columns):
            column = nn.Module()
            column.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.widths[:-1], self.widths[1:]))
            column.laterals = nn.ModuleList(_adapter(adapter, k, a, b, adapter_reduction)
                                            for a, b in zip(self.widths[1:-1], self.widths[2:])) if k else None
            column.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
            self.columns.append(column)
        self.in_features, self.n_outputs, self.n_heads, self.n_frozen = in_features, n_outputs, columns, 0

    @staticmethod
    def parameter_count(in_features: int, hidden: Sequence[int], n_outputs: int, *, columns: int,
                        adapter: str = "mlp", adapter_reduction: int = 1) -> int:
        """Parameters of ``columns`` = K columns, in closed form (layers i = 1..L+1, r_i = ⌈d_{i−1}/ρ⌉):

            K Σ_{i=1}^{L+1} (d_{i−1} d_i + d_i)                                   the columns
          + K(K−1)/2 Σ_{i=2}^{L+1} d_{i−1} d_i                                    linear laterals, or
          + K(K−1)/2 Σ_{i=2}^{L+1} (1 + d_{i−1} r_i) + (K−1) Σ_{i=2}^{L+1} r_i d_i   mlp laterals (α, V; U)

        since column k has k earlier columns (Σ_k k = K(K−1)/2): quadratic in K."""
        d = _check_architecture(in_features, hidden, n_outputs, columns, adapter, adapter_reduction)
        k = columns
        total = k * sum(a * b + b for a, b in zip(d[:-1], d[1:]))
        for a, b in zip(d[1:-1], d[2:]):  # layers i ≥ 2: (d_{i−1}, d_i)
            r = math.ceil(a / adapter_reduction)
            pairs = k * (k - 1) // 2  # (column, earlier column) pairs
            total += pairs * a * b if adapter == "linear" else pairs * (1 + a * r) + (k - 1) * r * b
        return total

    def column_parameters(self, task: int) -> list[nn.Parameter]:
        """The parameters that train with ``task``: its column's layers and its laterals."""
        return list(self.columns[self._check_task(task)].parameters())

    def freeze_columns(self, n: int) -> None:
        """Freeze columns 0..n−1: no gradients, and eval mode (dropout off) from now on."""
        check("n", n, integer=True, at_least=0, at_most=self.n_heads,
              fix=f"Pass how many columns to freeze, from 0 to {self.n_heads}.")
        for column in self.columns[:n]:
            column.requires_grad_(False).eval()
        self.n_frozen = max(self.n_frozen, n)

    def train(self, mode: bool = True) -> "ProgressiveNet":
        """Set the mode, but frozen columns stay in eval mode (their outputs must not change)."""
        super().train(mode)
        for column in self.columns[:self.n_frozen]:
            column.eval()
        return self

    def forward(self, x: torch.Tensor, task: int | torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` of column ``task`` (an int), or of each sample's own column
        (a LongTensor of ids). Each needed column's activations are computed once per call."""
        if x[0].numel() != self.in_features:
            raise ValueError(f"this ProgressiveNet takes inputs of {self.in_features} features; got samples "
                             f"of shape {tuple(x.shape[1:])}. Build it with in_features={x[0].numel()}.")
        if task is None:
            raise ValueError("a ProgressiveNet has one column per task: pass the task id, model(x, task).")
        ids = [task] if isinstance(task, int) else [int(task.min()), int(task.max())]
        last = max(self._check_task(t) for t in ids)
        n_layers = len(self.widths) - 1
        inputs = [x.flatten(1)] * (last + 1)  # inputs[k] = h_{i−1}^{(k)}: (B, d_{i−1})
        for i in range(n_layers):
            # h_{i−1}^{(<last)}: (B, last·d_{i−1}), built once; column k reads its first k blocks
            earlier = torch.cat(inputs[:-1], dim=1) if i and last else None
            outputs = []
            for k, column in enumerate(self.columns[:last + 1]):
                z = column.layers[i](inputs[k])
                if i and k:
                    z = z + column.laterals[i - 1](earlier[:, :k * self.widths[i]])
                outputs.append(z if i == n_layers - 1 else column.dropout(torch.relu(z)))
            inputs = outputs
        if isinstance(task, int):
            return inputs[task]
        return torch.stack(inputs, dim=1)[torch.arange(len(x), device=x.device), task]  # (B, n_outputs)

    def _check_task(self, task: int) -> int:
        if not 0 <= task < self.n_heads:
            raise ValueError(f"task id {task} is beyond the {self.n_heads} column(s) built "
                             f"(ids 0..{self.n_heads - 1}). A progressive net (PNN) has one column per task, "
                             "picked by the task id, so PNN needs task ids: use scenario=\"task\" and build it "
                             "with columns=bench.n_heads.")
        return task


def _check_architecture(in_features, hidden, n_outputs, columns, adapter, adapter_reduction) -> list[int]:
    """The widths ``[d_0, …, d_{L+1}]``, after checking every argument."""
    check("in_features", in_features, integer=True, at_least=1, example=784)
    check("n_outputs", n_outputs, integer=True, at_least=1, example=10)
    check("columns", columns, integer=True, at_least=1,
          fix="Pass one column per task, e.g. columns=bench.n_heads.")
    check("adapter_reduction", adapter_reduction, integer=True, at_least=1, example=1)
    for i, width in enumerate(hidden):
        check(f"hidden[{i}]", width, integer=True, at_least=1,
              fix="Pass hidden as a list of positive layer widths, e.g. hidden=[400, 400].")
    check("adapter", adapter, one_of=ADAPTERS, fix="Use 'mlp' (Rusu et al. eq. 2) or 'linear' (eq. 1).")
    return [in_features, *hidden, n_outputs]
