"""The JACK process callback in native code, and the thread that runs the chain for it.

The server calls a client's process callback in its real-time thread. A callback written in Python
takes the interpreter lock there, and PipeWire's JACK API stops a client by cancelling that thread
(``pthread_cancel``) wherever it is: cancelled while it waited for the lock, it left the lock's mutex
held and the process hung for good on the next stop. So the callback is compiled (a numba ``cfunc``)
and never enters the interpreter. Each cycle it

1. counts a cycle the graph went on without it (the frame time moved by more than a block),
2. copies the input ports into a shared buffer and wakes the chain's thread (a POSIX semaphore),
3. waits for that thread's "done", up to :data:`BUDGET` cycles, and copies the shared output buffer to
   the output ports; a chain that takes longer gets silence for this cycle and the next ones until it
   is free again, all counted.

The chain thread (:class:`CycleWorker`) is an ordinary Python thread at real-time priority. The
round trip is the same as a callback that runs the chain itself: one block in, the same block out,
in the same cycle. Cancelled anywhere, the native callback holds no lock of the interpreter's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import carray

#: Cycles the callback waits for the chain before it outputs silence for that cycle (the cycle is the
#: block it is called with: the quantum may change while the stream runs). A chain later than its cycle
#: (a stall of the machine) is what a JACK client that ran the chain itself would be: the graph goes on
#: without it meanwhile, and its block comes out when it is done; past this, silence and the callback
#: returns, so a chain stuck for long does not hold the server's thread.
BUDGET = 4.0
MAX_PORTS = 16
MAX_TIMES = 64

# The control block: int64 slots the callback and the chain thread share (addresses, counters).
RUN, CLIENT, NIN, NOUT, INBUF, OUTBUF, CAP, SEM_WORK, SEM_DONE, FRAMES, PENDING, LAST_FT = range(12)
XRUNS, MISSED, LATE, DROPPED, CYCLES, BUDGET_PS, CPU_NS, LAST_CPU, TS_AT, NTIMES = range(12, 22)
TS = 22  # two slots: a struct timespec the callback fills (at address TS_AT)
# the C functions the callback calls, by address (the compiled code then holds none and can be cached)
F_MEMCPY, F_MEMSET, F_POST, F_TRYWAIT, F_TIMEDWAIT, F_CLOCK, F_PORT_BUFFER, F_FRAME_TIME = range(24, 32)
SEQ, DONE_SEQ = 32, 33  # the cycle handed to the chain, the one it finished last
TIMES = 34  # MAX_TIMES slots: monotonic ns of the first xruns
IN_PORTS = TIMES + MAX_TIMES
OUT_PORTS = IN_PORTS + MAX_PORTS
SIZE = OUT_PORTS + MAX_PORTS
SEM_BYTES = 64  # a sem_t is 32 bytes on glibc's 64-bit targets; room to spare

_U = ctypes.c_size_t
_compiled: Any = None
_lock = threading.Lock()


def _c_call(arity: int, ret: str) -> Any:
    """A numba intrinsic ``call(address, *args) -> int64`` that calls the C function at ``address``.

    The arguments keep their numba types (int64: a pointer or ``size_t``; int32/uint32: an ``int`` or
    ``jack_nframes_t``); ``ret`` is the C return type: ``"i64"`` (a pointer), ``"i32"`` or ``"u32"``.
    """
    from llvmlite import ir
    from numba.core import types as nt
    from numba.extending import intrinsic

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        fnty = ir.FunctionType(ir.IntType(64 if ret == "i64" else 32),
                               [context.get_value_type(t) for t in sig.args[1:]])
        result = builder.call(builder.inttoptr(args[0], fnty.as_pointer()), args[1:])
        if ret == "i64":
            return result
        return (builder.sext if ret == "i32" else builder.zext)(result, ir.IntType(64))

    if arity == 1:
        def typer1(typingctx: Any, fn: Any, a: Any) -> Any:
            return nt.int64(fn, a), codegen
        return intrinsic(typer1)
    if arity == 2:
        def typer2(typingctx: Any, fn: Any, a: Any, b: Any) -> Any:
            return nt.int64(fn, a, b), codegen
        return intrinsic(typer2)

    def typer3(typingctx: Any, fn: Any, a: Any, b: Any, c: Any) -> Any:
        return nt.int64(fn, a, b, c), codegen
    return intrinsic(typer3)


_call1_i32 = _c_call(1, "i32")
_call1_u32 = _c_call(1, "u32")
_call2_i32 = _c_call(2, "i32")
_call2_i64 = _c_call(2, "i64")
_call3_i64 = _c_call(3, "i64")


def _cycle(n, arg):  # pragma: no cover - compiled (compile_cycle), runs in the server's thread
    c = carray(arg, (SIZE,))
    ts = c[TS_AT]
    _call2_i32(c[F_CLOCK], np.int32(1), ts)  # CLOCK_MONOTONIC
    now = c[TS] * 1_000_000_000 + c[TS + 1]
    ft = _call1_u32(c[F_FRAME_TIME], c[CLIENT])
    frames = np.uint32(n)
    if c[LAST_FT] >= 0:
        step = (ft - c[LAST_FT]) & 0xFFFFFFFF
        if step > n:  # the graph went on without this client for a cycle or more
            c[MISSED] += step // n - 1
            c[XRUNS] += 1
            if c[NTIMES] < MAX_TIMES:
                c[TIMES + c[NTIMES]] = now
                c[NTIMES] += 1
    c[LAST_FT] = ft
    c[CYCLES] += 1
    if c[PENDING] != 0:  # the chain was late: free again once it finished that cycle (its output is dropped)
        while _call1_i32(c[F_TRYWAIT], c[SEM_DONE]) == 0:
            pass
        if c[DONE_SEQ] == c[SEQ]:
            c[PENDING] = 0
    nbytes = np.int64(n) * 4
    silent = True
    if c[RUN] != 0 and c[PENDING] == 0 and n <= c[CAP]:
        for i in range(c[NIN]):
            _call3_i64(c[F_MEMCPY], c[INBUF] + i * c[CAP] * 4, _call2_i64(c[F_PORT_BUFFER], c[IN_PORTS + i], frames),
                       nbytes)
        c[FRAMES] = n
        c[SEQ] += 1
        _call1_i32(c[F_POST], c[SEM_WORK])
        _call2_i32(c[F_CLOCK], np.int32(0), ts)  # CLOCK_REALTIME: sem_timedwait's clock
        ns = c[TS + 1] + np.int64(n) * c[BUDGET_PS] // 1000
        c[TS] += ns // 1_000_000_000
        c[TS + 1] = ns % 1_000_000_000
        while _call2_i32(c[F_TIMEDWAIT], c[SEM_DONE], ts) == 0:
            if c[DONE_SEQ] == c[SEQ]:  # (a token left from a cycle given up on is passed over)
                silent = False
                break
        if not silent:
            for j in range(c[NOUT]):
                _call3_i64(c[F_MEMCPY], _call2_i64(c[F_PORT_BUFFER], c[OUT_PORTS + j], frames),
                           c[OUTBUF] + j * c[CAP] * 4, nbytes)
        else:  # late (or a signal interrupted the wait): silence now, and until the chain is free again
            c[PENDING] = 1
            c[LATE] += 1
            c[XRUNS] += 1
            if c[NTIMES] < MAX_TIMES:
                c[TIMES + c[NTIMES]] = now
                c[NTIMES] += 1
    if silent:
        if c[RUN] != 0:
            c[DROPPED] += 1
        for j in range(c[NOUT]):
            _call3_i64(c[F_MEMSET], _call2_i64(c[F_PORT_BUFFER], c[OUT_PORTS + j], frames), np.int32(0), nbytes)
    _call2_i32(c[F_CLOCK], np.int32(3), ts)  # CLOCK_THREAD_CPUTIME_ID: this thread's CPU, cycle to cycle
    cpu = c[TS] * 1_000_000_000 + c[TS + 1]
    if c[LAST_CPU] > 0:
        c[CPU_NS] += cpu - c[LAST_CPU]
    c[LAST_CPU] = cpu
    return 0


def compile_cycle() -> Any:
    """The process callback (a numba ``cfunc``, ``int cycle(jack_nframes_t, void *control)``), compiled
    once per process and cached on disk like the engine's other kernels."""
    global _compiled
    with _lock:
        if _compiled is None:
            import numba
            from numba import types

            _compiled = numba.cfunc(types.int32(types.uint32, types.CPointer(types.int64)), nopython=True,
                                    cache=True)(_cycle)
        return _compiled


