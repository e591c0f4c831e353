"""The project's error base: every user-facing failure is one line that says what to do."""


class CortexError(Exception):
    """A failure the user can act on. The CLI prints ``str(exc)`` alone, never a traceback."""
