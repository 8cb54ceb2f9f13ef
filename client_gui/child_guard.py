"""Children of the app end with the app, however it ends (Quit, SIGTERM, SIGKILL, a crash).

A child that the app starts with `guarded_command` runs under this module's launcher
(`python -m client_gui.child_guard MODULE ARGS…`). On Linux and macOS the app hands it the read
end of a pipe whose write end only the app holds: when the app ends in any way, the kernel
closes that end, the launcher's watch thread reads end-of-file and ends the child (SIGTERM
first, so a coordinator finishes its step; a hard exit after `GRACE_S`). A pipe, unlike
Linux's PR_SET_PDEATHSIG, does not fire when the thread that started the child ends (the app
starts it from a thread pool), and works on macOS too. On Windows the child is put in a Job
object that kills its processes when the app's last handle to it closes.

The worker process (core.worker_process) watches its parent through multiprocessing's own
parent sentinel, so it needs no launcher.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import runpy
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

FD_VARIABLE = "GANFRIENDS_PARENT_PIPE"  # the launcher reads the pipe's fd number from here
GRACE_S = 10.0  # seconds the child gets to stop cleanly after the app is gone


class GuardedChild:
    """`python -m module args…` started so that it ends with the app; `close` lets it go."""

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        *,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        **popen_kwargs: Any,
    ) -> None:
        environment = dict(os.environ if env is None else env)
        self._write_fd: int | None = None
        pass_fds: tuple[int, ...] = ()
        if os.name == "posix":
            read_fd, self._write_fd = os.pipe()  # neither end is inherited by other children
            environment[FD_VARIABLE] = str(read_fd)
            pass_fds = (read_fd,)
        try:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [python, "-m", __name__, module, *args],
                env=environment,
                pass_fds=pass_fds,
                **popen_kwargs,
            )
        except BaseException:
            self.close()
            raise
        finally:
            for fd in pass_fds:
                os.close(fd)  # the child has its copy: the app keeps only the write end
        if sys.platform == "win32":
            _kill_with_app_job().add(self.process)

    def close(self) -> None:
        """Let go of the child: it ends as if the app had ended (after stop, and in tests)."""
        if self._write_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._write_fd)
            self._write_fd = None


def watch_parent(read_fd: int, grace_s: float = GRACE_S) -> threading.Thread:
    """End this process once `read_fd` reaches end-of-file (the app is gone)."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(read_fd, 1):
                pass
        log.warning("the app is gone; stopping")
        threading.Timer(grace_s, os._exit, args=(1,)).start()  # if SIGTERM is not enough
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m client_gui.child_guard MODULE ARGS…`: run MODULE as __main__, watched."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit("usage: python -m client_gui.child_guard MODULE [ARGS…]")
    fd = os.environ.pop(FD_VARIABLE, None)
    if fd is not None:
        watch_parent(int(fd))
    sys.argv = args
    runpy.run_module(args[0], run_name="__main__", alter_sys=True)


class _Job:
    """A Windows Job object that kills its processes when the app's handle to it closes."""

    def __init__(self) -> None:
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined]

        class _Basic(ctypes.Structure):
            _fields_ = [
                ("PerProcessUserTimeLimit", ctypes.c_int64),
                ("PerJobUserTimeLimit", ctypes.c_int64),
                ("LimitFlags", wintypes.DWORD),
                ("MinimumWorkingSetSize", ctypes.c_size_t),
                ("MaximumWorkingSetSize", ctypes.c_size_t),
                ("ActiveProcessLimit", wintypes.DWORD),
                ("Affinity", ctypes.c_size_t),
                ("PriorityClass", wintypes.DWORD),
                ("SchedulingClass", wintypes.DWORD),
            ]

        class _Io(ctypes.Structure):
            _fields_ = [(name, ctypes.c_uint64) for name in ("r", "w", "o", "rb", "wb", "ob")]

        class _Extended(ctypes.Structure):
            _fields_ = [
                ("BasicLimitInformation", _Basic),
                ("IoInfo", _Io),
                ("ProcessMemoryLimit", ctypes.c_size_t),
                ("JobMemoryLimit", ctypes.c_size_t),
                ("PeakProcessMemoryUsed", ctypes.c_size_t),
                ("PeakJobMemoryUsed", ctypes.c_size_t),
            ]

        kernel32.CreateJobObjectW.restype = wintypes.HANDLE
        self._kernel32 = kernel32
        self._handle = kernel32.CreateJobObjectW(None, None)  # kept open for the app's life
        info = _Extended()
        info.BasicLimitInformation.LimitFlags = 0x2000  # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        extended_limit_information = 9
        if not kernel32.SetInformationJobObject(
            self._handle, extended_limit_information, ctypes.byref(info), ctypes.sizeof(info)
        ):
            raise OSError(kernel32.GetLastError(), "SetInformationJobObject failed")

    def add(self, process: subprocess.Popen[bytes]) -> None:
        handle = int(process._handle)  # type: ignore[attr-defined]  # Popen's process handle
        if not self._kernel32.AssignProcessToJobObject(self._handle, handle):
            log.warning("could not tie the child %d to the app's job object", process.pid)


@functools.cache
def _kill_with_app_job() -> _Job:
    return _Job()


if __name__ == "__main__":
    main()
