"""The training configuration: nested dataclasses ↔ JSON or YAML files.

A file holds only the fields it changes; the rest keep their defaults.
Unknown keys are refused with their dotted name, so a typo never trains the
wrong model silently. ``--set section.key=value`` on the command line edits
one field (the value is parsed as YAML: numbers, booleans, lists).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A training configuration that cannot be read or used."""


@dataclass
class DataConfig:
    """Where the training pairs come from.

    ``kind``: ``"folder"`` (the report's layout: ``root/<track>/{mixture,vocals}.wav``;
    with ``root/train`` and ``root/valid`` sub-folders those are the split),
    ``"musdb"`` (``root`` of MUSDB18; ``is_wav`` for the WAV layout; musdb's
    train/valid split), ``"medleydb"`` (``root`` audio, ``metadata`` YAML folder),
    ``"sources"`` (``voice_dirs`` + ``background_dirs`` mixed on the fly) or
    ``"manifest"`` (a corpus ``manifest.json`` at ``root``, mixed on the fly).
    """

    kind: str = "folder"
    root: str = ""
    metadata: str = ""
    is_wav: bool = False
    voice_dirs: list[str] = field(default_factory=list)
    background_dirs: list[str] = field(default_factory=list)
    valid_fraction: float = 0.1
    segment_seconds: float = 4.0
    channels: int = 1
    train_items: int = 512
    valid_items: int = 64
    # validate on a saved benchmark set instead (folders of mixture.wav + vocals.wav, e.g. written by
    # `benchmarks/quality.py --split valid --save-set DIR`): every item once, whole, so best.pt is
    # chosen on the benchmark's own items; valid_items is then unused
    valid_set: str = ""
    # which sequence of training mixtures the seed gives (validation does not change with it): a
    # phase that starts from another run's weights (optim.init_from) takes a draw that run did not,
    # or it trains on that run's mixtures again
    draw: int = 0
    snr_db: list[float] = field(default_factory=lambda: [-5.0, 10.0])
    level_db: list[float] = field(default_factory=lambda: [-35.0, -15.0])
    voice_fill: list[float] = field(default_factory=lambda: [0.5, 1.0])
    # probability that a training item's background is band-limited to its voice's bandwidth
    band_match: float = 0.0
    # probability that a training item gets a voice-free stretch with the background turned down to
    # quiet_level_db dBFS (a muted microphone, a pause in the music: the state must recover from it)
    quiet: float = 0.0
    quiet_seconds: list[float] = field(default_factory=lambda: [0.25, 2.0])
    quiet_level_db: list[float] = field(default_factory=lambda: [-100.0, -50.0])
    quiet_hiss: float = 0.5  # share of quiet stretches that are hiss (white to brown noise), not the background
    # probability that a training item's voice, and independently its background, is played faster or
    # slower (pitch, formants and tempo together) by a factor drawn log-uniformly from speed_factor
    speed: float = 0.0
    speed_factor: list[float] = field(default_factory=lambda: [0.85, 1.18])
    # voice augmentations of training items (datasets.SourceMixDataset, voice_augment), each off at 0:
    formant: float = 0.0  # probability that the voice's formants move (vocal-tract length), its pitch kept
    formant_factor: list[float] = field(default_factory=lambda: [0.85, 1.18])  # ... by a log-uniform factor
    pitch: float = 0.0  # probability that the voice's pitch moves, its formants and tempo kept
    pitch_factor: list[float] = field(default_factory=lambda: [0.84, 1.19])  # ... by a factor (±3 semitones)
    mic_eq: float = 0.0  # probability of a random microphone colour, voice and background drawn apart
    mic_eq_db: float = 6.0  # ... its largest boost or cut, dB
    room: float = 0.0  # probability that the voice is spoken in a random shoebox room (pyroomacoustics)
    room_rt60: list[float] = field(default_factory=lambda: [0.15, 0.8])  # ... its reverberation time, s
    room_target: str = "early"  # the target in a room: "early" (first 50 ms of reflections kept) or "dry"
    room_background: float = 0.5  # share of room items whose background plays in the same room
    phone: float = 0.0  # probability that the item is heard through a phone line (narrow/wide band, G.711)
    phone_mixture: float = 0.5  # share of phone items where the whole mixture, not the voice alone, is on the line
    phone_codec: float = 0.0  # share of phone items also through GSM-FR / G.722 (needs ffmpeg with libgsm, g722)
    # training-split sampling weight multipliers by corpus source name (e.g. {"mma-midi": 0.3})
    source_weights: dict[str, float] = field(default_factory=dict)
    # kind "manifest": read the corpus decoded once (deepiso corpus cache): "" = the FLAC files, "auto" = the
    # cache beside the manifest for this rate and channel count, else the cache's folder
    pcm_cache: str = ""
    num_workers: int = 0


