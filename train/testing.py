"""Tiny synthetic datasets in the exact layouts the loaders read (for tests, smoke runs and benchmarks).

Vocals are gated harmonic tones with a vibrato, the accompaniment is
filtered noise plus a bass tone: cheap to make, easy to tell apart, and
different for every track. Nothing here is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf


def synth_track(seconds: float, rate: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vocals, accompaniment)``, each float32 ``(samples, channels)``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 180 + 40 * (seed % 5)
    phase = 2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)
    voice = sum(0.2 / k * np.sin(k * phase) for k in range(1, 5))
    gate = (np.sin(2 * np.pi * 0.8 * t + seed) > -0.3).astype(np.float64)
    voice = voice * np.convolve(gate, np.ones(200) / 200, mode="same")
    noise = rng.standard_normal(n)
    noise = np.convolve(noise, np.ones(8) / 8, mode="same") * 0.15
    bass = 0.15 * np.sin(2 * np.pi * (55 + 5 * seed) * t)
    acc = noise + bass
    pans = np.linspace(0.8, 1.2, channels)
    voc = np.stack([voice] * channels, axis=1)
    acc = np.stack([acc * p for p in pans], axis=1)
    return voc.astype(np.float32), acc.astype(np.float32)


def make_folder_dataset(root: str | os.PathLike, tracks: int = 3, seconds: float = 1.0, rate: int = 16_000,
                        channels: int = 2) -> Path:
    """The report's layout: ``root/<track>/{mixture,vocals}.wav``."""
    root = Path(root)
    for i in range(tracks):
        voc, acc = synth_track(seconds, rate, channels, i)
        d = root / f"Artist {i} - Song {i}"
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / "vocals.wav", voc, rate, subtype="FLOAT")
        sf.write(d / "mixture.wav", voc + acc, rate, subtype="FLOAT")
    return root


def _musdb_stems(seconds: float, rate: int, seed: int) -> dict[str, np.ndarray]:
    voc, acc = synth_track(seconds, rate, 2, seed)
    drums = acc * 0.5
    bass = acc * 0.3
    other = acc - drums - bass
    return {"mixture": voc + acc, "drums": drums, "bass": bass, "other": other, "vocals": voc}


def make_musdb_wav(root: str | os.PathLike, train: int = 3, test: int = 1, seconds: float = 1.0,
                   rate: int = 44_100) -> Path:
    """MUSDB18 WAV layout: ``root/{train,test}/<track>/{mixture,drums,bass,other,vocals}.wav``."""
    root = Path(root)
    for subset, count in (("train", train), ("test", test)):
        for i in range(count):
            d = root / subset / f"{subset.title()} Artist {i} - Song"
            d.mkdir(parents=True, exist_ok=True)
            for name, audio in _musdb_stems(seconds, rate, i + 10 * (subset == "test")).items():
                sf.write(d / f"{name}.wav", audio, rate, subtype="FLOAT")
    return root


def make_musdb_stems(root: str | os.PathLike, train: int = 3, test: int = 1, seconds: float = 1.0,
                     rate: int = 44_100) -> Path:
    """MUSDB18 stem-MP4 layout: ``root/{train,test}/<track>.stem.mp4`` (5 AAC streams, written by stempeg)."""
    import stempeg

    root = Path(root)
    order = ("mixture", "drums", "bass", "other", "vocals")  # MUSDB18's stream order
    for subset, count in (("train", train), ("test", test)):
        (root / subset).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            stems = _musdb_stems(seconds, rate, i + 10 * (subset == "test"))
            data = np.stack([stems[k] for k in order])
            stempeg.write_stems(str(root / subset / f"{subset.title()} Artist {i} - Song.stem.mp4"), data,
                                sample_rate=rate, writer=stempeg.StreamsWriter(codec="aac", bitrate=256000))
    return root


