"""Teachers write the assistant completion of each sample (DESIGN.md §7)."""

from __future__ import annotations

from cortex.data.teachers.analyst import AnalystTeacher
from cortex.data.teachers.base import Teacher, TeacherError

TEACHERS = ("analyst", "analyst-words", "analyst-blind", "analyst-words-blind", "openrouter")


def get_teacher(name: str, **kwargs) -> Teacher:
    """``analyst`` (offline, deterministic), ``analyst-words`` (the same steps with directions instead of
    numbers), either with ``-blind`` (the same traces forecasting the training base rate: no market skill)
    or ``openrouter`` (DeepSeek R1, needs OPENROUTER_API_KEY)."""
    name = (name or "analyst").strip().lower()
    if name in TEACHERS and name.startswith("analyst"):
        return AnalystTeacher(words="-words" in name, blind=name.endswith("-blind"), **kwargs)
    if name == "openrouter":
        from cortex.data.teachers.openrouter import OpenRouterTeacher

        return OpenRouterTeacher(**kwargs)
    raise TeacherError(f"unknown teacher {name!r}: use {', '.join(TEACHERS)}")


__all__ = ["AnalystTeacher", "Teacher", "TeacherError", "get_teacher", "TEACHERS"]
