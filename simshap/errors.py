"""The project's user-error type.

Everything that is the caller's to fix (a bad config key or value, a missing data file, input
of the wrong shape, NaN input, too many players for exact enumeration, an existing output
folder) raises :class:`UserError`. The command line prints these as one line,
``simshap: error: ...``, and exits with status 2; every other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = ["ExistingOutputError", "MissingFileError", "UserError"]


class UserError(ValueError):
    """A problem with the caller's input, with a message that names the problem and the fix.

    It subclasses :class:`ValueError` so that code catching ``ValueError`` keeps working.
    """


class MissingFileError(UserError, FileNotFoundError):
    """A file the caller must provide (a config, a data set, a run stage's output) is missing."""


class ExistingOutputError(UserError, FileExistsError):
    """An output exists and would be overwritten; the message names the flag that allows it."""
