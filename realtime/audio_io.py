"""Reading and writing audio files.

Everything returns and accepts float32 arrays laid out ``(samples, channels)``.
libsndfile (through soundfile) reads WAV, FLAC, OGG/Vorbis, Opus and MP3;
anything else it cannot open (M4A/AAC, MP4 stems, WMA, ...) is decoded by
``ffmpeg`` when it is installed. Problems raise :class:`AudioFileError`, whose
message starts with the file's path.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

MIN_RATE = 1_000
MAX_RATE = 768_000
WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


class AudioFileError(Exception):
    """An audio file that cannot be read or written as asked."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _check_rate(path: str | os.PathLike, rate: int, what: str = "sample rate") -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFileError(path, f"{what} {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")


def _check_wav_header(path: Path) -> None:
    """Catch what libsndfile forgives: a RIFF/WAVE file shorter than its header says,
    or one that declares zero channels or an absurd rate."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return
        little = head[:4] == b"RIFF"
        fmt = "<I" if little else ">I"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            cid, clen = chunk[:4], struct.unpack(fmt, chunk[4:8])[0]
            if cid == b"fmt ":
                body = f.read(min(clen, 16))
                if len(body) < 16:
                    raise AudioFileError(path, "truncated WAV: the format chunk is cut short")
                channels = struct.unpack("<H" if little else ">H", body[2:4])[0]
                rate = struct.unpack(fmt, body[4:8])[0]
                if channels == 0:
                    raise AudioFileError(path, "WAV header declares zero channels")
                _check_rate(path, rate, "WAV header declares a sample rate of")
            elif cid == b"data":
                if clen not in (0, 0xFFFFFFFF) and pos + 8 + clen > size:
                    raise AudioFileError(
                        path,
                        f"truncated WAV: header declares {clen} bytes of audio, "
                        f"the file holds {size - pos - 8}",
                    )
                return
            pos += 8 + clen + (clen & 1)


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(sample_rate, channels, frames)`` of a file, read from its header."""
    path = Path(path)
    _require_file(path)
    _check_wav_header(path)
    try:
        info = sf.info(str(path))
        return info.samplerate, info.channels, info.frames
    except (sf.LibsndfileError, RuntimeError):
        rate, channels, data = _ffmpeg_decode(path, None, None)
        return rate, channels, data.shape[0]


def _require_file(path: Path) -> None:
    if not path.exists():
        raise AudioFileError(path, "no such file")
    if path.is_dir():
        raise AudioFileError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioFileError(path, "file is empty")


def _ffmpeg_decode(path: Path, sample_rate: int | None, channels: int | None) -> tuple[int, int, np.ndarray]:
    ffmpeg = shutil.which("ffmpeg")
    ffprobe = shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        raise AudioFileError(path, "format not readable by libsndfile, and ffmpeg is not installed to decode it")
    probe = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate,channels",
         "-of", "default=noprint_wrappers=1", str(path)],
        capture_output=True, text=True, check=False,
    )
    fields = dict(line.split("=", 1) for line in probe.stdout.split() if "=" in line)
    if probe.returncode != 0 or "sample_rate" not in fields:
        detail = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "no audio stream"
        raise AudioFileError(path, f"not a readable audio file ({detail})")
    src_rate, src_channels = int(fields["sample_rate"]), int(fields.get("channels", 0))
    if src_channels < 1:
        raise AudioFileError(path, "audio stream has zero channels")
    _check_rate(path, src_rate)
    out_rate = sample_rate or src_rate
    out_channels = channels or src_channels
    cmd = [ffmpeg, "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-f", "f32le",
           "-acodec", "pcm_f32le", "-ac", str(out_channels), "-ar", str(out_rate), "-"]
    run = subprocess.run(cmd, capture_output=True, check=False)
    if run.returncode != 0:
        msg = run.stderr.decode(errors="replace").strip().splitlines()
        raise AudioFileError(path, f"ffmpeg could not decode it ({msg[-1] if msg else 'unknown error'})")
    data = np.frombuffer(run.stdout, dtype="<f4").astype(np.float32)
    usable = data.size - data.size % out_channels
    return out_rate, out_channels, data[:usable].reshape(-1, out_channels)


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality offline resampling of ``(samples, channels)`` float32 (soxr)."""
    if from_rate == to_rate:
        return x
    import soxr

    return soxr.resample(x, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def _fit_channels(path: Path, x: np.ndarray, channels: int | None) -> np.ndarray:
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 1:
        return x.mean(axis=1, keepdims=True)
    if x.shape[1] == 1:
        return np.repeat(x, channels, axis=1)
    if channels < x.shape[1]:
        return np.ascontiguousarray(x[:, :channels])
    raise AudioFileError(path, f"cannot make {channels} channels out of {x.shape[1]}")


def read_audio(path: str | os.PathLike, sample_rate: int | None = None,
               channels: int | None = None) -> tuple[np.ndarray, int]:
    """Read a file as float32 ``(samples, channels)``.

    ``sample_rate``: resample to this rate (``None`` keeps the file's).
    ``channels``: 1 averages to mono, 2 duplicates mono or keeps the first two;
    ``None`` keeps the file's. Returns ``(audio, rate)``.
    """
    path = Path(path)
    if sample_rate is not None:
        _check_rate(path, sample_rate, "requested sample rate")
    if channels is not None and channels < 1:
        raise AudioFileError(path, f"requested channel count {channels} must be >= 1")
    _require_file(path)
    _check_wav_header(path)
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            _check_rate(path, rate)
            if f.channels < 1:
                raise AudioFileError(path, "file has zero channels")
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        if "unknown format" in str(exc).lower() or "format not recognised" in str(exc).lower() \
                or "not supported" in str(exc).lower():
            rate, _, data = _ffmpeg_decode(path, None, None)
        else:
            raise AudioFileError(path, f"not a readable audio file ({exc})") from None
    if data.shape[0] == 0:
        raise AudioFileError(path, "contains no audio samples")
    data = _fit_channels(path, data, channels)
    if sample_rate is not None and sample_rate != rate:
        data = resample(data, rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(data, dtype=np.float32), rate


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
                subtype: str | None = None) -> Path:
    """Write ``(samples, channels)`` or ``(samples,)`` float audio as WAV, FLAC or OGG.

    WAV is written as 32-bit float unless ``subtype`` says otherwise; FLAC as
    24-bit PCM (values are clipped to [-1, 1]). The file appears atomically.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioFileError(path, f"cannot write {path.suffix or 'files without an extension'}; "
                                   f"use one of {', '.join(WRITE_FORMATS)}")
    _check_rate(path, sample_rate)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] < 1:
        raise AudioFileError(path, f"audio must be (samples, channels), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioFileError(path, "audio contains NaN or Inf samples")
    if subtype is None:
        subtype = {"WAV": "FLOAT", "FLAC": "PCM_24", "OGG": "VORBIS"}[fmt]
    if subtype.startswith("PCM") or fmt == "OGG":
        audio = np.clip(audio, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        sf.write(str(tmp), audio, sample_rate, subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise AudioFileError(path, f"could not write ({exc})") from None
    return path
