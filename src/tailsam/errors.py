"""Errors a user can cause, kept apart from bugs.

The command turns a `UserError` into one line on stderr and exit status 2;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix: the message names what, where and how."""


class DataError(UserError):
    """Data files missing, corrupt or malformed."""


class ConfigError(UserError):
    """A bad configuration value or an unknown name."""


class TailsamWarning(UserWarning):
    """Something a user should see though the command goes on (the command prints it in one line)."""
