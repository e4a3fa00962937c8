"""The one exception type users see for bad input, bad files and impossible requests, and the one warning type."""


class MixlawError(ValueError):
    """Raised for invalid input: the message names the column, row or value at fault."""


class MixlawWarning(UserWarning):
    """Input that can be used but deserves a look: kept duplicate rows, a domain whose weight never varies,
    renormalised weights."""
