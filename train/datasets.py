"""Training data: tracks of aligned mixture/vocals pairs, and segment datasets over them.

Sources of tracks (each a list of :class:`Track`):

* :func:`musdb_tracks`: MUSDB18 through the ``musdb`` package, stem-MP4
  layout (decoded by stempeg/ffmpeg) or WAV layout (``is_wav=True``),
  subsets ``train``/``test`` and the ``train``/``valid`` split;
* :func:`medleydb_tracks`: MedleyDB 2.0: the mix, and the sum of the stems
  whose instrument is a voice, chosen from each track's metadata YAML;
  instrumental tracks give silent vocals;
* :func:`folder_tracks`: the report's layout, one folder per track holding
  ``mixture.wav`` and ``vocals.wav`` (:mod:`deepiso.train.prepare` writes it).

Voice and background recordings mixed on the fly are handled by
:class:`SourceMixDataset` (folders, or a corpus ``manifest.json``).

A track reads ``(frames, channels)`` float32 at its native rate; the segment
datasets resample to the model rate, fit the channel count and return
tensors ``mixture``/``vocals`` of shape ``(channels, samples)``. Every random
choice is drawn from ``(seed, epoch, index)``, so an item is the same whoever
loads it and whenever: that is what makes resuming after a kill exact.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from deepiso.realtime.audio_io import AudioFileError, read_audio, resample

from . import voice_augment as va
from .pcm_cache import CacheError, PcmCache

#: MedleyDB instrument labels that are a human voice (the "voice" family of
#: its taxonomy, minus crowd noise and beatboxing).
MEDLEYDB_VOICE_LABELS = frozenset({
    "male singer", "female singer", "vocalists", "male speaker", "female speaker",
    "male rapper", "female rapper", "choir", "screamer",
})

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif")


class DatasetError(Exception):
    """A dataset that cannot be used; the message names the file or folder."""


def _rng(*keys: int | str) -> np.random.Generator:
    """A generator seeded from a tuple of ints/strings (stable across processes and runs)."""
    ints = [k if isinstance(k, int) else int.from_bytes(hashlib.sha1(k.encode()).digest()[:4], "little")
            for k in keys]
    return np.random.default_rng([abs(i) for i in ints])


def stable_fraction(name: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by ``name`` alone (splits that do not move when files are added)."""
    return int.from_bytes(hashlib.sha1(f"{salt}{name}".encode()).digest()[:8], "little") / 2**64


def _fit_length(x: np.ndarray, frames: int) -> np.ndarray:
    if x.shape[0] >= frames:
        return x[:frames]
    return np.pad(x, ((0, frames - x.shape[0]), (0, 0)))


# ----------------------------------------------------------------------------
# Tracks


class Track:
    """An aligned mixture/vocals pair. Subclasses implement :meth:`read`.

    ``name``, ``rate`` (Hz, native), ``length`` (samples at ``rate``) and
    ``channels`` are known without decoding the audio.
    """

    name: str
    rate: int
    length: int
    channels: int

    def read(self, start: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """``(mixture, vocals)``, each float32 ``(frames, channels)`` at ``rate``, from sample ``start``.

        Reads past the end are zero-padded.
        """
        raise NotImplementedError

    def accompaniment_read(self, start: int, frames: int) -> np.ndarray:
        mix, voc = self.read(start, frames)
        return mix - voc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.rate} Hz, {self.length} samples, {self.channels} ch)"


def _wav_info(path: Path) -> sf._SoundFileInfo:
    if not path.exists():
        raise DatasetError(f"{path}: missing file")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DatasetError(f"{path}: not a readable audio file ({exc})") from None