@dataclass
class AugmentConfig:
    loopback: float = 0.1  # fraction of training tracks looped back (report: 10 %)
    awgn_profiles: int = 1  # N white-noise profiles ...
    awgn_snr_db: list[float] = field(default_factory=lambda: [20.0, 10.0])  # ... × M levels (dB below the mix)
    awgn_keep_clean: bool = True
    gain_db: list[float] = field(default_factory=lambda: [-6.0, 6.0])
    channel_swap: float = 0.5
    remix: float = 0.0
    onset: float = 0.0  # share of items whose first samples are silenced (augment.Onset)
    onset_max: int = 4096  # ... a number of samples uniform in [0, onset_max)
    carry_state: float = 0.0  # share of items starting from the LSTM state their row ended with (augment.StateCarry)


@dataclass
class LossConfig:
    contrastive: float = 1.0
    accompaniment: float = 1.0
    magnitude: float = 0.0
    magnitude_power: float = 0.5
    si_sdr: float = 0.0
    gap: float = 0.0  # residual in voice-free frames, dB (losses.gap_loss)
    gap_limit_db: float = 60.0  # the gap term's floor (dB below the mixture); no gradient beyond it
    # losses for the pauses (docs/training.md), each off at 0:
    compressed: float = 0.0  # |Y|^c spectral loss over every frame, phase-aware + magnitude (DeepFilterNet's)
    mrstft: float = 0.0  # multi-resolution STFT loss on the waveforms (compressed magnitudes)
    mrstft_ffts: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])  # its FFT sizes, hop n/4
    voice_guard: float = 0.0  # one-sided penalty on an estimate quieter than the voice where there is voice
    compressed_power: float = 0.3  # c of the three terms above


@dataclass
class OptimConfig:
    batch_size: int = 8
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    max_steps_per_epoch: int = 0  # 0: the whole epoch
    # learning rate over the run: "constant", or "cosine" (from lr down to min_lr at the last step)
    schedule: str = "constant"
    min_lr: float = 0.0
    warmup_steps: int = 0  # linear ramp from 0 to lr over the first steps (either schedule)
    # weights to start a fresh run from: a deepiso checkpoint (.pt) or an exported model (.onnx, int8
    # dequantised; a shipped name works too); the network must be the configuration's. Ignored on resume.
    init_from: str = ""


@dataclass
class TrainConfig:
    """Everything a run needs; saved into every checkpoint and as ``train_config.json`` in ``out_dir``."""

    model: str = "default"  # a named configuration of deepiso.train.model
    # the network family the named configuration must be ("isolator", "bandfilter", ...); "": whichever it is
    architecture: str = ""
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields
    frame_overrides: dict[str, Any] = field(default_factory=dict)  # FrameSpec fields
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads per process; 0: all cores (shared among DDP processes)
    checkpoint_every: int = 0  # steps between resume checkpoints; 0: once per epoch
    keep_epochs: bool = False  # also keep each epoch's weights as epoch_NNN.pt (for deepiso train average)
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True

    # ------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "")

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (``.json``) or YAML (``.yaml``/``.yml``), atomically."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such configuration file")
        text = path.read_text()
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:
            raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'} ({exc})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def with_overrides(self, assignments: list[str]) -> TrainConfig:
        """Apply ``section.key=value`` strings (values parsed as YAML)."""
        import yaml

        data = self.to_dict()
        for a in assignments:
            if "=" not in a:
                raise ConfigError(f"override {a!r} must look like section.key=value")
            key, raw = a.split("=", 1)
            value = yaml.safe_load(raw)
            node = data
            parts = key.strip().split(".")
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise ConfigError(f"override {key!r}: {p!r} is not a section")
                node = node[p]
            if parts[-1] not in node and not key.startswith(("model_overrides.", "frame_overrides.",
                                                              "data.source_weights.")):
                raise ConfigError(f"override {key!r}: unknown field")
            node[parts[-1]] = value
        return TrainConfig.from_dict(data)


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'configuration'} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError("unknown configuration field(s): " + ", ".join(f"{where}{k}" for k in unknown))
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}{name}.")
            continue
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}{name} must be true or false, got {value!r}")
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}{name} must be an integer, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}{name} must be a number, got {value!r}")
            value = float(value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"{where}{name} must be a string, got {value!r}")
        elif isinstance(default, list):
            if not isinstance(value, list):
                raise ConfigError(f"{where}{name} must be a list, got {value!r}")
        elif isinstance(default, dict) and not isinstance(value, dict):
            raise ConfigError(f"{where}{name} must be a mapping, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)
