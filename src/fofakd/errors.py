"""The one exception type for mistakes a user can make and fix."""


class FofakdError(ValueError):
    """A user-facing error: its message is one sentence saying what is wrong and how to fix it.

    The command line prints the message alone (no traceback) and exits with status 2.
    """


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, at most `limit` characters (its type's name when it has none):
    the part of a library's error that fits inside one sentence of ours."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


class RunInterrupted(Exception):
    """A run stopped by SIGTERM or SIGINT after saving a checkpoint it can resume from."""

    def __init__(self, signum: int, checkpoint: str):
        super().__init__(f"stopped by signal {signum}; checkpoint saved to {checkpoint}; continue with --resume.")
        self.signum = signum
