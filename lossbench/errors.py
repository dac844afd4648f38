"""Exceptions that the CLI turns into exit codes.

`InputError` is bad input or usage: the CLI prints its message on one line to stderr and exits
with code 2, without a traceback. Anything else that escapes is an internal error (exit code 1).
"""


class InputError(ValueError):
    """Bad input or usage: a file, column, option or value the user can fix."""


class RunError(ValueError):
    """A run that cannot train on its data (a sampler that cannot work on a class): the run is
    recorded as failed with this message as its reason; the other runs go on."""
