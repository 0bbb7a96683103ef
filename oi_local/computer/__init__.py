"""Code execution: `Computer` runs the model's code (python, shell, javascript, ...) and speaks LMC chunks."""

from __future__ import annotations

from oi_local.computer.computer import Computer
from oi_local.computer.safe_mode import SafetyReport

__all__ = ["Computer", "SafetyReport"]
