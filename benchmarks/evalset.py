"""Evaluation sets for the quality benchmark: voice over background at set SNRs.

An evaluation set is a list of :class:`Item`: a mixture and its vocal truth,
both float32 ``(channels, samples)`` at one sample rate, plus a JSON-able
``meta`` dict (category, SNR, sources). Three ways to get one:

* :func:`build_set` draws items from a corpus manifest (``DIR/manifest.jsonl``
  written by ``deepiso.train.corpus``), using only files of one split
  ("valid" or "test"): for every category x SNR cell, ``per_cell`` items of
  ``seconds`` seconds, from a fixed seed, so the same manifest always gives
  the same set;
* :func:`make_synthetic_corpus` writes a small corpus (espeak-ng speech or
  formant-synthesised speech, formant "singing", synthetic music and noise)
  in the manifest layout, for tests and for machines without the real corpus;
* :func:`musdb_items` reads MUSDB18 (test subset) through the ``musdb`` package.

:func:`save_set` materialises a set as ``FOLDER/NAME/{mixture.wav, vocals.wav,
meta.json}`` (32-bit float WAV, so ``mixture - vocals`` is the background to
the last bit) and :func:`load_set` reads it back.

How an item is mixed: voice clips of the category are laid end to end with
pauses of 0.3-1.2 s between them (speech and singing have gaps, and the
benchmark measures what a system leaves in them), starting 0.2-1.0 s in; the
voice is centred (the same signal in both channels). A background excerpt
starts at a random offset (looped if short). The background is scaled so that
``10 log10(E_voice / E_background) = snr`` with energies over the whole item
(mono downmix), then both are scaled together so the mixture peaks at -1 dBFS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from deepiso.realtime.audio_io import read_audio, resample, write_audio

#: Cells of the standard set: (name, voice category, background category).
CATEGORIES: dict[str, tuple[str, str]] = {
    "speech_music": ("speech", "music"),
    "speech_noise": ("speech", "noise"),
    "singing_music": ("singing", "music"),
}
SNRS_DB: tuple[float, ...] = (-5.0, 0.0, 5.0)
SPLITS = ("train", "valid", "test")

# Words a manifest may use for a file's category, mapped to the benchmark's four.
_VOICE_WORDS = {"speech": ("speech", "speak", "prompt", "dialog", "word", "tts", "read", "voice", "talk"),
                "singing": ("sing", "sung", "choir", "vocal", "song_voice")}
_BACKGROUND_WORDS = {"music": ("music", "midi", "song", "instrument", "drum", "accompaniment", "sample"),
                     "noise": ("noise", "ambien", "babble", "hum", "rain", "wind", "room")}


class EvalSetError(ValueError):
    """A manifest, corpus or saved set that cannot give the evaluation set asked for."""


@dataclass
class Item:
    """One evaluation item.

    ``mixture`` and ``vocals``: float32 ``(channels, samples)`` at ``rate`` Hz,
    same shape; the background is ``mixture - vocals``. ``meta``: JSON-able.
    """

    name: str
    mixture: np.ndarray
    vocals: np.ndarray
    rate: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def background(self) -> np.ndarray:
        return self.mixture - self.vocals

    @property
    def category(self) -> str:
        return str(self.meta.get("category", "unknown"))

    @property
    def seconds(self) -> float:
        return self.mixture.shape[-1] / self.rate


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    role: str  # "voice" | "background"
    category: str  # "speech" | "singing" (voice), "music" | "noise" (background)
    split: str
    source: str = ""


# ----------------------------------------------------------------------------
# Manifest


def _classify(role: str, category: str, path: str) -> str | None:
    words = _VOICE_WORDS if role == "voice" else _BACKGROUND_WORDS
    text = f"{category} {Path(path).parent}".lower()
    for name, keys in words.items():
        if category.lower() == name or any(k in category.lower() for k in keys):
            return name
    for name, keys in words.items():
        if any(k in text for k in keys):
            return name
    return None


def _entries(data: Any) -> list[dict[str, Any]]:
    """The file entries of a manifest: a list, or a dict holding lists under known keys."""
    if isinstance(data, list):
        return [dict(e) for e in data if isinstance(e, dict)]
    if not isinstance(data, dict):
        return []
    out: list[dict[str, Any]] = []
    for key in ("files", "entries", "items", "clips"):
        if isinstance(data.get(key), list):
            out += [dict(e) for e in data[key] if isinstance(e, dict)]
    for role in ("voice", "background"):
        value = data.get(role)
        if isinstance(value, list):
            out += [{"role": role, **e} for e in value if isinstance(e, dict)]
    return out


def read_manifest(corpus: str | Path) -> list[CorpusFile]:
    """The files listed by a corpus manifest.

    ``corpus``: the corpus folder (``manifest.jsonl``, one JSON record per
    file as ``deepiso.train.corpus`` writes it, or ``manifest.json`` holding a
    ``files`` list) or the manifest file itself. A record needs ``path``
    (relative to the manifest's folder), ``kind`` (voice or background; also
    read from ``role``), ``category`` and ``split``. Categories are mapped to
    speech/singing (voice) and music/noise (background; ambience counts as
    noise); records that map to none are left out. Raises
    :class:`EvalSetError` naming the manifest when it is missing, unreadable
    or lists nothing usable.
    """
    corpus = Path(corpus)
    if corpus.is_file():
        manifest = corpus
    else:
        manifest = next((corpus / n for n in ("manifest.jsonl", "manifest.json") if (corpus / n).is_file()),
                        corpus / "manifest.jsonl")
    if not manifest.is_file():
        raise EvalSetError(f"{manifest}: no corpus manifest (build the corpus first, or use --synthetic)")
    try:
        text = manifest.read_text()
        if manifest.suffix == ".jsonl":
            data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"{manifest}: not a readable JSON manifest ({exc})") from None
    root = manifest.parent
    files: list[CorpusFile] = []
    for e in _entries(data):
        rel = e.get("path") or e.get("file")
        role = str(e.get("kind") or e.get("role") or e.get("type") or "").lower()
        role = {"target": "voice", "vocals": "voice", "noise": "background", "accompaniment": "background",
                "bg": "background"}.get(role, role)
        if not rel or role not in ("voice", "background"):
            continue
        category = _classify(role, str(e.get("category", "")), str(rel))
        if category is None:
            continue
        files.append(CorpusFile(root / str(rel), role, category, str(e.get("split", "")).lower(),
                                str(e.get("source", ""))))
    if not files:
        raise EvalSetError(f"{manifest}: lists no voice or background files with a known category")
    return files


# ----------------------------------------------------------------------------
# Rendering


def _read_excerpt(path: Path, start_s: float, seconds: float, rate: int) -> np.ndarray:
    """``seconds`` of ``path`` from ``start_s``, as float32 ``(channels, n)`` at ``rate`` (shorter if the file ends)."""
    try:
        with sf.SoundFile(str(path)) as f:
            src = f.samplerate
            f.seek(min(int(start_s * src), max(f.frames - 1, 0)))
            data = f.read(int(np.ceil(seconds * src)) + 64, dtype="float32", always_2d=True)
        data = resample(data, src, rate) if src != rate else data
    except (sf.LibsndfileError, RuntimeError):
        data, _ = read_audio(path, sample_rate=rate)  # formats only ffmpeg reads: whole file
        data = data[int(start_s * rate): int(start_s * rate) + int(np.ceil(seconds * rate))]
    return np.ascontiguousarray(data.T[:, : int(round(seconds * rate))], dtype=np.float32)


def _duration(path: Path) -> float:
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError):
        data, rate = read_audio(path)
        return data.shape[0] / rate


def _to_stereo(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[:1], 2, axis=0) if x.shape[0] == 1 else np.ascontiguousarray(x[:2])


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _voice_track(files: list[CorpusFile], rng: np.random.Generator, n: int, rate: int,
                 durations: dict[Path, float]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Voice clips end to end with pauses: mono float32 ``(n,)`` and what went where."""
    track = np.zeros(n, np.float32)
    used: list[dict[str, Any]] = []
    pos = int(rng.uniform(0.2, 1.0) * rate)
    tries = 0
    while pos < n - int(0.3 * rate) and tries < 50:
        tries += 1
        f = files[int(rng.integers(len(files)))]
        dur = durations.setdefault(f.path, _duration(f.path))
        take = min(dur, (n - pos) / rate, 4.0)
        start = float(rng.uniform(0.0, max(dur - take, 0.0)))
        clip = _read_excerpt(f.path, start, take, rate).mean(axis=0)
        if clip.size == 0 or _rms_db(clip) < -60.0:
            continue
        clip = clip * (10 ** ((-20.0 - _rms_db(clip)) / 20))  # speakers at a like level
        m = min(clip.size, n - pos)
        track[pos: pos + m] = clip[:m]
        used.append({"file": str(f.path), "source": f.source, "start_s": round(start, 3),
                     "at_s": round(pos / rate, 3), "seconds": round(m / rate, 3)})
        pos += m + int(rng.uniform(0.3, 1.2) * rate)
    return track, used