def _bind(lib: ctypes.CDLL, name: str, res: Any, *args: Any) -> Any:
    f = getattr(lib, name)
    f.restype, f.argtypes = res, list(args)
    return f


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _address(lib: ctypes.CDLL, name: str) -> int:
    return int(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value or 0)


class CycleWorker:
    """The shared buffers, semaphores and control block of one JACK client, and the thread that runs
    ``process(inp, out)`` (``(frames, channels)`` float32 views, ``out`` to be filled) for each cycle.

    The output ports take the chain's channels in turn (``out[:, j % channels]``), clipped to
    ``ceiling``. An exception in ``process`` is counted (:attr:`faults`) and that cycle is silent.
    """

    def __init__(self, libjack: str, client_ptr: int, in_ports: list[int], out_ports: list[int], cap: int,
                 samplerate: int, process: Callable[[np.ndarray, np.ndarray], None], channels: int,
                 ceiling: float) -> None:
        if not 0 < len(in_ports) <= MAX_PORTS or not 0 < len(out_ports) <= MAX_PORTS:
            raise ValueError(f"{len(in_ports)} input and {len(out_ports)} output ports (1..{MAX_PORTS} each)")
        self.callback = compile_cycle()
        libc, jack = _libc(), ctypes.CDLL(libjack)
        self._sem_post = _bind(libc, "sem_post", ctypes.c_int, _U)
        self._sem_wait = _bind(libc, "sem_wait", ctypes.c_int, _U)
        sem_init = _bind(libc, "sem_init", ctypes.c_int, _U, ctypes.c_int, ctypes.c_uint)
        self.ctl = np.zeros(SIZE, np.int64)
        self._sems = np.zeros(2 * SEM_BYTES // 8, np.int64)
        self._in = np.zeros((len(in_ports), cap), np.float32)
        self._out = np.zeros((len(out_ports), cap), np.float32)
        self._inbuf = np.zeros((cap, channels), np.float32)
        self._outbuf = np.zeros((cap, channels), np.float32)
        c = self.ctl
        c[CLIENT], c[NIN], c[NOUT], c[CAP] = client_ptr, len(in_ports), len(out_ports), cap
        c[INBUF], c[OUTBUF] = self._in.ctypes.data, self._out.ctypes.data
        c[SEM_WORK], c[SEM_DONE] = self._sems.ctypes.data, self._sems.ctypes.data + SEM_BYTES
        for sem in (c[SEM_WORK], c[SEM_DONE]):
            if sem_init(int(sem), 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "sem_init failed")
        c[IN_PORTS:IN_PORTS + len(in_ports)] = in_ports
        c[OUT_PORTS:OUT_PORTS + len(out_ports)] = out_ports
        c[LAST_FT] = -1
        for slot, lib, name in ((F_MEMCPY, libc, "memcpy"), (F_MEMSET, libc, "memset"), (F_POST, libc, "sem_post"),
                                (F_TRYWAIT, libc, "sem_trywait"), (F_TIMEDWAIT, libc, "sem_timedwait"),
                                (F_CLOCK, libc, "clock_gettime"), (F_PORT_BUFFER, jack, "jack_port_get_buffer"),
                                (F_FRAME_TIME, jack, "jack_last_frame_time")):
            c[slot] = _address(lib, name)
        c[TS_AT] = self.ctl.ctypes.data + TS * 8
        c[BUDGET_PS] = int(BUDGET * 1e12 / samplerate)  # picoseconds a frame: the quantum may change
        self._process, self._ceiling = process, ceiling
        self.faults = 0
        self.compute_s = 0.0  # seconds inside ``process``
        self.thread_cpu_s = 0.0  # CPU of the chain thread
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def arg(self) -> int:
        """The address the callback is given (the control block)."""
        return int(self.ctl.ctypes.data)

    def start(self, on_start: Callable[[], None] | None = None) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(on_start,), name="deepiso-jack-chain",
                                            daemon=True)
            self._thread.start()
        self.ctl[RUN] = 1

    def stop(self, wait_s: float) -> None:
        """No more cycles reach the chain; waits up to ``wait_s`` for one inside it to finish."""
        self.ctl[RUN] = 0
        deadline = time.monotonic() + wait_s
        while self.ctl[SEQ] != self.ctl[DONE_SEQ] and time.monotonic() < deadline:  # a cycle handed over, unfinished
            time.sleep(0.001)

    def close(self) -> None:
        """Ends the chain's thread (after the server stopped calling: :meth:`stop` first)."""
        self.ctl[RUN] = 0
        self._closing = True
        self._sem_post(int(self.ctl[SEM_WORK]))
        if self._thread is not None:
            self._thread.join(1.0)

    def _run(self, on_start: Callable[[], None] | None) -> None:
        if on_start is not None:
            on_start()
        c, work, done = self.ctl, int(self.ctl[SEM_WORK]), int(self.ctl[SEM_DONE])
        cpu0 = time.thread_time()
        while True:
            if self._sem_wait(work) != 0:  # interrupted by a signal; the lock is released while it waits
                continue
            if self._closing:
                return
            n, seq = int(c[FRAMES]), int(c[SEQ])
            inp, out = self._inbuf[:n], self._outbuf[:n]
            try:
                np.copyto(inp, self._in[:, :n].T)
                t0 = time.perf_counter()
                self._process(inp, out)
                self.compute_s += time.perf_counter() - t0
                np.clip(out, -self._ceiling, self._ceiling, out=out)
                channels = out.shape[1]
                for j in range(self._out.shape[0]):
                    self._out[j, :n] = out[:, j % channels]
            except Exception:  # noqa: BLE001 - the audio path never dies: silence, counted
                self.faults += 1
                self._out[:, :n] = 0.0
            self.thread_cpu_s = time.thread_time() - cpu0
            c[DONE_SEQ] = seq
            self._sem_post(done)

    # what the callback counted
    def counter(self, slot: int) -> int:
        return int(self.ctl[slot])

    def xrun_times(self) -> list[float]:
        """Monotonic seconds of the first xruns (late chain or a cycle the graph went on without)."""
        return [int(t) / 1e9 for t in self.ctl[TIMES:TIMES + int(self.ctl[NTIMES])]]

    @property
    def callback_cpu_s(self) -> float:
        """CPU of the server's thread that calls the client, from its first cycle to its latest."""
        return int(self.ctl[CPU_NS]) / 1e9
