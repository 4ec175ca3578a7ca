"""Naive fine-tuning: train on each task in turn with nothing against forgetting (the lower bound)."""

from .base import Strategy


class Naive(Strategy):
    """Plain sequential training; every hook is the base class's. The lower bound every
    method must beat."""

    key = "naive"
