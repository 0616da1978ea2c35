"""Keeps what audio libraries print on the process's stderr out of the terminal, and counts it.

PortAudio, ALSA and JACK write their diagnostics straight to file descriptor 2
(underruns, poll time-outs, probing chatter): 9 to 40 lines per fault, burying
the engine's status line and its own messages. :class:`LibraryOutput` points
descriptor 2 at a pipe that a thread reads, counts and keeps the last lines
of, while Python's ``sys.stderr`` keeps writing to the terminal.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading


class LibraryOutput:
    """Capture descriptor 2 while active: ``lines`` counts what libraries printed, ``last`` keeps the newest.

    ``forward=True`` passes the lines through (``--verbose``) while still counting them.
    Python's ``sys.stderr`` is re-opened on a copy of the original descriptor first, so
    the program's own messages are never captured.
    """

    def __init__(self, forward: bool = False, keep: int = 20) -> None:
        self.forward = forward
        self.lines = 0
        self.last: collections.deque[str] = collections.deque(maxlen=keep)
        self._saved_fd: int | None = None
        self._saved_stderr = None
        self._thread: threading.Thread | None = None
        self._read_fd: int | None = None

    def start(self) -> LibraryOutput:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            read_fd, write_fd = os.pipe()
        except (OSError, ValueError, AttributeError):
            return self  # no descriptor 2 to take over (embedded, closed): nothing to capture
        self._saved_fd, self._read_fd = saved, read_fd
        self._saved_stderr = sys.stderr
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._thread = threading.Thread(target=self._read, name="deepiso-stderr", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        with os.fdopen(self._read_fd, "rb", buffering=0) as pipe:  # type: ignore[arg-type]
            pending = b""
            while chunk := pipe.read(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._line(raw)
            if pending:
                self._line(pending)

    def _line(self, raw: bytes) -> None:
        text = raw.decode(errors="replace").rstrip()
        if not text:
            return
        self.lines += 1
        self.last.append(text)
        if self.forward and self._saved_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._saved_fd, raw + b"\n")

    def stop(self) -> None:
        if self._saved_fd is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self._saved_fd, 2)  # closes the pipe's last writer: the reader sees the end
        if self._thread is not None:
            self._thread.join(1.0)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.close()
        sys.stderr = self._saved_stderr
        os.close(self._saved_fd)
        self._saved_fd = None

    def __enter__(self) -> LibraryOutput:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
