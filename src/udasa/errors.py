"""One error type for bad user input, so the CLI can print it without a traceback."""
from __future__ import annotations


class InputError(ValueError):
    """Bad input that the user can fix. The message names the file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            if field is not None:
                where += f": field '{field}'"
            where += ": "
        elif field is not None:
            where = f"field '{field}': "
        super().__init__(where + message)
        self.path, self.line, self.field = path, line, field


def check_fields(config, checks: list[tuple[bool, str, str]]) -> None:
    """Raise `InputError` for the first ``(ok, field, message)`` check of ``config`` that failed."""
    for ok, name, msg in checks:
        if not ok:
            raise InputError(f"{msg} (got {getattr(config, name)!r})", field=name)


def finite_number(x) -> bool:
    """True for an int or float (not a bool) that is finite; huge integers (10**400) are not."""
    import math

    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False
