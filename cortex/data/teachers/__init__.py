"""Teachers write the assistant completion of each sample (DESIGN.md §7)."""

from __future__ import annotations

from cortex.data.teachers.analyst import AnalystTeacher
from cortex.data.teachers.base import Teacher, TeacherError

TEACHERS = ("analyst", "analyst-words", "openrouter")


def get_teacher(name: str, **kwargs) -> Teacher:
    """``analyst`` (offline, deterministic), ``analyst-words`` (the same steps with directions instead of
    numbers) or ``openrouter`` (DeepSeek R1, needs OPENROUTER_API_KEY)."""
    name = (name or "analyst").strip().lower()
    if name == "analyst":
        return AnalystTeacher(**kwargs)
    if name == "analyst-words":
        return AnalystTeacher(words=True, **kwargs)
    if name == "openrouter":
        from cortex.data.teachers.openrouter import OpenRouterTeacher

        return OpenRouterTeacher(**kwargs)
    raise TeacherError(f"unknown teacher {name!r}: use {', '.join(TEACHERS)}")


__all__ = ["AnalystTeacher", "Teacher", "TeacherError", "get_teacher", "TEACHERS"]
