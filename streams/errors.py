"""The one error type the command line turns into a single line on stderr."""


class JourneyError(Exception):
    """A problem the person running journey can fix: a missing file, an unreachable broker, a busy port.

    Each folder raises its own subclass, named for what went wrong; the CLI
    prints any of them as `journey: <message>` and exits 1.
    """

    exit_code = 1
