"""Teachers write the assistant completion of each sample (DESIGN.md §7)."""

from __future__ import annotations

from cortex.data.teachers.analyst import AnalystTeacher
from cortex.data.teachers.base import Teacher, TeacherError

TEACHERS = ("analyst", "analyst-words", "analyst-blind", "analyst-words-blind", "openrouter")


def get_teacher(name: str, **kwargs) -> Teacher:
    """``analyst`` (offline, deterministic), ``analyst-words`` (the same steps with directions instead of
    numbers), either with ``-blind`` (the same traces forecasting the training base rate: no market skill)
    or ``openrouter`` (DeepSeek R1, needs OPENROUTER_API_KEY). An analyst name may end in ``@K`` (``K`` in
    (0, 1]): its forecasts moved only that share of the way from the base rate (the name the teacher reports)."""
    name = (name or "analyst").strip().lower()
    base, at, strength = name.partition("@")
    if base in TEACHERS and base.startswith("analyst"):
        if at:
            try:
                k = float(strength)
            except ValueError:
                k = float("nan")
            if not 0.0 < k <= 1.0:
                raise TeacherError(f"teacher {name!r}: the share after @ must be a number in (0, 1], got {strength!r}")
            kwargs.setdefault("strength", k)
        return AnalystTeacher(words="-words" in base, blind=base.endswith("-blind"), **kwargs)
    if name == "openrouter":
        from cortex.data.teachers.openrouter import OpenRouterTeacher

        return OpenRouterTeacher(**kwargs)
    raise TeacherError(f"unknown teacher {name!r}: use {', '.join(TEACHERS)} (an analyst with @K for a share K)")


__all__ = ["AnalystTeacher", "Teacher", "TeacherError", "get_teacher", "TEACHERS"]
