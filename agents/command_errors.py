"""How a command fails: one line on stderr and an exit code (sysexits.h), never a traceback. Beside
agents.cli (the worker image runs it) so that the commands (tooling) can raise what it catches.
agents.cli prints the line, prefixed with the command's name."""

from __future__ import annotations

EXIT_USAGE = 2  # argparse's own code for a bad command line or option value
EXIT_NO_INPUT = 66  # a file named on the command line cannot be read
EXIT_UNAVAILABLE = 69  # Kafka or Redis cannot be reached
EXIT_CONFIG = 78  # a setting cannot be used


class CommandError(Exception):
    """Ends the command with its message and ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
