"""The one exception type users see for bad input, bad files and impossible requests, and the one warning type."""

import os
import sys
import warnings
from pathlib import Path

#: Frames in files under this folder are the package's own; a warning names the first frame outside it.
_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


class MixlawError(ValueError):
    """Raised for invalid input: the message names the column, row or value at fault."""


class MixlawWarning(UserWarning):
    """Input that can be used but deserves a look: kept duplicate rows, a domain whose weight never varies,
    renormalised weights."""


def warn_user(message: str) -> None:
    """A :class:`MixlawWarning` attributed to the first caller outside the package: the line of the user's code that
    asked for the work, however deep inside the package the warning arose."""
    level, frame = 1, sys._getframe(0)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, MixlawWarning, stacklevel=level)
