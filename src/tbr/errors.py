"""User-facing errors.

A `TbrError` is something the user can fix (bad file, unknown name, bad value). The CLI prints
it as one line and exits with status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class TbrError(Exception):
    """An error in the user's input or environment, reported as one line."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
            where += ": "
        if field is not None:
            where += f"field '{field}': "
        super().__init__(where + message)
