"""Write MUSDB18 or MedleyDB into the report's folder layout.

One folder per track holding ``mixture.wav`` and ``vocals.wav`` (32-bit
float, the dataset's rate and channels), as the report's preprocessing did.
MUSDB18 keeps its split: ``OUT/train``, ``OUT/valid`` (musdb's validation
tracks) and ``OUT/test``; MedleyDB goes to ``OUT/<track>`` (the training
loop splits it by track name). Existing track folders are skipped, so an
interrupted run can simply be started again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from deepiso.realtime.audio_io import write_audio

from . import datasets as ds


def _write_track(track: ds.Track, folder: Path, overwrite: bool) -> bool:
    if not overwrite and (folder / "mixture.wav").exists() and (folder / "vocals.wav").exists():
        return False
    mix, voc = track.read(0, track.length)
    # vocals first: a folder with mixture.wav is only complete when both exist
    write_audio(folder / "vocals.wav", voc, track.rate)
    write_audio(folder / "mixture.wav", mix, track.rate)
    return True


def _safe_name(name: str) -> str:
    return name.replace(os.sep, "_").strip() or "track"


def prepare_musdb(root: str | os.PathLike, out: str | os.PathLike, is_wav: bool = False,
                  subsets: Sequence[str] = ("train", "test"), overwrite: bool = False,
                  progress: Callable[[str], None] | None = None) -> int:
    """Write MUSDB18 at ``root`` into ``out/{train,valid,test}/<track>/``; returns tracks written."""
    out = Path(out)
    written = 0
    for subset in subsets:
        groups = {"test": ds.musdb_tracks(root, "test", is_wav=is_wav)} if subset == "test" else {}
        if subset == "train":
            all_train = ds.musdb_tracks(root, "train", is_wav=is_wav)
            try:
                valid_names = {t.name for t in ds.musdb_tracks(root, "train", split="valid", is_wav=is_wav)}
            except ds.DatasetError:
                valid_names = set()
            groups = {"train": [t for t in all_train if t.name not in valid_names],
                      "valid": [t for t in all_train if t.name in valid_names]}
        for split, tracks in groups.items():
            for t in tracks:
                if _write_track(t, out / split / _safe_name(t.name), overwrite):
                    written += 1
                    if progress:
                        progress(f"{split}/{t.name}")
    return written


def prepare_medleydb(root: str | os.PathLike, out: str | os.PathLike, metadata: str | os.PathLike | None = None,
                     overwrite: bool = False, progress: Callable[[str], None] | None = None) -> int:
    """Write MedleyDB (mix + summed voice stems) into ``out/<track>/``; returns tracks written."""
    out = Path(out)
    written = 0
    for t in ds.medleydb_tracks(root, metadata):
        if _write_track(t, out / _safe_name(t.name), overwrite):
            written += 1
            if progress:
                progress(t.name)
    return written
