"""Errors a user can cause. The CLI prints them as one line and exits non-zero; anything else is a bug."""


class UserError(Exception):
    """Bad input, bad config, a missing port or file: something the user can fix."""

    exit_code = 2


class ConfigError(UserError):
    pass


class InputError(UserError):
    pass
