"""Exceptions a user can act on: each names the bad input and the fix."""


class UserError(Exception):
    """An error the user can fix; the CLI prints it as one message, without a traceback."""


class JobSpecError(UserError):
    """A job spec that cannot be run as written."""
