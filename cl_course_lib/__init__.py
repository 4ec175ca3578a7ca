"""cl_course_lib: the one small, tested library behind the continual-learning course.

    import cl_course_lib as cl
    bench = cl.benchmarks.split_mnist(scenario="class")
    model = cl.models.MLP(784, [400, 400], bench.n_outputs, heads=bench.n_heads)
    result = cl.run(cl.strategies.Naive(model), bench, epochs=4)
    result.acc_matrix.acc, result.acc_matrix.bwt
"""

from . import (checkpoint, checks, closed_form, config, costs, distillation, features, gradients, importance, memory,
               metrics,
               models, plots, strategies, validation, widgets)
from .config import by_profile, device, profile, seed_everything
from .data import benchmarks, inputs, loading, streams, vision
from .show import show_source
from .train import Result, accuracy, evaluate, run

config.apply_thread_setting()

__all__ = [
    "Result", "accuracy", "benchmarks", "by_profile", "checkpoint", "checks", "closed_form", "config", "costs", "device",
    "distillation", "evaluate", "features", "gradients", "importance", "inputs", "loading", "memory", "metrics", "models", "plots", "profile",
    "run", "seed_everything", "show_source", "strategies", "streams", "validation", "vision", "widgets",
]
