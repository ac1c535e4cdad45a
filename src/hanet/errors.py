"""Errors shown to users: a message that names the file or field and the problem."""


class HanetError(Exception):
    """Bad input (a file, an argument, a tensor shape); the CLI prints it without a traceback."""


class DataError(HanetError, ValueError):
    """A dataset file is missing, malformed or inconsistent with another."""


class ShapeError(HanetError, ValueError):
    """A tensor handed to the model has the wrong shape, dtype or contents (NaN, empty)."""
