"""cl_course_lib: the one small, tested library behind the continual-learning course."""

from . import checks, config
from .config import by_profile, device, profile, seed_everything
from .show import show_source

config.apply_thread_setting()

__all__ = ["by_profile", "checks", "config", "device", "profile", "seed_everything", "show_source"]
