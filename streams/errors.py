"""Errors a user can cause: each becomes one line on stderr and a non-zero exit."""


class UserError(Exception):
    """A problem with what the user asked for (a missing file, an unreachable broker)."""

    exit_code = 1
