"""LoRA adapters, one per task, on a frozen pretrained encoder (parameter isolation).

LoRA (Hu et al. 2022, eq. 3): a frozen weight ``W₀`` (d_out × d_in) gets a trainable
low-rank update, ``h = W₀ x + (α / r) B A x`` with ``A`` (r × d_in, random) and ``B``
(d_out × r, zeros: training starts from the pretrained function). One adapter per task
(task-incremental learning, as in per-task PEFT modules): training task t changes only
task t's ``A``, ``B`` and head, so nothing learnt for an earlier task can be overwritten.
The adapters are built with Hugging Face's ``peft`` library, one named adapter per task.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from ..validation import check
from .text import TextClassifier


class PerTaskLoRA(nn.Module):
    """A ``TextClassifier`` whose encoder is frozen and carries one LoRA adapter per task
    (``peft``'s adapters ``task_0``, ``task_1``, ...) on the ``target_modules`` (the
    attention's ``query`` and ``value`` projections by default, as Hu et al.); its
    ``heads`` (one per task) stay trainable. ``model(x, task)`` runs task ``task``'s adapter
    and head; a LongTensor of task ids runs each task's samples through their own adapter.

    Args:
        model: the classifier, with ``heads`` equal to the number of tasks.
        rank: r ≥ 1. alpha: α > 0 (the update is scaled by α / r). dropout: on the adapter's input.
        target_modules: names of the ``nn.Linear`` layers that get adapters.
    """

    def __init__(self, model: TextClassifier, *, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                 target_modules: Sequence[str] = ("query", "value")):
        from peft import LoraConfig, get_peft_model

        super().__init__()
        if not isinstance(model, TextClassifier) or model.n_heads < 2:
            raise ValueError("PerTaskLoRA needs a TextClassifier with one head per task (task-incremental): "
                             "build it with heads=bench.n_heads on a scenario='task' benchmark.")
        check("rank", rank, integer=True, at_least=1, example=8)
        check("alpha", alpha, number=True, above=0, example=16.0)
        check("dropout", dropout, number=True, at_least=0, below=1, example=0.1)
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
        with warnings.catch_warnings():  # transformers' deprecation notice inside peft: not the learner's concern
            warnings.simplefilter("ignore", FutureWarning)
            encoder = get_peft_model(model.encoder, config, adapter_name="task_0")
            for t in range(1, model.n_heads):
                encoder.add_adapter(f"task_{t}", config)
        self.encoder, self.heads, self.pooling = encoder, model.heads, model.pooling
        self.n_outputs, self.n_heads = model.n_outputs, model.n_heads
        for name, p in self.encoder.named_parameters():  # peft trains only the active adapter; we route
            p.requires_grad_("lora_" in name)

    def forward(self, x, task: int | torch.Tensor | None = None) -> torch.Tensor:
        if task is None:
            raise ValueError("PerTaskLoRA is task-incremental: pass the task id, model(x, task).")
        if isinstance(task, int):
            return self.heads(self._features(x, task), task)
        out = None
        for t in task.unique().tolist():
            rows = task == t
            logits = self.heads(self._features({k: v[rows] for k, v in x.items()}, t), t)
            out = logits.new_empty(len(task), logits.shape[1]) if out is None else out
            out[rows] = logits
        return out

    def _features(self, x, task: int) -> torch.Tensor:
        self.encoder.base_model.set_adapter(f"task_{task}")  # the active adapter: the only one applied
        for name, p in self.encoder.named_parameters():  # set_adapter freezes the others; in a batch of
            if "lora_" in name:                          # several tasks each adapter needs its gradient
                p.requires_grad_(True)
        return TextClassifier.features(self, x)

    def trainable_per_task(self) -> int:
        """Parameters one task trains: its adapter and its head."""
        adapter = sum(p.numel() for n, p in self.encoder.named_parameters() if ".task_0." in n)
        return adapter + sum(p.numel() for p in self.heads[0].parameters())
