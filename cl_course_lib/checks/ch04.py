"""Checks for chapter 4's exercises: reservoir sampling (algorithm R) and A-GEM's projection.

The reservoir check hands the learner a ``draw(n)`` function (uniform on {0, …, n − 1}) that
records its calls, so it can test *how* the function draws (one draw per item once the memory is
full, ``draw(i + 1)`` for item i, no other randomness) and compare it slot by slot with the
library's ``memory.ReservoirBuffer`` given the same draws; over many seeded runs it tests that
every item is kept with probability size / N. The projection check compares with
``strategies.agem.project_agem`` and tests that the inputs are left unchanged. Every random
number comes from a local generator: the caller's random state is left alone.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ..memory import ReservoirBuffer
from ..strategies.agem import project_agem
from .core import Check, Report, expect

# --------------------------------------------------------------------------------------
# Exercise 1: reservoir sampling


class _Draw:
    """``draw(n)``: an int uniform on {0, …, n − 1} from a seeded local generator; records every call."""

    def __init__(self, seed: int):
        self._rng = random.Random(seed)
        self.calls: list[tuple[int, int]] = []  # (n, value)

    def __call__(self, n) -> int:
        n = int(n)
        if n < 1:
            raise ValueError(f"draw(n) needs n ≥ 1; got {n}.")
        value = self._rng.randrange(n)
        self.calls.append((n, value))
        return value


def _memory(value, size: int) -> list:
    """The learner's memory as a list of ``size`` items, or a failed case."""
    expect(value is not None, "Return the memory; your function returned None (a missing `return`?).")
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    expect(isinstance(value, (list, tuple)), f"Return the memory as a list (or tensor); got {type(value).__name__}.")
    value = list(value)
    expect(len(value) == size, f"The memory has {size} slots; you returned {len(value)} items. Start from "
                               "[None] * size and write into slots, never append.")
    return [int(v) if isinstance(v, (int, np.integer)) else v for v in value]


def _reference_reservoir(stream, size, draw) -> list:
    memory = [None] * size
    for i, item in enumerate(stream):
        if i < size:
            memory[i] = item
        else:
            j = draw(i + 1)
            if j < size:
                memory[j] = item
    return memory


def _global_states():
    return random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()


