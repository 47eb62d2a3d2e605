"""The one exception type for mistakes a user can make and fix."""


class FofakdError(ValueError):
    """A user-facing error: its message is one sentence saying what is wrong and how to fix it.

    The command line prints the message alone (no traceback) and exits with status 2.
    """


class RunInterrupted(Exception):
    """A run stopped by SIGTERM or SIGINT after saving a checkpoint it can resume from."""

    def __init__(self, signum: int, checkpoint: str):
        super().__init__(f"stopped by signal {signum}; checkpoint saved to {checkpoint}; continue with --resume.")
        self.signum = signum
