"""Real-time (SCHED_FIFO) priority for the threads of the audio path.

A real-time thread is not preempted by ordinary work on a busy machine, which
is what keeps a small block size free of xruns. Where the system does not
allow it (no ``CAP_SYS_NICE``, no ``RLIMIT_RTPRIO``), nothing changes.
"""

from __future__ import annotations

import os

#: SCHED_FIFO priority asked for the audio thread (below PulseAudio's and JACK's usual 5..20
#: would starve the server; PortAudio's ALSA backend does not ask by itself).
RT_PRIORITY = 10


def raise_thread_priority(priority: int = RT_PRIORITY) -> bool:
    """Give the calling thread real-time (SCHED_FIFO) priority if the system allows it.

    Called once, from the first audio callback: a real-time thread is not
    preempted by ordinary work on a busy machine, which is what keeps a small
    block size free of xruns. Returns False (and changes nothing) when not allowed.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True


#: Threads of the audio path that this process runs besides PortAudio's callback thread: the
#: mainloop threads libpulse starts for each PCM that ALSA's ``pulse`` plugin opens. The callback
#: waits on them every block, so an ordinary-priority one stalls a real-time callback on a busy
#: machine (PortAudio's ALSA poll then times out).
HELPER_THREAD_NAMES = frozenset({"threaded-ml"})


def raise_helper_threads(seen: set[int], priority: int = RT_PRIORITY) -> int:
    """Give this process's audio helper threads (:data:`HELPER_THREAD_NAMES`) not in ``seen`` SCHED_FIFO.

    Adds every helper thread it finds to ``seen``; returns how many it raised (0 where the
    system does not allow it, or has no ``/proc``).
    """
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0
    raised = 0
    for tid in tids:
        if not tid.isdigit() or int(tid) in seen:
            continue
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if name not in HELPER_THREAD_NAMES:
            continue
        seen.add(int(tid))
        try:
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
        except (OSError, AttributeError):
            continue
        raised += 1
    return raised
