"""Log levels: the numbers, their names, and parsing of user-given levels."""

from __future__ import annotations

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40
CRITICAL = 50

LEVEL_NAMES: dict[int, str] = {
    DEBUG: "DEBUG",
    INFO: "INFO",
    WARNING: "WARNING",
    ERROR: "ERROR",
    CRITICAL: "CRITICAL",
}

_BY_NAME: dict[str, int] = {name: num for num, name in LEVEL_NAMES.items()}
_BY_NAME["WARN"] = WARNING
_BY_NAME["FATAL"] = CRITICAL


def level_name(level: int) -> str:
    """Return the upper-case name of ``level`` (``LEVEL25`` for unnamed numbers)."""
    return LEVEL_NAMES.get(level) or f"LEVEL{level}"


def parse_level(value: object) -> int:
    """Turn a level given by a user (a name or a number) into its number.

    Raises:
        ValueError: an unknown name or a number outside 0..100.
        TypeError: anything that is neither a string nor an int.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            f"level must be a level name or an int, not {type(value).__name__} ({value!r}); "
            f"valid names: {', '.join(LEVEL_NAMES.values())}"
        )
    if isinstance(value, int):
        if not 0 <= value <= 100:
            raise ValueError(f"level {value!r} is out of range: use 0 to 100 (DEBUG=10 ... CRITICAL=50)")
        return value
    found = _BY_NAME.get(value.strip().upper())
    if found is None:
        raise ValueError(f"unknown level {value!r}; valid levels: {', '.join(LEVEL_NAMES.values())} (or an int)")
    return found
