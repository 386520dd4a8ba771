"""The one exception type for bad user input.

Library code raises :class:`UsageError` with a message that names the fix; the
experiment scripts catch it, print the message alone and exit with status 2
(no traceback, nothing half-written).
"""


class UsageError(Exception):
    """Bad input (a flag, a dataset name, a data directory, an output path)."""

    exit_code = 2