def _same_states(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


def check_reservoir_sample(reservoir_sample) -> Report:
    """``reservoir_sample(stream, size, draw) -> list``: algorithm R, slot by slot."""
    check = Check("reservoir_sample")

    @check.case("while the memory is filling, item i goes to slot i, with no draw")
    def _():
        stream, draw = list(range(100, 106)), _Draw(0)
        got = _memory(reservoir_sample(stream, 6, draw), 6)
        expect(not draw.calls, f"A stream of 6 items and a memory of 6 slots needs no random number, but you "
                               f"called draw {len(draw.calls)} times: while i < size, keep item i in slot i.")
        expect(got == stream, f"Expected the memory {stream}; got {got}. Item i goes to slot i while i < size.")

    @check.case("how: one draw per item once the memory is full, draw(i + 1) for item i, and no other randomness")
    def _():
        n, size = 60, 10
        draw, before = _Draw(1), _global_states()
        _memory(reservoir_sample(list(range(n)), size, draw), size)
        expect(_same_states(before, _global_states()),
               "Your function used the global random generator (random, numpy or torch): draw every random "
               "number with the `draw` function you are given, so that the result is reproducible and checkable.")
        expect(len(draw.calls) == n - size,
               f"For {n} items and {size} slots, algorithm R draws once for each of the {n - size} items that "
               f"arrive after the memory is full (i = {size}, …, {n - 1}); you called draw {len(draw.calls)} times.")
        asked = [call[0] for call in draw.calls]
        if asked == list(range(size, n)):
            expect(False, "Off by one: for item i (counting from 0) draw j uniformly from {0, …, i}, i.e. draw(i + 1). "
                          "With draw(i) item i is kept with probability size / i instead of size / (i + 1): too often.")
        if all(a == size for a in asked):
            expect(False, "You drew a slot with draw(size) for every item, so every item is kept. Draw j with "
                          "draw(i + 1) and keep the item only when j < size: that is what makes the probability size/(i+1).")
        expect(asked == list(range(size + 1, n + 1)),
               f"Item i must call draw(i + 1) (uniform on {{0, …, i}}); your first calls were draw{tuple(asked[:3])}, "
               f"expected draw{tuple(range(size + 1, size + 4))}.")

    @check.case("with the same draws, the same items in the same slots as the library's ReservoirBuffer")
    def _():
        for seed, (n, size) in enumerate([(200, 20), (57, 7)], start=2):
            stream, draw = list(range(1000, 1000 + n)), _Draw(seed)
            got = _memory(reservoir_sample(stream, size, draw), size)
            if sorted(v for v in got if v is not None) == stream[-size:]:
                expect(False, "Your memory holds the last items of the stream: that is 'replace the oldest' (FIFO), "
                              "which forgets every old task. Replace slot j = draw(i + 1) only when j < size.")
            values = [value for _, value in draw.calls]
            expect(len(values) == n - size, "Draw once per item after the memory is full (see the case above).")
            draws = torch.tensor([0] * size + values, dtype=torch.long)
            buffer = ReservoirBuffer(size)
            buffer.add(torch.zeros(n, 1), torch.tensor(stream), 0, draws=draws)
            want = buffer.y.tolist()
            differ = [k for k, (a, b) in enumerate(zip(got, want)) if a != b]
            expect(not differ, f"Slots differ from algorithm R with the same draws (first at slot "
                               f"{differ[0] if differ else 0}): for i ≥ size, j = draw(i + 1); if j < size, "
                               "memory[j] = item.")

    @check.case("every item of the stream is kept with probability size / N (3,000 seeded runs)")
    def _():
        n, size, runs = 12, 4, 3000
        kept = np.zeros(n)
        for seed in range(runs):
            memory = _memory(reservoir_sample(list(range(n)), size, _Draw(10_000 + seed)), size)
            for item in memory:
                if isinstance(item, int) and 0 <= item < n:
                    kept[item] += 1
        frequency = kept / runs
        sd = np.sqrt(size / n * (1 - size / n) / runs)
        expect(np.abs(frequency - size / n).max() < 5 * sd,
               f"Expected every item kept in {size / n:.3f} of the runs; yours range from {frequency.min():.3f} to "
               f"{frequency.max():.3f} (first item {frequency[0]:.3f}, last {frequency[-1]:.3f}). "
               "Keep item i with probability size/(i + 1), in a uniformly random slot.")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 2: A-GEM's projection


def _vectors(seed: int, n: int, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded pair (g, g_ref) whose dot product has the given sign."""
    generator = torch.Generator().manual_seed(seed)
    g, g_ref = torch.randn(n, generator=generator), torch.randn(n, generator=generator)
    if torch.sign(g @ g_ref).item() != sign:
        g_ref = -g_ref
    return g, g_ref


def _projected(value, g: torch.Tensor) -> torch.Tensor:
    expect(value is not None, "Return g̃; your function returned None (a missing `return`?).")
    expect(isinstance(value, torch.Tensor), f"Return g̃ as a torch tensor; got {type(value).__name__}.")
    expect(value.shape == g.shape, f"g̃ has the shape of g, {tuple(g.shape)}; got {tuple(value.shape)}.")
    return value.detach()


def _projection_hints(got, g, g_ref) -> None:
    dot = g @ g_ref
    want = project_agem(g, g_ref)
    if torch.allclose(got, g + (dot / (g_ref @ g_ref)) * g_ref, rtol=1e-4, atol=1e-6):
        expect(False, "Wrong sign: g̃ = g − (g·g_ref / g_ref·g_ref) g_ref. With +, g̃·g_ref = 2 g·g_ref, "
                      "more negative than before: the step would raise the memory loss even more.")
    if torch.allclose(got, g - (dot / (g @ g)) * g_ref, rtol=1e-4, atol=1e-6):
        expect(False, "Divide by g_ref·g_ref (‖g_ref‖²), not by g·g (‖g‖²): only then is g̃·g_ref = 0, the "
                      "closest point on the constraint's boundary.")
    if torch.allclose(got, g - (dot / (g @ g)) * g, rtol=1e-4, atol=1e-6):
        expect(False, "You removed a multiple of g: subtract the component of g along g_ref, "
                      "(g·g_ref / g_ref·g_ref) g_ref.")
    expect(torch.allclose(got, want, rtol=1e-4, atol=1e-6),
           "g̃ differs from eq. 11: g̃ = g − (g·g_ref / g_ref·g_ref) g_ref when g·g_ref < 0.")


def check_agem_project(agem_project) -> Report:
    """``agem_project(g, g_ref) -> tensor``: A-GEM's projected gradient (Chaudhry et al. 2019, eq. 11)."""
    check = Check("agem_project")

    @check.case("no projection when g·g_ref ≥ 0: g̃ = g")
    def _():
        for seed, (g, g_ref) in enumerate([_vectors(0, 50, +1), (torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))]):
            got = _projected(agem_project(g.clone(), g_ref.clone()), g)
            expect(torch.allclose(got, g, rtol=1e-6, atol=1e-7),
                   f"Here g·g_ref = {(g @ g_ref).item():.3g} ≥ 0: the step already does not increase the memory loss "
                   "(to first order), so A-GEM leaves g as it is. Project only when g·g_ref < 0.")

    @check.case("when g·g_ref < 0: g̃ = g − (g·g_ref / g_ref·g_ref) g_ref (eq. 11)")
    def _():
        g, g_ref = torch.tensor([-1.0, 0.5]), torch.tensor([0.5, 0.5])
        _projection_hints(_projected(agem_project(g.clone(), g_ref.clone()), g), g, g_ref)
        g, g_ref = _vectors(1, 40, -1)
        g_ref = 3.0 * g_ref  # ‖g_ref‖ ≠ ‖g‖, so the denominators differ
        _projection_hints(_projected(agem_project(g.clone(), g_ref.clone()), g), g, g_ref)

    @check.case("how: on a 100,000-weight gradient, g̃·g_ref = 0 and g and g_ref are left unchanged")
    def _():
        g, g_ref = _vectors(2, 100_000, -1)
        g_in, g_ref_in = g.clone(), g_ref.clone()
        got = _projected(agem_project(g_in, g_ref_in), g)
        expect(torch.equal(g_in, g) and torch.equal(g_ref_in, g_ref),
               "Your function changed its inputs in place (e.g. g -= ...): the trainer still needs g and g_ref. "
               "Build a new tensor: g - coefficient * g_ref.")
        residual = (got @ g_ref).abs().item() / (g.norm() * g_ref.norm()).item()
        expect(residual < 1e-5, f"g̃·g_ref should be 0 after the projection (relative {residual:.2g}): "
                                "the projected step lies on the boundary of the half-space g̃·g_ref ≥ 0.")
        _projection_hints(got, g, g_ref)

    return check.run()
