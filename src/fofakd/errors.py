"""The one exception type for mistakes a user can make and fix."""


class FofakdError(ValueError):
    """A user-facing error: its message is one sentence saying what is wrong and how to fix it.

    The command line prints the message alone (no traceback) and exits with status 2.
    """
