"""Commands whose output pipe closes (`ganfriends-coordinator status | head -3`) exit quietly."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE (128 + 13)


def quiet_on_broken_pipe(main: Callable[P, int]) -> Callable[P, int]:
    """Wrap a command's `main`: a reader that went away ends it with EXIT_BROKEN_PIPE, no
    traceback (and none from the interpreter's own flush of stdout at exit)."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()  # inside the try: buffered output meets the closed pipe here
            return code
        except BrokenPipeError:
            # As the Python docs advise: point stdout at devnull so that the flush at exit
            # does not raise again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_BROKEN_PIPE

    return wrapper
