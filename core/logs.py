"""Logging set-up for the commands: console plus a rotating file under the user log dir."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from core.paths import log_dir

FILE_BYTES = 5 * 1024**2  # rotate the log file at 5 MiB
FILE_COUNT = 3  # rotated files kept
HANDLER_NAME = "ganfriends"  # the name of the handlers this module installs


class _SafeFormatter(logging.Formatter):
    """Escapes what no stream can encode: a file name that is not UTF-8 reaches Python as lone
    surrogates, which a strict stream refuses with a '--- Logging error ---' traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log file; one that cannot be written (a full or read-only disk) is said
    once on stderr, instead of logging's '--- Logging error ---' traceback for every line."""

    _failing = False  # the last write failed, and that was said
    _written = True  # the write in progress has not failed

    def emit(self, record: logging.LogRecord) -> None:
        self._written = True
        super().emit(record)
        if self._written:
            self._failing = False

    def handleError(self, record: logging.LogRecord) -> None:
        self._written = False
        if self._failing:
            return
        self._failing = True
        error = sys.exc_info()[1]
        sys.stderr.write(
            f"cannot write the log file {self.baseFilename} ({error}); free space there or "
            "make it writable: until then lines go only to the console\n"
        )


def configure_logging(program: str, *, verbose: bool = False, console: bool = True) -> None:
    """Log to stderr (warnings, or everything with `verbose`) and to `program`'s rotating file.

    Calling it again replaces the handlers of the previous call (closing its file) rather than
    adding to them, so a command run twice in one process logs each line once.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if console:
        handler = logging.StreamHandler()
        handler.set_name(HANDLER_NAME)
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
        handler.setFormatter(_SafeFormatter("%(levelname)s: %(message)s"))
        root.addHandler(handler)
    try:
        directory = log_dir()
        directory.mkdir(parents=True, exist_ok=True)
        file_handler = _LogFile(
            directory / f"{program}.log",
            maxBytes=FILE_BYTES,
            backupCount=FILE_COUNT,
            encoding="utf-8",
        )
    except OSError as exc:  # a read-only home must not stop the program
        logging.getLogger(__name__).warning("cannot write a log file: %s", exc)
        return
    file_handler.set_name(HANDLER_NAME)
    file_handler.setFormatter(
        _SafeFormatter("%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s")
    )
    root.addHandler(file_handler)
