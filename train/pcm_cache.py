"""A corpus decoded once: every file at the mixing rate in one int16 file that training reads by slicing.

Training draws a few seconds from two random files per item. Read from FLAC,
each item seeks and decodes both files, and on a cold page cache the steps
wait on the disk. :func:`build_cache` decodes every file of a corpus manifest
once, at the rate and channel count training mixes at, into ``pcm16.bin``
(16-bit PCM, interleaved) with an index (``index.json``: where each file
starts, how many frames it has). :class:`PcmCache` maps that file into memory;
an excerpt is a slice, with no decoding and no per-file seek. Mono at
44.1 kHz costs 88 kB per second of audio (317 MB an hour), about what the
FLAC files take, and small enough to stay in the page cache.

The cache gives the items the files give: a 16-bit file's samples come back
exactly, and a file at another rate is resampled once as the dataset would
resample it (to within 16-bit rounding).

    deepiso corpus cache /data/corpus --rate 44100 --channels 1     # writes /data/corpus/pcm-44100-1/
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepiso.realtime.audio_io import AudioFileError, read_audio

FORMAT_VERSION = 1
DATA_FILE = "pcm16.bin"
INDEX_FILE = "index.json"
SCALE = 32768.0


class CacheError(Exception):
    """A cache that is missing, stale, or does not hold what training asks of it; the message says which."""


def cache_folder(corpus: str | os.PathLike, rate: int, channels: int) -> Path:
    """Where :func:`build_cache` puts a corpus's cache for ``rate`` and ``channels`` by default."""
    root = Path(corpus)
    if root.is_file():  # a manifest file
        root = root.parent
    return root / f"pcm-{rate}-{channels}"


def _key(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def build_cache(paths: Sequence[Path], root: str | os.PathLike, rate: int, channels: int,
                folder: str | os.PathLike | None = None,
                progress: Callable[[int, int, float], None] | None = None) -> Path:
    """Decode ``paths`` (files under the corpus folder ``root``) into a cache folder; returns it.

    Each file is read at ``rate`` and ``channels`` (:func:`deepiso.realtime.audio_io.read_audio`:
    resampled and down- or up-mixed as training reads it), clipped to [-1, 1) and stored as 16-bit.
    The folder appears complete or not at all: it is written beside its final name and renamed.
    ``progress(done, total, seconds_of_audio)`` is called after every file.
    """
    root = Path(root)
    target = Path(folder) if folder is not None else cache_folder(root, rate, channels)
    staging = target.with_name(target.name + ".part")
    staging.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, int]] = {}
    offset = 0
    seconds = 0.0
    with open(staging / DATA_FILE, "wb") as out:
        for i, path in enumerate(paths):
            key = _key(path, root)
            if key in files:
                continue
            try:
                audio, _ = read_audio(path, sample_rate=rate, channels=channels)
            except AudioFileError as exc:
                raise CacheError(str(exc)) from None
            pcm = np.clip(np.round(audio * SCALE), -SCALE, SCALE - 1).astype("<i2")
            out.write(pcm.tobytes())
            files[key] = {"offset": offset, "frames": int(audio.shape[0])}
            offset += pcm.size
            seconds += audio.shape[0] / rate
            if progress is not None:
                progress(i + 1, len(paths), seconds)
    index = {"format_version": FORMAT_VERSION, "rate": rate, "channels": channels, "dtype": "int16",
             "samples": offset, "seconds": round(seconds, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                        time.gmtime()),
             "files": files}
    (staging / INDEX_FILE).write_text(json.dumps(index) + "\n")
    if target.exists():
        for name in (DATA_FILE, INDEX_FILE):
            (target / name).unlink(missing_ok=True)
        target.rmdir()
    staging.rename(target)
    return target


class PcmCache:
    """A built cache, mapped read-only; ``read`` slices it. Every process maps it once and shares the pages."""

    def __init__(self, folder: str | os.PathLike, root: str | os.PathLike) -> None:
        self.folder, self.root = Path(folder), Path(root)
        if self.root.is_file():
            self.root = self.root.parent
        index_path = self.folder / INDEX_FILE
        try:
            index = json.loads(index_path.read_text())
        except FileNotFoundError:
            raise CacheError(f"{self.folder}: no cache here (build it with: deepiso corpus cache "
                             f"{self.root})") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CacheError(f"{index_path}: unreadable cache index ({exc})") from None
        if index.get("format_version") != FORMAT_VERSION or index.get("dtype") != "int16":
            raise CacheError(f"{index_path}: a cache of another format; build it again")
        self.rate, self.channels = int(index["rate"]), int(index["channels"])
        self.files: dict[str, dict[str, int]] = index["files"]
        data = self.folder / DATA_FILE
        expected = 2 * int(index["samples"])
        if not data.is_file() or data.stat().st_size != expected:
            raise CacheError(f"{data}: {data.stat().st_size if data.is_file() else 'no'} bytes where the index "
                             f"says {expected}; build the cache again")
        self._data = np.memmap(data, dtype="<i2", mode="r") if expected else np.zeros(0, "<i2")

    def check(self, paths: Sequence[Path], rate: int, channels: int) -> None:
        """Raise :class:`CacheError` unless the cache holds every path at ``rate`` and ``channels``."""
        if (rate, channels) != (self.rate, self.channels):
            raise CacheError(f"{self.folder}: holds {self.channels} channel(s) at {self.rate} Hz; training mixes "
                             f"{channels} at {rate} Hz (build a cache for those: deepiso corpus cache {self.root} "
                             f"--rate {rate} --channels {channels})")
        missing = [p for p in paths if _key(p, self.root) not in self.files]
        if missing:
            raise CacheError(f"{self.folder}: {len(missing)} file(s) of the corpus are not in the cache, e.g. "
                             f"{missing[0]}; build it again")

    def frames(self, path: Path) -> int:
        return self.files[_key(path, self.root)]["frames"]

    def read(self, path: Path, start: int, length: int) -> np.ndarray:
        """Frames ``start .. start + length`` of ``path`` as float32 ``(channels, length)``."""
        entry = self.files[_key(path, self.root)]
        c = self.channels
        a = entry["offset"] + start * c
        pcm = self._data[a : a + length * c]
        return np.ascontiguousarray((pcm.reshape(-1, c).T).astype(np.float32) / SCALE)


def run_cli(args) -> int:
    """``deepiso corpus cache DIR [--rate R] [--channels C] [-o FOLDER]`` (parsed by ``deepiso.realtime.cli``)."""
    import sys

    from .datasets import DatasetError, manifest_sources

    try:
        files = manifest_sources(args.dir)
    except DatasetError as exc:
        raise CacheError(str(exc)) from None
    paths = [f.path for f in files]
    t0 = time.monotonic()

    def progress(done: int, total: int, seconds: float) -> None:
        if done == total or done % 200 == 0:
            print(f"\r{done}/{total} files, {seconds / 3600:.2f} h of audio, {time.monotonic() - t0:.0f} s",
                  end="\n" if done == total else "", file=sys.stderr, flush=True)

    folder = build_cache(paths, args.dir, args.rate, args.channels, args.output, progress=progress)
    size = (folder / DATA_FILE).stat().st_size
    print(f"wrote {folder}: {len(paths)} files, {size / 2**30:.2f} GiB; train on it with "
          f"--set data.pcm_cache={'auto' if args.output is None else folder}")
    return 0
