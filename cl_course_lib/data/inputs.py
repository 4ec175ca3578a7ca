"""Model inputs of any nesting: a tensor (images), or a mapping / tuple / list of tensors
(a tokenizer's ``input_ids`` and ``attention_mask``), every tensor with the samples along
dimension 0. The rest of the library handles inputs only through these functions, so a
memory, a batch or an importance pass takes a dict of tensors as readily as a tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Sequence, Union

import torch

Inputs = Union[torch.Tensor, Mapping, tuple, list]


def apply(fn: Callable[[torch.Tensor], torch.Tensor], x: Inputs) -> Inputs:
    """``fn`` applied to every tensor of ``x``, keeping the structure (a mapping comes back as a dict)."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, Mapping):
        return {key: apply(fn, value) for key, value in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(apply(fn, value) for value in x)
    raise TypeError(f"model inputs must be a tensor or a dict/tuple/list of tensors; got {type(x).__name__}. "
                    "Convert them with torch.as_tensor first.")


def tensors(x: Inputs) -> list[torch.Tensor]:
    """The tensors of ``x``, in order."""
    found: list[torch.Tensor] = []
    apply(lambda t: found.append(t) or t, x)
    return found


def size(x: Inputs) -> int:
    """The number of samples (the length of dimension 0)."""
    return len(tensors(x)[0])


def device(x: Inputs) -> torch.device:
    """Where the inputs live (the device of their first tensor)."""
    return tensors(x)[0].device


def select(x: Inputs, index) -> Inputs:
    """The samples at ``index`` (a LongTensor, a slice or an int range)."""
    return apply(lambda t: t[index], x)


def to(x: Inputs, target: torch.device | str, *, non_blocking: bool = False) -> Inputs:
    """The inputs on device ``target`` (no copy for tensors already there)."""
    return apply(lambda t: t.to(target, non_blocking=non_blocking), x)


def cat(parts: Sequence[Inputs]) -> Inputs:
    """Concatenate inputs of the same structure along the samples."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(parts))
    if isinstance(first, Mapping):
        return {key: cat([p[key] for p in parts]) for key in first}
    return type(first)(cat([p[i] for p in parts]) for i in range(len(first)))


def empty_like(x: Inputs, n: int) -> Inputs:
    """Zeros for ``n`` samples shaped like the samples of ``x`` (storage of a memory buffer)."""
    return apply(lambda t: t.new_zeros((n, *t.shape[1:])), x)


def assign(store: Inputs, slots: torch.Tensor, x: Inputs, source: torch.Tensor) -> None:
    """``store[slots] = x[source]`` for every tensor, in place (dict entries matched by key)."""
    if isinstance(store, torch.Tensor):
        store[slots] = x[source]
    elif isinstance(store, Mapping):
        if set(store) != set(x):
            raise ValueError(f"inputs with keys {sorted(x)} cannot be stored where {sorted(store)} are: "
                             "every batch must have the same keys.")
        for key in store:
            assign(store[key], slots, x[key], source)
    else:
        if len(store) != len(x):
            raise ValueError(f"inputs of {len(x)} parts cannot be stored where {len(store)} are.")
        for kept, new in zip(store, x):
            assign(kept, slots, new, source)