def _read_wav(path: Path, start: int, frames: int) -> np.ndarray:
    try:
        data, _ = sf.read(str(path), start=start, stop=start + frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DatasetError(f"{path}: cannot read samples {start}..{start + frames} ({exc})") from None
    return _fit_length(data, frames)


class WavPairTrack(Track):
    """The report's layout: ``mixture.wav`` + ``vocals.wav`` in one folder (or any two files)."""

    def __init__(self, name: str, mixture: Path, vocals: Path) -> None:
        self.name = name
        self.mixture_path, self.vocals_path = Path(mixture), Path(vocals)
        mi, vi = _wav_info(self.mixture_path), _wav_info(self.vocals_path)
        if mi.samplerate != vi.samplerate:
            raise DatasetError(f"{self.vocals_path}: sample rate {vi.samplerate} Hz differs from the mixture's "
                               f"{mi.samplerate} Hz ({self.mixture_path})")
        if mi.frames != vi.frames:
            raise DatasetError(f"{self.vocals_path}: {vi.frames} samples, but the mixture {self.mixture_path} "
                               f"has {mi.frames}")
        if mi.channels != vi.channels:
            raise DatasetError(f"{self.vocals_path}: {vi.channels} channels, the mixture has {mi.channels}")
        if mi.frames == 0:
            raise DatasetError(f"{self.mixture_path}: contains no audio samples")
        self.rate, self.length, self.channels = mi.samplerate, mi.frames, mi.channels

    def read(self, start: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
        return _read_wav(self.mixture_path, start, frames), _read_wav(self.vocals_path, start, frames)


class MusdbTrack(Track):
    """One ``musdb`` track; chunks are decoded by musdb (soundfile for WAV, stempeg/ffmpeg for stem MP4)."""

    def __init__(self, track) -> None:  # musdb.audio_classes.MultiTrack
        self.track = track
        self.name = track.name
        path = Path(track.path)
        if track.is_wav:
            folder = path.parent
            if "vocals" not in track.sources:
                raise DatasetError(f"{folder / 'vocals.wav'}: missing file (MUSDB18 WAV track {track.name!r})")
            info = _wav_info(path)
            vinfo = _wav_info(Path(track.sources["vocals"].path))
            if vinfo.frames != info.frames or vinfo.samplerate != info.samplerate:
                raise DatasetError(f"{track.sources['vocals'].path}: {vinfo.frames} samples at {vinfo.samplerate} "
                                   f"Hz, the mixture {path} has {info.frames} at {info.samplerate} Hz")
            self.rate, self.length, self.channels = info.samplerate, info.frames, info.channels
        else:
            import stempeg

            try:
                info = stempeg.Info(str(path))
            except Exception as exc:
                raise DatasetError(f"{path}: not a readable stem file ({exc})") from None
            if info.nb_audio_streams < 5:
                raise DatasetError(f"{path}: a MUSDB18 stem file needs 5 audio streams (mixture, drums, bass, "
                                   f"other, vocals), it has {info.nb_audio_streams}")
            self.rate = int(info.rate(0))
            self.length = int(info.samples(0))
            self.channels = int(info.channels(0))
        if self.length == 0:
            raise DatasetError(f"{path}: contains no audio samples")

    def read(self, start: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.track
        if t.is_wav:
            # musdb decodes WAV through ffmpeg at 16 bits; libsndfile reads the exact samples, faster
            voc = np.zeros((frames, self.channels), np.float32)
            for src in t.targets["vocals"].sources:
                voc += np.float32(src.gain) * _read_wav(Path(src.path), start, frames)
            return _read_wav(Path(t.path), start, frames), voc
        t.chunk_start = start / self.rate
        t.chunk_duration = frames / self.rate
        try:
            mix = np.asarray(t.audio, dtype=np.float32)
            voc = np.asarray(t.targets["vocals"].audio, dtype=np.float32)
        except Exception as exc:
            raise DatasetError(f"{t.path}: cannot decode samples {start}..{start + frames} ({exc})") from None
        finally:
            t.chunk_start, t.chunk_duration = 0, None
        return _fit_length(mix, frames), _fit_length(voc, frames)


class MedleyTrack(Track):
    """MedleyDB: the mix plus the sum of the voice stems (zeros when there are none)."""

    def __init__(self, name: str, mix_path: Path, voice_stems: Sequence[Path]) -> None:
        self.name = name
        self.mix_path = Path(mix_path)
        self.voice_stems = [Path(p) for p in voice_stems]
        mi = _wav_info(self.mix_path)
        for p in self.voice_stems:
            si = _wav_info(p)
            if si.samplerate != mi.samplerate:
                raise DatasetError(f"{p}: sample rate {si.samplerate} Hz differs from the mix's {mi.samplerate} Hz")
            if si.frames != mi.frames:
                raise DatasetError(f"{p}: {si.frames} samples, but the mix {self.mix_path} has {mi.frames}")
            if si.channels not in (1, mi.channels):
                raise DatasetError(f"{p}: {si.channels} channels, the mix has {mi.channels}")
        if mi.frames == 0:
            raise DatasetError(f"{self.mix_path}: contains no audio samples")
        self.rate, self.length, self.channels = mi.samplerate, mi.frames, mi.channels

    def read(self, start: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
        mix = _read_wav(self.mix_path, start, frames)
        voc = np.zeros_like(mix)
        for p in self.voice_stems:
            voc += _read_wav(p, start, frames)  # a mono stem broadcasts over the mix's channels
        return mix, voc


class LoopbackTrack(Track):
    """The report's loopback: ``"vocals"`` → vocals-only in, vocals out;
    ``"accompaniment"`` → accompaniment-only in, silence out."""

    def __init__(self, track: Track, mode: str) -> None:
        if mode not in ("vocals", "accompaniment"):
            raise ValueError(f"loopback mode must be 'vocals' or 'accompaniment', got {mode!r}")
        self.inner, self.mode = track, mode
        self.name = f"{track.name} [loopback {mode}]"
        self.rate, self.length, self.channels = track.rate, track.length, track.channels

    def read(self, start: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
        mix, voc = self.inner.read(start, frames)
        if self.mode == "vocals":
            return voc, voc.copy()
        return mix - voc, np.zeros_like(voc)


def apply_loopback(tracks: Sequence[Track], fraction: float, seed: int) -> list[Track]:
    """The training tracks plus, for ``fraction`` of them (chosen by ``seed``), a vocals-only and an
    accompaniment-only copy. Apply it to the training split only, after splitting (else the
    validation tracks leak into training)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"loopback fraction must be in [0, 1], got {fraction}")
    tracks = list(tracks)
    count = int(round(fraction * len(tracks)))
    if count == 0:
        return tracks
    chosen = _rng(seed, "loopback").choice(len(tracks), size=count, replace=False)
    extra: list[Track] = []
    for i in sorted(int(c) for c in chosen):
        extra += [LoopbackTrack(tracks[i], "vocals"), LoopbackTrack(tracks[i], "accompaniment")]
    return tracks + extra


# ----------------------------------------------------------------------------
# Track loaders


def folder_tracks(root: str | os.PathLike) -> list[Track]:
    """Every sub-folder of ``root`` holding ``mixture.wav`` and ``vocals.wav`` (sorted by name)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    tracks: list[Track] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        mix, voc = sub / "mixture.wav", sub / "vocals.wav"
        if not mix.exists() and not voc.exists():
            continue
        if not mix.exists():
            raise DatasetError(f"{mix}: missing file (track folder {sub.name!r} has vocals.wav but no mixture.wav)")
        if not voc.exists():
            raise DatasetError(f"{voc}: missing file (track folder {sub.name!r} has mixture.wav but no vocals.wav)")
        tracks.append(WavPairTrack(sub.name, mix, voc))
    if not tracks:
        raise DatasetError(f"{root}: no track folders with mixture.wav and vocals.wav")
    return tracks


def musdb_tracks(root: str | os.PathLike, subsets: str | Sequence[str] = "train", split: str | None = None,
                 is_wav: bool = False) -> list[Track]:
    """MUSDB18 tracks through the ``musdb`` package.

    ``subsets``: ``"train"``, ``"test"`` or both; ``split`` (only with
    ``subsets="train"``): ``"train"`` or ``"valid"`` (musdb's fixed
    validation tracks) or ``None``; ``is_wav``: the decoded WAV layout
    instead of stem MP4s.
    """
    import musdb

    root = Path(root)
    subsets = [subsets] if isinstance(subsets, str) else list(subsets)
    for s in subsets:
        if s not in ("train", "test"):
            raise DatasetError(f"unknown MUSDB18 subset {s!r}; use 'train' and/or 'test'")
        if not (root / s).is_dir():
            raise DatasetError(f"{root / s}: missing MUSDB18 subset folder")
    try:
        db = musdb.DB(root=str(root), subsets=subsets, split=split, is_wav=is_wav)
    except RuntimeError as exc:
        raise DatasetError(f"{root}: {exc}") from None
    if len(db) == 0:
        layout = "track folders with mixture.wav" if is_wav else "*.stem.mp4 files"
        raise DatasetError(f"{root}: no MUSDB18 tracks ({layout}) in {', '.join(subsets)}"
                           + (f" for split {split!r}" if split else ""))
    return [MusdbTrack(t) for t in db]


def _medley_metadata_files(root: Path, metadata: Path | None) -> list[Path]:
    candidates = [metadata] if metadata else [root / "Metadata", root / "metadata", root]
    for folder in candidates:
        if folder is not None and folder.is_dir():
            files = sorted(folder.glob("*_METADATA.yaml"))
            if files:
                return files
    where = metadata or root
    raise DatasetError(f"{where}: no MedleyDB metadata files (*_METADATA.yaml)")


def medleydb_tracks(root: str | os.PathLike, metadata: str | os.PathLike | None = None,
                    voice_labels: frozenset[str] | set[str] = MEDLEYDB_VOICE_LABELS) -> list[Track]:
    """MedleyDB 2.0 tracks from their metadata YAML.

    ``root``: the audio folder (``root/<track>/<mix_filename>`` or
    ``root/Audio/<track>/...``); ``metadata``: the folder of
    ``<track>_METADATA.yaml`` files (default: ``root/Metadata`` or ``root``).
    Vocals are the sum of the stems whose ``instrument`` is in
    ``voice_labels``; ``instrumental: yes`` tracks give silent vocals.
    """
    import yaml

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such MedleyDB folder")
    tracks: list[Track] = []
    for meta_path in _medley_metadata_files(root, Path(metadata) if metadata else None):
        track_id = meta_path.name[: -len("_METADATA.yaml")]
        try:
            meta = yaml.safe_load(meta_path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{meta_path}: not valid YAML ({exc})") from None
        if not isinstance(meta, dict) or "mix_filename" not in meta or "stems" not in meta:
            raise DatasetError(f"{meta_path}: not a MedleyDB metadata file (needs mix_filename and stems)")
        audio_dir = root / track_id if (root / track_id).is_dir() else root / "Audio" / track_id
        if not audio_dir.is_dir():
            raise DatasetError(f"{audio_dir}: missing audio folder for {meta_path.name}")
        mix = audio_dir / str(meta["mix_filename"])
        stem_dir = audio_dir / str(meta.get("stem_dir") or f"{track_id}_STEMS")
        stems = meta.get("stems") or {}
        if not isinstance(stems, dict):
            raise DatasetError(f"{meta_path}: 'stems' must be a mapping of stem ids")
        voices: list[Path] = []
        instrumental = str(meta.get("instrumental", "no")).lower() in ("yes", "true", "1")
        if not instrumental:
            for sid in sorted(stems):
                stem = stems[sid]
                if not isinstance(stem, dict) or "filename" not in stem:
                    raise DatasetError(f"{meta_path}: stem {sid} has no filename")
                labels = stem.get("instrument")
                labels = labels if isinstance(labels, list) else [labels]
                if any(str(label).strip().lower() in voice_labels for label in labels):
                    path = stem_dir / str(stem["filename"])
                    if not path.exists():
                        raise DatasetError(f"{path}: missing voice stem {sid} listed in {meta_path}")
                    voices.append(path)
        if not mix.exists():
            raise DatasetError(f"{mix}: missing mix listed in {meta_path}")
        tracks.append(MedleyTrack(track_id, mix, voices))
    return tracks


def split_tracks(tracks: Sequence[Track], valid_fraction: float, salt: str = "") -> tuple[list[Track], list[Track]]:
    """Deterministic train/valid split by track name (a track never changes side when others are added).

    At least one track goes to validation when ``valid_fraction > 0`` and there are two or more.
    """
    train = [t for t in tracks if stable_fraction(t.name, salt) >= valid_fraction]
    valid = [t for t in tracks if stable_fraction(t.name, salt) < valid_fraction]
    if valid_fraction > 0 and not valid and len(train) > 1:
        pick = min(train, key=lambda t: stable_fraction(t.name, salt))
        train.remove(pick)
        valid.append(pick)
    return train, valid


# ----------------------------------------------------------------------------
# Segment datasets


def _fit_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[1] == channels:
        return x
    if channels == 1:
        return x.mean(axis=1, keepdims=True)
    if x.shape[1] == 1:
        return np.repeat(x, channels, axis=1)
    return x[:, :channels]


def read_segment(track: Track, start_s: float, samples: int, rate: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mixture, vocals)`` float32 ``(channels, samples)`` at ``rate`` starting ``start_s`` seconds in."""
    start = int(round(start_s * track.rate))
    if track.rate == rate:
        mix, voc = track.read(start, samples)
    else:
        # read a little more so the resampler's edges fall outside the segment
        native = int(math.ceil(samples * track.rate / rate)) + 64
        mix, voc = track.read(start, native)
        both = resample(np.concatenate([mix, voc], axis=1), track.rate, rate)
        both = _fit_length(both, samples)
        mix, voc = both[:, : mix.shape[1]], both[:, mix.shape[1] :]
    mix, voc = _fit_channels(mix, channels), _fit_channels(voc, channels)
    return np.ascontiguousarray(mix.T, dtype=np.float32), np.ascontiguousarray(voc.T, dtype=np.float32)


class EpochDataset(Dataset):
    """Base for datasets whose items depend on ``(seed, epoch, index)``; call :meth:`set_epoch`.

    ``draw`` picks another sequence of training epochs from the same ``seed`` (draw 0 is the
    plain one): a run that starts from another run's weights takes a new draw and sees new
    mixtures, while the validation items (which depend on ``seed`` only) stay comparable.
    """

    def __init__(self, seed: int, items: int, train: bool, draw: int = 0) -> None:
        if items < 1:
            raise DatasetError(f"items per epoch must be >= 1, got {items}")
        if draw < 0:
            raise DatasetError(f"the draw must be >= 0, got {draw}")
        self.seed, self.items, self.train, self.epoch, self.draw = seed, items, train, 0, draw

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.items

    @property
    def epoch_key(self) -> int | str:
        """What a training item's randomness is drawn from besides the seed and its index."""
        return self.epoch if self.draw == 0 else f"draw {self.draw} epoch {self.epoch}"

    def item_rng(self, index: int) -> np.random.Generator:
        # validation items are the same every epoch (and every draw), training items change
        return _rng(self.seed, self.epoch_key if self.train else -1, index, int(self.train))


class TrackSegments(EpochDataset):
    """Random (training) or fixed (validation) segments of tracks.

    Item ``i`` → ``{"mixture": (channels, samples), "vocals": (channels, samples)}``
    float32 tensors at ``rate``. Training: track ``perm[i % n]`` of a fresh
    permutation per epoch, at a random offset. Validation: track ``i % n`` at
    offsets evenly spread over it.
    """

    def __init__(self, tracks: Sequence[Track], rate: int, samples: int, items: int | None = None,
                 channels: int = 1, seed: int = 0, train: bool = True, draw: int = 0) -> None:
        if not tracks:
            raise DatasetError("no tracks to draw segments from")
        self.tracks = list(tracks)
        super().__init__(seed, items if items is not None else len(self.tracks), train, draw)
        self.rate, self.samples, self.channels = rate, samples, channels

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self.tracks)
        rng = self.item_rng(index)
        if self.train:
            order = _rng(self.seed, self.epoch_key, "order").permutation(n)
            track = self.tracks[int(order[index % n])]
            duration = track.length / track.rate
            span = max(0.0, duration - self.samples / self.rate)
            start_s = float(rng.uniform(0.0, span)) if span > 0 else 0.0
        else:
            track = self.tracks[index % n]
            rounds = max(1, math.ceil(self.items / n))
            duration = track.length / track.rate
            span = max(0.0, duration - self.samples / self.rate)
            start_s = span * ((index // n) + 0.5) / rounds
        mix, voc = read_segment(track, start_s, self.samples, self.rate, self.channels)
        return {"mixture": torch.from_numpy(mix), "vocals": torch.from_numpy(voc)}


# ----------------------------------------------------------------------------
# Voice + background mixed on the fly


@dataclass(frozen=True)
class SourceFile:
    path: Path
    kind: str  # "voice" | "background"
    category: str = ""
    split: str = "train"
    weight: float = 1.0  # relative sampling weight per second of audio
    duration: float = 0.0  # seconds; 0 = unknown (counts as 1 s when sampling)
    source: str = ""
    license: str = ""
    bandwidth: float = 0.0  # Hz of audio content (half the native rate); 0 = unknown / full band


def _audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder of recordings")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise DatasetError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def folder_sources(voice_dirs: Sequence[str | os.PathLike], background_dirs: Sequence[str | os.PathLike],
                   valid_fraction: float = 0.1) -> list[SourceFile]:
    """Voice and background files from folders (searched recursively), split by file name."""
    out: list[SourceFile] = []
    for kind, dirs in (("voice", voice_dirs), ("background", background_dirs)):
        if not dirs:
            raise DatasetError(f"no {kind} folders given")
        for d in dirs:
            for f in _audio_files(Path(d)):
                split = "valid" if stable_fraction(str(f.relative_to(d)), kind) < valid_fraction else "train"
                try:
                    duration = float(sf.info(str(f)).duration)
                except (sf.LibsndfileError, RuntimeError):
                    duration = 0.0  # decoded by ffmpeg later; sampled as if 1 s long
                out.append(SourceFile(f, kind, Path(d).name, split, duration=duration))
    return out


def manifest_sources(manifest: str | os.PathLike) -> list[SourceFile]:
    """Files listed by a corpus manifest (``deepiso corpus build`` writes it).

    ``manifest``: the corpus folder, or its ``manifest.jsonl`` (one JSON record
    per line) or ``manifest.json`` (``{"files": [...]}`` or a list). Each
    record needs ``path`` (relative to the manifest's folder) and ``kind``
    (``voice`` | ``background``); ``category``, ``split`` (train/valid/test),
    ``weight``, ``duration``, ``source``, ``license`` and ``bandwidth`` (Hz, or
    half of ``native_rate``) are used when present.
    """
    manifest = Path(manifest)
    if manifest.is_dir():
        for name in ("manifest.jsonl", "manifest.json"):
            if (manifest / name).is_file():
                manifest = manifest / name
                break
        else:
            raise DatasetError(f"{manifest}: no manifest.jsonl or manifest.json in the corpus folder")
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: no such corpus manifest")
    try:
        text = manifest.read_text()
        if manifest.suffix == ".jsonl":
            entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
            entries = data.get("files") if isinstance(data, dict) else data
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{manifest}: not valid JSON ({exc})") from None
    if not isinstance(entries, list) or not entries:
        raise DatasetError(f"{manifest}: lists no files")
    out: list[SourceFile] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "path" not in e or e.get("kind") not in ("voice", "background"):
            raise DatasetError(f"{manifest}: record {i + 1} needs 'path' and kind 'voice' or 'background'")
        path = manifest.parent / e["path"]
        if not path.exists():
            raise DatasetError(f"{path}: missing file listed in {manifest}")
        split = str(e.get("split", "train")).lower()
        split = "valid" if split in ("valid", "validation", "val") else split
        try:
            bandwidth = float(e.get("bandwidth") or 0.0) or float(e.get("native_rate") or 0.0) / 2
        except (TypeError, ValueError):
            raise DatasetError(f"{manifest}: record {i + 1} has a bandwidth or native_rate that is not a number") \
                from None
        out.append(SourceFile(path, e["kind"], str(e.get("category", "")), split,
                              weight=float(e.get("weight", 1.0) or 0.0), duration=float(e.get("duration", 0.0) or 0.0),
                              source=str(e.get("source", "")), license=str(e.get("license", "")),
                              bandwidth=max(bandwidth, 0.0)))
    return out


def sources_summary(files: Sequence[SourceFile]) -> list[dict]:
    """Per source: kind, license and minutes (for the model card)."""
    table: dict[str, dict] = {}
    for f in files:
        key = f.source or f.category or f.path.parent.name
        row = table.setdefault(key, {"name": key, "kind": f.kind, "license": f.license, "minutes": 0.0})
        row["minutes"] += f.duration / 60
    return [dict(r, minutes=round(r["minutes"], 2)) for r in sorted(table.values(), key=lambda r: r["name"])]


def band_limit(x: np.ndarray, rate: int, bandwidth: float) -> np.ndarray:
    """``(channels, n)`` low-passed to ``bandwidth`` Hz the way a lower native rate limits it.

    Resampled to ``2 * bandwidth`` and back (soxr, as the corpus converts
    recordings), so the band edge matches that of a voice recorded at that rate.
    """
    import soxr

    low = max(1, int(round(2 * bandwidth)))
    n = x.shape[1]
    y = soxr.resample(soxr.resample(np.ascontiguousarray(x.T), rate, low, quality="HQ"), low, rate, quality="HQ")
    y = np.ascontiguousarray(y.T[:, :n], dtype=np.float32)
    return y if y.shape[1] == n else np.pad(y, ((0, 0), (0, n - y.shape[1])))


def change_speed(x: np.ndarray, factor: float, length: int) -> np.ndarray:
    """``(channels, n)`` played ``factor`` times as fast, as a tape or a sampler does: pitch, formants
    and tempo all move by ``factor`` (a voice of another size, speaking faster or slower).

    Resampled with soxr as if recorded at ``factor`` times the rate; the result is cut or padded
    with zeros to ``length`` frames (``round(n / factor)`` for the whole input).
    """
    import soxr

    if not factor > 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if x.shape[1] == 0:
        return np.zeros((x.shape[0], length), np.float32)
    y = soxr.resample(np.ascontiguousarray(x.T, dtype=np.float32), 1000.0 * factor, 1000.0, quality="HQ")
    y = np.ascontiguousarray(y.T[:, :length], dtype=np.float32)
    return y if y.shape[1] == length else np.pad(y, ((0, 0), (0, length - y.shape[1])))


def hiss(rng: np.random.Generator, shape: tuple[int, ...], slope: float) -> np.ndarray:
    """Gaussian noise of ``shape`` (channels, n) whose power falls as ``f ** slope`` (0 white, -1 pink,
    -2 brown), float32, unit-ish scale (callers set the level)."""
    white = rng.standard_normal(shape)
    if slope == 0.0 or shape[-1] < 2:
        return white.astype(np.float32)
    spectrum = np.fft.rfft(white, axis=-1)
    f = np.arange(spectrum.shape[-1], dtype=np.float64)
    f[0] = 1.0  # DC keeps its share, no division by zero
    spectrum *= f ** (slope / 2)
    return np.fft.irfft(spectrum, n=shape[-1], axis=-1).astype(np.float32)


class SourceMixDataset(EpochDataset):
    """Voice over background, mixed on the fly.

    Each item picks a voice file and a background file, random offsets and a
    random voice length (the rest of the segment is voice-free, which teaches
    silence in gaps), a random SNR in ``snr_db`` and a random level in
    ``level_db`` (dBFS RMS of the mixture). With probability
    ``loopback / (1 + 2 * loopback)`` each, an item is voice-only (target =
    input) or background-only (target = silence): the share the report's
    track-level loopback gives. With probability ``band_match`` a training
    item whose voice is band-limited (``SourceFile.bandwidth`` below 95 % of
    the Nyquist rate: phone-band prompts, 16 kHz synthesis) gets its
    background band-limited the same way, as on a phone call: the item then
    carries no evidence that "voice has no highs", which phone-band voices
    over full-band music would otherwise teach. Returns the same dict as
    :class:`TrackSegments`. Files at the mixing rate are read in part (only
    the frames an item uses); others are decoded whole and cached per process
    (``cache_mb``). With ``pcm`` (a :class:`~deepiso.train.pcm_cache.PcmCache` of
    the corpus) every read is a slice of the decoded corpus instead. All three
    ways give the same items.

    With probability ``quiet`` a training item gets a quiet stretch of
    ``quiet_seconds`` (at the start of the item half the time, anywhere
    otherwise): no voice, and the background turned down to
    ``quiet_level_db`` dBFS RMS; with probability ``quiet_hiss`` (and always
    when the item has no background) the stretch is hiss instead, noise with a
    random spectral slope from white to brown (:func:`hiss`), as a microphone
    picks up in a quiet room. Live input has such stretches (a muted microphone, a pause
    in the music) and the recurrent state must come out of them ready for the
    voice that follows; without them every item is loud from its first frame.

    With probability ``speed`` each, a training item's voice and its background
    are played faster or slower (:func:`change_speed`) by a factor drawn
    log-uniformly from ``speed_factor``: pitch, formants and tempo move
    together, as in Demucs' repitch augmentation, so a few speakers stand in
    for voices of other sizes and a few hours of music for other keys and tempi.

    Voice augmentations (:mod:`deepiso.train.voice_augment`), training items only,
    each drawn from a generator of its own keyed by ``(seed, epoch, index, name)``
    (at probability 0 nothing is drawn and the items are those of a dataset
    without it; turning one on leaves the item's other choices as they were):

    * ``formant``: the voice's formants move by a factor drawn log-uniformly
      from ``formant_factor``, its pitch stays (:func:`~.voice_augment.formant_shift`);
    * ``pitch``: its pitch moves by a factor from ``pitch_factor``, its formants
      stay (:func:`~.voice_augment.pitch_shift`);
    * ``mic_eq``: the voice and, drawn apart, the background get a random
      microphone colour of up to ±``mic_eq_db`` dB (:func:`~.voice_augment.mic_eq`);
    * ``room``: the voice is spoken in a random shoebox room with an RT60 from
      ``room_rt60`` (:func:`~.voice_augment.room_reverb`); the mixture gets the
      reverberant voice, the target is ``room_target``: ``"early"`` (direct sound
      and the first 50 ms of reflections) or ``"dry"``; with probability
      ``room_background`` the background plays in the same room too;
    * ``phone``: the item is heard through a telephone line
      (:func:`~.voice_augment.phone_line`: narrow or wide band, μ- or A-law, and
      with probability ``phone_codec`` GSM-FR or G.722 through ffmpeg): the whole
      mixture with probability ``phone_mixture`` (a call from a noisy place),
      else the voice alone (a call heard over local music). The target is the
      voice through the same line, so it is still exactly what the mixture's
      voice sounds like.

    The voice passes formant, pitch, microphone, room, phone in that order.
    """

    def __init__(self, files: Sequence[SourceFile], rate: int, samples: int, items: int, channels: int = 1,
                 seed: int = 0, train: bool = True, snr_db: tuple[float, float] = (-5.0, 10.0),
                 level_db: tuple[float, float] = (-35.0, -15.0), loopback: float = 0.1,
                 voice_fill: tuple[float, float] = (0.5, 1.0), cache_mb: float = 512.0,
                 band_match: float = 0.0, partial_reads: bool = True, quiet: float = 0.0,
                 quiet_seconds: tuple[float, float] = (0.25, 2.0),
                 quiet_level_db: tuple[float, float] = (-100.0, -50.0), quiet_hiss: float = 0.5,
                 speed: float = 0.0, speed_factor: tuple[float, float] = (0.85, 1.18), draw: int = 0,
                 pcm: PcmCache | None = None, formant: float = 0.0,
                 formant_factor: tuple[float, float] = (0.85, 1.18), pitch: float = 0.0,
                 pitch_factor: tuple[float, float] = (0.84, 1.19), mic_eq: float = 0.0, mic_eq_db: float = 6.0,
                 room: float = 0.0, room_rt60: tuple[float, float] = (0.15, 0.8), room_target: str = "early",
                 room_background: float = 0.5, phone: float = 0.0, phone_mixture: float = 0.5,
                 phone_codec: float = 0.0) -> None:
        super().__init__(seed, items, train, draw)
        self.voices = [f for f in files if f.kind == "voice"]
        self.backgrounds = [f for f in files if f.kind == "background"]
        if not self.voices:
            raise DatasetError("no voice recordings for this split")
        if not self.backgrounds:
            raise DatasetError("no background recordings for this split")
        self.rate, self.samples, self.channels = rate, samples, channels
        # pick files in proportion to weight x duration: every second of audio is equally likely
        self._p_voice = self._probabilities(self.voices)
        self._p_bg = self._probabilities(self.backgrounds)
        self.snr_db, self.level_db, self.loopback, self.voice_fill = snr_db, level_db, loopback, voice_fill
        if not 0.0 <= band_match <= 1.0:
            raise DatasetError(f"band_match must be a probability in [0, 1], got {band_match}")
        self.band_match = band_match
        if not 0.0 <= quiet <= 1.0:
            raise DatasetError(f"quiet must be a probability in [0, 1], got {quiet}")
        if len(quiet_seconds) != 2 or not 0 < quiet_seconds[0] <= quiet_seconds[1]:
            raise DatasetError(f"quiet_seconds must be [low, high] with 0 < low <= high, got {list(quiet_seconds)}")
        if len(quiet_level_db) != 2 or not quiet_level_db[0] <= quiet_level_db[1] < 0:
            raise DatasetError(f"quiet_level_db must be [low, high] dBFS with low <= high < 0, "
                               f"got {list(quiet_level_db)}")
        if not 0.0 <= quiet_hiss <= 1.0:
            raise DatasetError(f"quiet_hiss must be a probability in [0, 1], got {quiet_hiss}")
        self.quiet, self.quiet_seconds, self.quiet_level_db = quiet, tuple(quiet_seconds), tuple(quiet_level_db)
        self.quiet_hiss = quiet_hiss
        if not 0.0 <= speed <= 1.0:
            raise DatasetError(f"speed must be a probability in [0, 1], got {speed}")
        if len(speed_factor) != 2 or not 0.5 <= speed_factor[0] <= speed_factor[1] <= 2.0:
            raise DatasetError(f"speed_factor must be [low, high] with 0.5 <= low <= high <= 2, "
                               f"got {list(speed_factor)}")
        self.speed, self.speed_factor = speed, (float(speed_factor[0]), float(speed_factor[1]))
        for name, value in (("formant", formant), ("pitch", pitch), ("mic_eq", mic_eq), ("room", room),
                            ("room_background", room_background), ("phone", phone),
                            ("phone_mixture", phone_mixture), ("phone_codec", phone_codec)):
            if not 0.0 <= value <= 1.0:
                raise DatasetError(f"{name} must be a probability in [0, 1], got {value}")
        for name, value, low, high in (("formant_factor", formant_factor, 0.5, 2.0),
                                       ("pitch_factor", pitch_factor, 0.5, 2.0),
                                       ("room_rt60", room_rt60, 0.05, 3.0)):
            if len(value) != 2 or not low <= value[0] <= value[1] <= high:
                raise DatasetError(f"{name} must be [low, high] with {low} <= low <= high <= {high}, "
                                   f"got {list(value)}")
        if not 0.0 < mic_eq_db <= 24.0:
            raise DatasetError(f"mic_eq_db must be in (0, 24] dB, got {mic_eq_db}")
        if room_target not in va.ROOM_TARGETS:
            raise DatasetError(f"room_target must be one of {', '.join(va.ROOM_TARGETS)}, got {room_target!r}")
        if phone > 0 and phone_codec > 0 and train:
            missing = sorted({enc for enc, _, _ in va.PHONE_CODECS.values()} - va.ffmpeg_codecs())
            if missing:
                raise DatasetError(f"phone_codec needs ffmpeg with the encoders {', '.join(missing)} "
                                   f"(`ffmpeg -encoders`); set phone_codec to 0 without them")
        if room > 0 and train:
            try:
                import pyroomacoustics  # noqa: F401
            except ImportError:
                raise DatasetError("room needs pyroomacoustics (pip install pyroomacoustics)") from None
        self.formant, self.formant_factor = formant, (float(formant_factor[0]), float(formant_factor[1]))
        self.pitch, self.pitch_factor = pitch, (float(pitch_factor[0]), float(pitch_factor[1]))
        self.mic_eq, self.mic_eq_db = mic_eq, float(mic_eq_db)
        self.room, self.room_rt60 = room, (float(room_rt60[0]), float(room_rt60[1]))
        self.room_target, self.room_background = room_target, room_background
        self.phone, self.phone_mixture, self.phone_codec = phone, phone_mixture, phone_codec
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._cached = 0
        self.partial_reads = partial_reads
        self._info: dict[Path, int | None] = {}
        if pcm is not None:
            try:
                pcm.check([f.path for f in files], rate, channels)
            except CacheError as exc:
                raise DatasetError(str(exc)) from None
        self.pcm = pcm

    @staticmethod
    def _probabilities(files: Sequence[SourceFile]) -> np.ndarray:
        w = np.array([max(f.weight, 0.0) * (f.duration if f.duration > 0 else 1.0) for f in files], np.float64)
        if w.sum() <= 0:
            raise DatasetError(f"{files[0].path.parent}: every file has weight 0")
        return w / w.sum()

    def _load(self, f: SourceFile) -> np.ndarray:
        if self.pcm is not None:
            return self.pcm.read(f.path, 0, self.pcm.frames(f.path))
        if f.path in self._cache:
            self._cache.move_to_end(f.path)
            return self._cache[f.path]
        try:
            audio, _ = read_audio(f.path, sample_rate=self.rate, channels=self.channels)
        except AudioFileError as exc:
            raise DatasetError(str(exc)) from None
        audio = np.ascontiguousarray(audio.T)  # (channels, n)
        self._cache[f.path] = audio
        self._cached += audio.nbytes
        while self._cached > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.nbytes
        return audio

    def _clip(self, audio: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        n = audio.shape[1]
        if n >= length:
            start = int(rng.integers(0, n - length + 1))
            return audio[:, start : start + length]
        reps = -(-length // n)  # loop short backgrounds
        return np.tile(audio, (1, reps))[:, :length]

    def _frames(self, f: SourceFile) -> int | None:
        """Frames of a file that can be read in part (at the mixing rate, libsndfile), else ``None``."""
        if self.pcm is not None:
            return self.pcm.frames(f.path)
        if f.path not in self._info:
            try:
                info = sf.info(str(f.path))
                self._info[f.path] = int(info.frames) if int(info.samplerate) == self.rate and info.frames > 0 \
                    else None
            except (sf.LibsndfileError, RuntimeError):
                self._info[f.path] = None  # decoded whole (ffmpeg) and resampled by _load
        return self._info[f.path]

    def _read(self, f: SourceFile, start: int, length: int) -> np.ndarray:
        """Frames ``start .. start + length`` of ``f`` as ``(channels, length)``, reading only those."""
        if self.pcm is not None:
            return self.pcm.read(f.path, start, length)
        try:
            data = sf.read(str(f.path), start=start, frames=length, dtype="float32", always_2d=True)[0]
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DatasetError(f"{f.path}: {exc}") from None
        return np.ascontiguousarray(_fit_length(_fit_channels(data, self.channels), length).T)

    def _segment(self, f: SourceFile, length: int, rng: np.random.Generator, *, loop: bool) -> np.ndarray:
        """``length`` frames of ``f`` from a random offset, drawn exactly as :meth:`_clip` draws them.

        Files at the mixing rate are read in part (a 4 s item from a 25 s FLAC
        decodes 4 s, not 25 s); others are decoded whole once and cached. A file
        shorter than ``length`` is looped (``loop``) or returned whole.
        """
        frames = self._frames(f) if self.partial_reads else None
        if frames is None:
            audio = self._load(f)
            if not loop and audio.shape[1] <= length:
                return audio[:, :length]
            return self._clip(audio, length, rng)
        if frames >= length and (loop or frames > length):
            start = int(rng.integers(0, frames - length + 1))
            return self._read(f, start, length)
        whole = self._read(f, 0, frames)
        return np.tile(whole, (1, -(-length // frames)))[:, :length] if loop else whole

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.item_rng(index)
        n = self.samples
        voice_file = self.voices[int(rng.choice(len(self.voices), p=self._p_voice))]
        bg_file = self.backgrounds[int(rng.choice(len(self.backgrounds), p=self._p_bg))]
        voice_frames = self._frames(voice_file) if self.partial_reads else None
        if voice_frames is None:
            voice_frames = self._load(voice_file).shape[1]
        fill = float(rng.uniform(*self.voice_fill))
        voice_speed, bg_speed = self._speed(rng), self._speed(rng)
        vlen = max(1, min(int(fill * n), int(voice_frames / voice_speed)))
        vstart = int(rng.integers(0, n - vlen + 1))
        voice = np.zeros((self.channels, n), np.float32)
        if voice_speed == 1.0:
            seg = self._segment(voice_file, vlen, rng, loop=False)
        else:
            seg = self._segment(voice_file, min(voice_frames, max(1, round(vlen * voice_speed))), rng, loop=False)
            seg = change_speed(seg, voice_speed, min(vlen, round(seg.shape[1] / voice_speed)))
        if self.train:
            seg = self._voice_augment(seg, index)
        voice[:, vstart : vstart + seg.shape[1]] = seg
        if bg_speed == 1.0:
            bg = self._segment(bg_file, n, rng, loop=True).astype(np.float32)
        else:
            bg = change_speed(self._segment(bg_file, round(n * bg_speed), rng, loop=True), bg_speed, n)
        if self.train and self.mic_eq > 0:
            eq = self._aug_rng(index, "mic_eq background")
            if float(eq.uniform()) < self.mic_eq:
                bg = va.mic_eq(bg, self.rate, eq, self.mic_eq_db)
        if self.train and self.band_match > 0 and float(rng.uniform()) < self.band_match \
                and 0 < voice_file.bandwidth < 0.95 * self.rate / 2:
            bg = band_limit(bg, self.rate, voice_file.bandwidth)
        snr = float(rng.uniform(*self.snr_db))
        level = float(rng.uniform(*self.level_db))
        u = float(rng.uniform())
        p = self.loopback / (1 + 2 * self.loopback)
        target = voice  # what the network is taught to keep: the voice itself, unless a room sets it apart
        if self.train and self.room > 0:
            room = self._aug_rng(index, "room")
            if float(room.uniform()) < self.room:
                if float(room.uniform()) < self.room_background:
                    voice, target, bg = va.room_reverb(voice, self.rate, room, self.room_rt60, self.room_target,
                                                       background=bg)
                else:
                    voice, target = va.room_reverb(voice, self.rate, room, self.room_rt60, self.room_target)
                seg = voice[:, vstart : vstart + seg.shape[1]]  # the level is the reverberant voice's
        v_rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-9)
        b_rms = float(np.sqrt(np.mean(bg.astype(np.float64) ** 2)) + 1e-9)
        # voice at `snr` dB over the background (measured where the voice is)
        scale = 10 ** (snr / 20) * b_rms / v_rms
        voice *= scale
        if target is not voice:
            target *= scale
        if u < p:
            bg[:] = 0.0
        elif u < 2 * p:
            voice[:] = 0.0
            target[:] = 0.0
        mix = voice + bg
        m_rms = float(np.sqrt(np.mean(mix.astype(np.float64) ** 2)))
        gain = 10 ** (level / 20) / m_rms if m_rms > 1e-9 else 0.0
        peak = float(np.abs(mix).max()) * gain
        if peak > 0.99:  # never clip: the model must not learn clipping as part of the voice
            gain *= 0.99 / peak
        mix, vocals = (mix * gain).astype(np.float32), (target * gain).astype(np.float32)
        if self.train and self.phone > 0:
            mix, vocals = self._phone(mix, vocals, voice if target is not voice else None, gain, index)
        if self.train and self.quiet > 0 and float(rng.uniform()) < self.quiet:
            self._quiet_stretch(mix, vocals, rng)
        return {"mixture": torch.from_numpy(mix), "vocals": torch.from_numpy(vocals)}

    def _aug_rng(self, index: int, name: str) -> np.random.Generator:
        """The generator of one voice augmentation of training item ``index``."""
        return _rng(self.seed, self.epoch_key, index, name)

    def _voice_augment(self, seg: np.ndarray, index: int) -> np.ndarray:
        """The voice excerpt with its formants, pitch and microphone changed, each with its probability."""
        for name, p, (low, high), shift in (("formant", self.formant, self.formant_factor, va.formant_shift),
                                            ("pitch", self.pitch, self.pitch_factor, va.pitch_shift)):
            if p > 0:
                r = self._aug_rng(index, name)
                if float(r.uniform()) < p:
                    seg = shift(seg, self.rate, float(np.exp(r.uniform(np.log(low), np.log(high)))))
        if self.mic_eq > 0:
            r = self._aug_rng(index, "mic_eq voice")
            if float(r.uniform()) < self.mic_eq:
                seg = va.mic_eq(seg, self.rate, r, self.mic_eq_db)
        return seg

    def _phone(self, mix: np.ndarray, vocals: np.ndarray, voice: np.ndarray | None, gain: float,
               index: int) -> tuple[np.ndarray, np.ndarray]:
        """The item through a phone line with probability ``phone`` (see the class notes). ``voice``: the voice
        as it is in the mixture when that differs from the target (a room's), else ``None``."""
        r = self._aug_rng(index, "phone")
        if float(r.uniform()) >= self.phone:
            return mix, vocals
        band = "narrow" if float(r.uniform()) < 0.5 else "wide"
        law = "mu" if float(r.uniform()) < 0.5 else "a"
        codec = float(r.uniform()) < self.phone_codec
        whole = float(r.uniform()) < self.phone_mixture

        def line(x: np.ndarray) -> np.ndarray:
            return va.phone_line(x, self.rate, band, law, codec)

        heard = line(vocals)
        if whole:
            mix = line(mix)
        elif voice is None:
            mix = mix - vocals + heard
        else:
            v_in = (voice * gain).astype(np.float32)
            mix = mix - v_in + line(v_in)
        peak = float(np.abs(mix).max())
        if peak > 0.99:
            mix, heard = mix * np.float32(0.99 / peak), heard * np.float32(0.99 / peak)
        return np.ascontiguousarray(mix, dtype=np.float32), np.ascontiguousarray(heard, dtype=np.float32)

    def _speed(self, rng: np.random.Generator) -> float:
        """A speed factor for one part of a training item: 1.0, or with probability ``speed`` one drawn
        log-uniformly from ``speed_factor`` (draws nothing when ``speed`` is 0, so the items stay those
        of a dataset without it)."""
        if not self.train or self.speed <= 0 or float(rng.uniform()) >= self.speed:
            return 1.0
        low, high = self.speed_factor
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))

    def _quiet_stretch(self, mix: np.ndarray, voice: np.ndarray, rng: np.random.Generator) -> None:
        """Make a random stretch of the item voice-free and quiet, in place (see the class notes)."""
        n = mix.shape[1]
        length = min(n, max(1, int(float(rng.uniform(*self.quiet_seconds)) * self.rate)))
        start = 0 if float(rng.uniform()) < 0.5 else int(rng.integers(0, n - length + 1))
        level = 10 ** (float(rng.uniform(*self.quiet_level_db)) / 20)
        part = slice(start, start + length)
        bg = mix[:, part] - voice[:, part]
        rms = float(np.sqrt(np.mean(bg.astype(np.float64) ** 2)))
        if float(rng.uniform()) < self.quiet_hiss or rms < 1e-9:
            bg = hiss(rng, bg.shape, float(rng.uniform(-2.0, 0.0)))
            rms = float(np.sqrt(np.mean(bg.astype(np.float64) ** 2))) + 1e-30
        mix[:, part] = bg * np.float32(level / rms)
        voice[:, part] = 0.0