def _background(files: list[CorpusFile], rng: np.random.Generator, n: int, rate: int,
                durations: dict[Path, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """A background excerpt, stereo float32 ``(2, n)``, looped if the file is short."""
    for _ in range(20):
        f = files[int(rng.integers(len(files)))]
        dur = durations.setdefault(f.path, _duration(f.path))
        seconds = n / rate
        start = float(rng.uniform(0.0, max(dur - seconds, 0.0)))
        x = _to_stereo(_read_excerpt(f.path, start, seconds, rate))
        if x.shape[1] == 0 or _rms_db(x) < -60.0:
            continue
        if x.shape[1] < n:
            x = np.tile(x, (1, -(-n // x.shape[1])))
        return x[:, :n], {"file": str(f.path), "source": f.source, "start_s": round(start, 3)}
    raise EvalSetError(f"no audible background among {len(files)} files (e.g. {files[0].path})")


def mix_at_snr(voice: np.ndarray, background: np.ndarray, snr_db: float,
               peak_dbfs: float = -1.0) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``background`` to ``snr_db`` below ``voice`` and normalise the sum's peak.

    ``voice``, ``background``: ``(channels, n)``. Returns ``(mixture, vocals)``
    with ``mixture = vocals + scaled background`` exactly (float32).
    """
    ev = float(np.sum(np.square(voice.mean(axis=0), dtype=np.float64)))
    eb = float(np.sum(np.square(background.mean(axis=0), dtype=np.float64)))
    if ev <= 0 or eb <= 0:
        raise EvalSetError("cannot mix at an SNR: the voice or the background is silent")
    g = np.sqrt(ev / (eb * 10 ** (snr_db / 10)))
    mixture = voice + g * background
    scale = 10 ** (peak_dbfs / 20) / max(float(np.abs(mixture).max()), 1e-9)
    vocals = (voice * scale).astype(np.float32)
    mixture = (vocals + (g * scale) * background).astype(np.float32)
    return mixture, vocals


def build_set(corpus: str | Path, split: str = "valid", per_cell: int = 4, seconds: float = 8.0,
              rate: int = 44_100, seed: int = 0, categories: dict[str, tuple[str, str]] | None = None,
              snrs: tuple[float, ...] = SNRS_DB, voice_sources: tuple[str, ...] | None = None,
              without_voice_sources: tuple[str, ...] = ()) -> list[Item]:
    """Draw ``per_cell`` items for every category x SNR from the ``split`` files of a corpus manifest.

    ``voice_sources``: draw the voices only from these corpus sources (e.g. ``("kokoro",)``, natural
    speech only); a category none of them has a voice for is left out (the other cells are the same
    draw as without the filter, seed by seed), and a source the split lacks is an error.
    ``without_voice_sources``: draw no voice from these sources, so a set drawn before a source joined
    the corpus is drawn again from the grown corpus; a source the split lacks is an error.

    Items are stereo float32 at ``rate``; the same arguments always give the
    same items. Raises :class:`EvalSetError` naming the manifest and the
    missing category when the split lacks the files a cell needs.
    """
    if split not in SPLITS:
        raise EvalSetError(f"unknown split {split!r}; choose one of {SPLITS}")
    if per_cell < 1 or seconds <= 0:
        raise EvalSetError(f"per_cell must be >= 1 and seconds > 0, got {per_cell} and {seconds}")
    files = [f for f in read_manifest(corpus) if f.split == split]
    categories = CATEGORIES if categories is None else categories
    def check_known(sources: tuple[str, ...]) -> None:
        known = {f.source for f in files if f.role == "voice"}
        unknown = sorted(set(sources) - known)
        if unknown:
            raise EvalSetError(f"{Path(corpus)}: split {split!r} has no voice source {', '.join(unknown)} "
                               f"(it has {', '.join(sorted(known))})")

    if voice_sources is not None:
        check_known(voice_sources)
        files = [f for f in files if f.role != "voice" or f.source in voice_sources]
        present = {f.category for f in files if f.role == "voice"}
    if without_voice_sources:
        check_known(without_voice_sources)
        files = [f for f in files if f.role != "voice" or f.source not in without_voice_sources]
    by = {(f.role, f.category): [] for f in files}
    for f in files:
        by[(f.role, f.category)].append(f)
    n = int(round(seconds * rate))
    durations: dict[Path, float] = {}
    items: list[Item] = []
    for ci, (cell, (vcat, bcat)) in enumerate(categories.items()):
        if voice_sources is not None and vcat not in present:
            continue  # (the index ci stays the full set's: a cell's items are the same draw)
        voices, backs = by.get(("voice", vcat), []), by.get(("background", bcat), [])
        if not voices or not backs:
            missing = f"voice/{vcat}" if not voices else f"background/{bcat}"
            raise EvalSetError(f"{Path(corpus)}: split {split!r} has no {missing} files for {cell}")
        for si, snr in enumerate(snrs):
            for k in range(per_cell):
                rng = np.random.default_rng([seed, ci, si, k])
                voice, used = _voice_track(voices, rng, n, rate, durations)
                if not used:
                    raise EvalSetError(f"{Path(corpus)}: no audible {vcat} voice in split {split!r}")
                back, bmeta = _background(backs, rng, n, rate, durations)
                mixture, vocals = mix_at_snr(np.stack([voice, voice]), back, snr)
                name = f"{cell}_{'m' if snr < 0 else 'p'}{abs(snr):g}dB_{k:02d}"
                meta = {"name": name, "category": cell, "voice": vcat, "background": bcat, "snr_db": snr,
                        "split": split, "seed": seed, "rate": rate, "seconds": seconds,
                        "voice_clips": used, "background_clip": bmeta}
                items.append(Item(name, mixture, vocals, rate, meta))
    return items


# ----------------------------------------------------------------------------
# Saving and loading


def save_set(items: list[Item], folder: str | Path) -> Path:
    """Write ``folder/NAME/{mixture.wav, vocals.wav, meta.json}`` per item and ``folder/set.json``."""
    folder = Path(folder)
    for it in items:
        d = folder / it.name
        write_audio(d / "mixture.wav", it.mixture.T, it.rate)
        write_audio(d / "vocals.wav", it.vocals.T, it.rate)
        (d / "meta.json").write_text(json.dumps(it.meta, indent=1) + "\n")
    (folder / "set.json").write_text(json.dumps({"items": [it.name for it in items]}, indent=1) + "\n")
    return folder


def load_set(folder: str | Path) -> list[Item]:
    """Read a set written by :func:`save_set` (items in ``set.json`` order, else sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalSetError(f"{folder}: no such evaluation set folder")
    index = folder / "set.json"
    names = json.loads(index.read_text())["items"] if index.is_file() else sorted(
        p.name for p in folder.iterdir() if (p / "mixture.wav").is_file())
    if not names:
        raise EvalSetError(f"{folder}: holds no items (NAME/mixture.wav + vocals.wav + meta.json)")
    items = []
    for name in names:
        d = folder / name
        for part in ("mixture.wav", "vocals.wav"):
            if not (d / part).is_file():
                raise EvalSetError(f"{d}: missing {part}")
        mix, rate = read_audio(d / "mixture.wav")
        voc, vrate = read_audio(d / "vocals.wav")
        if vrate != rate or voc.shape != mix.shape:
            raise EvalSetError(f"{d}: vocals.wav ({voc.shape}, {vrate} Hz) does not match mixture.wav "
                               f"({mix.shape}, {rate} Hz)")
        meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").is_file() else {}
        items.append(Item(name, np.ascontiguousarray(mix.T), np.ascontiguousarray(voc.T), rate, meta))
    return items


# ----------------------------------------------------------------------------
# MUSDB18


def musdb_items(root: str | Path, subset: str = "test", max_seconds: float | None = None,
                is_wav: bool | None = None) -> list[Item]:
    """MUSDB18 tracks (``subset``) as items, category ``musdb``; ``max_seconds`` keeps the start of each."""
    import musdb

    root = Path(root)
    if not root.is_dir():
        raise EvalSetError(f"{root}: no MUSDB18 folder there")
    if is_wav is None:  # the WAV layout has NAME/mixture.wav; the stem layout NAME.stem.mp4
        is_wav = any((root / subset).glob("*/mixture.wav"))
    db = musdb.DB(root=str(root), subsets=subset, is_wav=is_wav)
    if not db.tracks:
        raise EvalSetError(f"{root}: no MUSDB18 tracks in subset {subset!r}")
    items = []
    for t in db.tracks:
        mix = t.audio.T.astype(np.float32)
        voc = t.targets["vocals"].audio.T.astype(np.float32)
        if max_seconds:
            n = int(max_seconds * t.rate)
            mix, voc = mix[:, :n], voc[:, :n]
        items.append(Item(f"musdb_{t.name}", np.ascontiguousarray(mix), np.ascontiguousarray(voc), int(t.rate),
                          {"name": t.name, "category": "musdb", "voice": "singing", "background": "music",
                           "subset": subset}))
    return items


# ----------------------------------------------------------------------------
# A small synthetic corpus in the manifest layout


def _formant_voice(rng: np.random.Generator, rate: int, seconds: float, sung: bool) -> np.ndarray:
    """A voice-like signal: a glottal pulse train through vowel formants.

    Speech: syllables of 120-250 ms with a falling, wandering pitch around
    100-220 Hz. Singing: held notes of 300-700 ms on a scale with vibrato.
    Mono float32 ``(n,)`` at about -20 dBFS RMS.
    """
    from scipy.signal import lfilter

    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]
    base = float(rng.uniform(100, 220))
    out = []
    t_total = 0.0
    while t_total < seconds:
        dur = float(rng.uniform(0.3, 0.7) if sung else rng.uniform(0.12, 0.25))
        m = int(dur * rate)
        t = np.arange(m) / rate
        if sung:
            f0 = base * 2 ** (int(rng.integers(0, 8)) / 12) * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        else:
            f0 = base * (1.1 - 0.2 * t / dur) * (1 + 0.03 * rng.standard_normal())
        phase = np.cumsum(f0 / rate)
        src = np.diff(np.floor(phase), prepend=0.0)  # one pulse per period
        src = lfilter([1.0], [1.0, -0.95], src)  # glottal roll-off
        src = src + 0.02 * rng.standard_normal(m) * (not sung)  # a little breath in speech
        y = np.zeros(m)
        for fc, bw in zip(vowels[int(rng.integers(len(vowels)))], (80, 100, 120), strict=True):
            r = np.exp(-np.pi * bw / rate)
            y += lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / rate), r * r], src)
        env = np.sin(np.pi * np.arange(m) / m) ** (0.3 if sung else 1.0)
        out.append(y * env)
        if not sung and rng.random() < 0.15:
            out.append(np.zeros(int(rng.uniform(0.05, 0.2) * rate)))
        t_total += dur
    x = np.concatenate(out)[: int(seconds * rate)]
    return (x * 10 ** (-20 / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def _espeak(text: str, voice: str, pitch: int, path: Path) -> bool:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return False
    run = subprocess.run([exe, "-v", voice, "-p", str(pitch), "-s", "160", "-w", str(path), text],
                         capture_output=True, check=False)
    return run.returncode == 0 and path.is_file() and path.stat().st_size > 1000


def _music(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    """Stereo synthetic music ``(2, n)``: chords of decaying harmonic notes, a bass line and noise-burst drums."""
    n = int(seconds * rate)
    x = np.zeros((2, n))
    bpm = float(rng.uniform(80, 140))
    beat = int(60 / bpm * rate)
    root = 110 * 2 ** (int(rng.integers(0, 12)) / 12)
    t = np.arange(beat * 2) / rate
    for b0 in range(0, n, beat * 2):
        chord = [0, 4, 7] if rng.random() < 0.5 else [0, 3, 7]
        shift = int(rng.choice([0, 5, 7, 9]))
        seg = np.zeros(t.size)
        for st in chord:
            f = root * 2 ** ((st + shift) / 12) * 2
            for h in range(1, 6):
                seg += np.sin(2 * np.pi * f * h * t) / h ** 1.5
        seg *= np.exp(-t * 2.5)
        bass = np.sin(2 * np.pi * root * 2 ** (shift / 12) / 2 * t) * np.exp(-t * 4)
        m = min(seg.size, n - b0)
        pan = float(rng.uniform(0.3, 0.7))
        x[0, b0: b0 + m] += (pan * seg + 0.8 * bass)[:m]
        x[1, b0: b0 + m] += ((1 - pan) * seg + 0.8 * bass)[:m]
    for b0 in range(0, n, beat):  # drums: a filtered noise burst per beat
        m = min(int(0.08 * rate), n - b0)
        burst = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.015 * rate))
        x[:, b0: b0 + m] += 0.8 * burst
    return (x * 10 ** (-18 / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def _noise(rng: np.random.Generator, rate: int, seconds: float, kind: str) -> np.ndarray:
    """Stereo noise ``(2, n)``: pink, brown or mains hum with hiss."""
    n = int(seconds * rate)
    white = rng.standard_normal((2, n))
    spec = np.fft.rfft(white, axis=1)
    f = np.maximum(np.fft.rfftfreq(n, 1 / rate), 20.0)
    if kind == "pink":
        spec /= np.sqrt(f)
    elif kind == "brown":
        spec /= f
    x = np.fft.irfft(spec, n=n, axis=1)
    if kind == "hum":
        t = np.arange(n) / rate
        hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5))
        x = x / np.std(x) * 0.1 + hum
    return (x * 10 ** (-20 / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


_SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please leave a message after the tone and we will call you back.",
    "Turn left at the next corner, then walk straight for two hundred metres.",
    "Every morning the baker opens his shop before the sun comes up.",
    "Your call is important to us; please stay on the line.",
    "She sells sea shells by the sea shore on sunny afternoons.",
]
_ESPEAK_VOICES = [("en", 50), ("en-us", 30), ("fr", 60), ("de", 40), ("es", 70), ("it", 45)]


def make_synthetic_corpus(folder: str | Path, splits: tuple[str, ...] = ("valid",), files_per_kind: int = 3,
                          seconds: float = 10.0, rate: int = 22_050, espeak: bool = True,
                          seed: int = 0) -> Path:
    """Write a small corpus and its ``manifest.jsonl`` (the record layout the corpus builder writes).

    Voice: speech (espeak-ng when ``espeak`` and installed, else formant
    synthesis) and formant "singing"; background: synthetic music and noise.
    ``files_per_kind`` files per split and category. Returns the manifest path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for si, split in enumerate(splits):
        rng = np.random.default_rng([seed, si])
        for k in range(files_per_kind):
            rel = f"{split}/speech_{k}.wav"
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            voice, pitch = _ESPEAK_VOICES[(k + 3 * si) % len(_ESPEAK_VOICES)]
            text = " ".join(_SENTENCES[(k + j) % len(_SENTENCES)] for j in range(2))
            if espeak and _espeak(text, voice, pitch, path):
                source = f"espeak-ng ({voice})"
            else:
                write_audio(path, _formant_voice(rng, rate, seconds, sung=False), rate)
                source = "formant synthesis (speech-like)"
            entries.append({"path": rel, "kind": "voice", "category": "speech", "split": split,
                            "source": source, "license": "generated"})
            rel = f"{split}/singing_{k}.wav"
            write_audio(folder / rel, _formant_voice(rng, rate, seconds, sung=True), rate)
            entries.append({"path": rel, "kind": "voice", "category": "singing", "split": split,
                            "source": "formant synthesis (sung vowels)", "license": "generated"})
            rel = f"{split}/music_{k}.wav"
            write_audio(folder / rel, _music(rng, rate, seconds).T, rate)
            entries.append({"path": rel, "kind": "background", "category": "music", "split": split,
                            "source": "synthetic chords, bass and drums", "license": "generated"})
            kind = ("pink", "brown", "hum")[k % 3]
            rel = f"{split}/noise_{k}.wav"
            write_audio(folder / rel, _noise(rng, rate, seconds, kind).T, rate)
            entries.append({"path": rel, "kind": "background", "category": "noise", "split": split,
                            "source": f"generated {kind} noise", "license": "generated"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return manifest