def make_medleydb(root: str | os.PathLike, tracks: int = 3, seconds: float = 1.0, rate: int = 44_100,
                  instrumental: int = 1) -> Path:
    """MedleyDB 2.0 layout: ``root/Audio/<id>/<id>_MIX.wav``, ``<id>_STEMS/<id>_STEM_NN.wav`` and
    ``root/Metadata/<id>_METADATA.yaml`` in the real schema. The last ``instrumental`` tracks have no voice."""
    import yaml

    root = Path(root)
    (root / "Metadata").mkdir(parents=True, exist_ok=True)
    for i in range(tracks):
        tid = f"Artist{i}_Song{i}"
        voc, acc = synth_track(seconds, rate, 2, i)
        is_instr = i >= tracks - instrumental
        audio = root / "Audio" / tid
        stem_dir = audio / f"{tid}_STEMS"
        stem_dir.mkdir(parents=True, exist_ok=True)
        if is_instr:
            parts = [("drum set", "", acc * 0.6), ("electric bass", "bass", acc * 0.4)]
        else:
            parts = [("female singer", "melody", voc * 0.7), ("drum set", "", acc * 0.6),
                     ("male singer", "", voc * 0.3), ("electric bass", "bass", acc * 0.4)]
        stems = {}
        mix = np.zeros_like(acc)
        for k, (inst, comp, x) in enumerate(parts, start=1):
            fname = f"{tid}_STEM_{k:02d}.wav"
            sf.write(stem_dir / fname, x, rate, subtype="FLOAT")
            mix += x
            stems[f"S{k:02d}"] = {"component": comp, "filename": fname, "instrument": inst,
                                  "raw": {f"R{k:02d}": {"filename": f"{tid}_RAW_{k:02d}_01.wav", "instrument": inst}}}
        sf.write(audio / f"{tid}_MIX.wav", mix, rate, subtype="FLOAT")
        meta = {"album": "", "artist": f"Artist{i}", "composer": [], "excerpt": "no", "genre": "Singer/Songwriter",
                "has_bleed": "no", "instrumental": "yes" if is_instr else "no", "mix_filename": f"{tid}_MIX.wav",
                "origin": "Dolan Studio", "producer": [], "raw_dir": f"{tid}_RAW", "stem_dir": f"{tid}_STEMS",
                "stems": stems, "title": f"Song{i}", "version": 1.2, "website": []}
        (root / "Metadata" / f"{tid}_METADATA.yaml").write_text(yaml.safe_dump(meta, sort_keys=True))
    return root


def make_source_folders(root: str | os.PathLike, voices: int = 4, backgrounds: int = 4, seconds: float = 1.0,
                        rate: int = 22_050) -> tuple[Path, Path]:
    """``root/voice/*.wav`` and ``root/background/*.flac`` (mono), for on-the-fly mixing."""
    root = Path(root)
    (root / "voice").mkdir(parents=True, exist_ok=True)
    (root / "background").mkdir(parents=True, exist_ok=True)
    for i in range(voices):
        voc, _ = synth_track(seconds * (1 + 0.3 * i), rate, 1, i)
        sf.write(root / "voice" / f"v{i}.wav", voc, rate, subtype="FLOAT")
    for i in range(backgrounds):
        _, acc = synth_track(seconds * (1 + 0.5 * i), rate, 1, 100 + i)
        sf.write(root / "background" / f"b{i}.flac", np.clip(acc, -1, 1), rate)
    return root / "voice", root / "background"


def make_manifest_corpus(root: str | os.PathLike, seconds: float = 1.0, rate: int = 22_050) -> Path:
    """A corpus folder with ``manifest.jsonl`` records like ``deepiso corpus build`` writes."""
    import json

    root = Path(root)
    voice_dir, bg_dir = make_source_folders(root, seconds=seconds, rate=rate)
    records = []
    for kind, folder in (("voice", voice_dir), ("background", bg_dir)):
        for i, f in enumerate(sorted(folder.iterdir())):
            info = sf.info(str(f))
            records.append({"path": str(f.relative_to(root)), "kind": kind,
                            "category": "speech" if kind == "voice" else "music",
                            "source": f"synthetic-{kind}", "license": "CC0", "duration": info.duration,
                            "split": "valid" if i == 0 else "train", "weight": 1.0})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root
