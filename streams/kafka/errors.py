"""What goes wrong between journey and the broker, said so a person can act on it."""

from streams.errors import JourneyError


class BrokerError(JourneyError):
    """The broker cannot be reached, refuses a request, or holds topics journey cannot use."""
