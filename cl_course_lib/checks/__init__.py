"""Exercise checks. ``core`` is the framework; ``chNN`` modules hold one chapter's checks."""

from .core import Check, CheckFailed, Report, expect

__all__ = ["Check", "CheckFailed", "Report", "expect"]
