"""The one exception type users see for bad input, bad files and impossible requests."""


class MixlawError(ValueError):
    """Raised for invalid input: the message names the column, row or value at fault."""
