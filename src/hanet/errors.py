"""Errors shown to users: a message that names the file or field and the problem."""


class HanetError(Exception):
    """Bad input (a file, an argument, a tensor shape); the CLI prints it without a traceback."""


class DataError(HanetError, ValueError):
    """A dataset file is missing, malformed or inconsistent with another."""


class UnknownVideoError(HanetError, LookupError):
    """A video id that the index does not hold (the server answers 404).

    Attributes:
        video_id: the id asked for.
    """

    def __init__(self, video_id: object, where: object = "the index") -> None:
        super().__init__(f"{where}: no video {video_id!r}")
        self.video_id = video_id


class ShapeError(HanetError, ValueError):
    """A tensor handed to the model has the wrong shape, dtype or contents (NaN, empty)."""
