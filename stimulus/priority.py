"""Raise the process priority for the frame loop, where the OS allows it."""

from __future__ import annotations

import os
import sys


def raise_priority() -> str:
    """Try real-time, then high priority; return what was done (for the terminal and the
    session file). Never raises."""
    if sys.platform.startswith("linux"):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            return "real-time scheduling (SCHED_FIFO, priority 10)"
        except (PermissionError, OSError, AttributeError):
            pass
    if sys.platform == "win32":
        try:
            import ctypes

            high = 0x00000080  # HIGH_PRIORITY_CLASS (REALTIME starves input and the driver)
            handle = ctypes.windll.kernel32.GetCurrentProcess()
            if ctypes.windll.kernel32.SetPriorityClass(handle, high):
                return "Windows HIGH_PRIORITY_CLASS"
        except (AttributeError, OSError):
            pass
        return "normal priority (SetPriorityClass refused)"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice -10"
    except (PermissionError, OSError, AttributeError):
        return ("normal priority (not allowed to raise it: run with CAP_SYS_NICE or set "
                "rtprio/nice limits in /etc/security/limits.conf)")
