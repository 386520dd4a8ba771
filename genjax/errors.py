"""The exception types an experiment turns into an exit status.

Library code raises :class:`UsageError` with a message that names the fix; the
experiment scripts catch it, print the message alone and exit with status 2
(no traceback, nothing half-written). :class:`RunStopped` is a run that started
and had to stop (a diverging loss): one line, exit status 1.
"""


class UsageError(ValueError):
    """Bad input (a flag, a dataset name, a data directory, an output path). A ``ValueError``:
    the Python API raises it to users as one."""

    exit_code = 2


class RunStopped(RuntimeError):
    """A run stopped on its own (e.g. a non-finite loss); the message says what was kept."""

    exit_code = 1
