"""A guard against a Qt binding that drops references to None, True and False.

PySide6 6.12.0 on CPython 3.11 forgets a Py_INCREF when a void method returns (and when a
bool signal is emitted): every `label.setText(...)` takes one reference from None. A running
app makes hundreds of such calls a second, so within minutes None or True reaches zero
references and CPython aborts ("Fatal Python error: none_dealloc"). PySide6 6.11 is fine,
and on CPython 3.12+ these singletons are immortal, so the bug is harmless there.

Where the leak is detected, the three singletons get a reference count so large that no
leak can exhaust it: what CPython 3.12 does for them itself (PEP 683). Pinning a fixed
PySide6 is the real cure; this keeps a volunteer's app alive until then.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

PROBE_CALLS = 256  # void calls made to see whether the binding leaks
BALLAST = 1 << 40  # references added: a trillion leaked calls before anything could go wrong


def binding_leaks_references() -> bool:
    """Whether calling a void Qt method takes a reference from None (needs no QApplication)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(PROBE_CALLS):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - PROBE_CALLS // 2


def guard_singleton_references() -> bool:
    """Make None, True and False unkillable if the binding leaks; True when it did."""
    if sys.version_info >= (3, 12) or not binding_leaks_references():
        return False  # immortal already, or nothing leaks
    if sys.getrefcount(None) > BALLAST // 2:
        return True  # guarded earlier in this process
    from PySide6 import __version__

    log.warning(
        "PySide6 %s on Python %d.%d drops references to None/True/False; guarding them "
        "(install PySide6-Essentials<6.12 or use Python 3.12+ to fix this properly)",
        __version__,
        *sys.version_info[:2],
    )
    for singleton in (None, True, False):
        # CPython (release build): ob_refcnt is the first field of every object.
        count = ctypes.c_ssize_t.from_address(id(singleton))
        count.value += BALLAST
    return True
