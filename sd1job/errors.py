"""The one base class for errors a user can fix: the CLI prints their message on one line."""


class UserError(Exception):
    """Bad input, bad config or an unreachable service: reported as one line, exit status 2."""
