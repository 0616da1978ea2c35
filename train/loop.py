"""The training loop: data → augmentation → features → model → loss, with validation,
best-by-validation-loss selection, atomic checkpoints, exact resume, logs and DDP.

Exact resume: every random draw of step ``s`` in epoch ``e`` (data items,
augmentation noise, dropout) comes from generators seeded with
``(seed, e, s, rank)``, and ``last.pt`` stores the weights, the optimiser
state and the position. A run killed at any moment and started again with
the same command continues from its last checkpoint and ends where an
uninterrupted run ends.

Distributed: launched by ``torchrun --nproc-per-node N -m deepiso.train CONFIG``
(gloo on CPU, NCCL on GPU); each rank takes every N-th item, DDP averages
gradients, rank 0 validates the gathered sums and writes files.

Files in ``out_dir``: ``train_config.json``, ``last.pt`` (resume),
``best.pt`` (lowest validation loss, the report's selection rule),
``config.json`` (the model's frame spec + config, beside the weights),
``history.json``, ``loss.png``, ``tb/`` (TensorBoard) and, with ``keep_epochs``,
``epoch_NNN.pt`` after every epoch (inputs for :mod:`deepiso.train.average`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from deepiso.realtime.frame import FrameSpec

from . import datasets as ds
from .augment import AWGN, Augment, ChannelSwap, Onset, RandomGain, Remix, StateCarry
from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .config import ConfigError, DataConfig, OptimConfig, TrainConfig
from .features import Frontend, features, from_features
from .losses import LossWeights, combined_loss, si_sdr
from .model import IsolatorNet, ModelConfig, ModelConfigError, architecture_of, build_model, get_config
from .pcm_cache import CacheError, PcmCache, cache_folder


def derive_seed(*keys: int | str) -> int:
    """A 63-bit seed from a tuple (stable across processes and Python runs)."""
    h = hashlib.sha256(repr(keys).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def resolve_model(cfg: TrainConfig) -> tuple[FrameSpec, ModelConfig]:
    """The named configuration with ``frame_overrides`` / ``model_overrides`` applied."""
    try:
        spec, mcfg = get_config(cfg.model)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    if cfg.architecture and cfg.architecture != architecture_of(mcfg):
        raise ConfigError(f"model {cfg.model!r} is a {architecture_of(mcfg)!r} network, not the {cfg.architecture!r} "
                          "the configuration's architecture names")
    if cfg.frame_overrides:
        d = spec.to_dict()
        d.update(cfg.frame_overrides)
        spec = FrameSpec.from_dict(d)
    if cfg.model_overrides:
        try:
            mcfg = mcfg.replace(**cfg.model_overrides)
        except (TypeError, ModelConfigError) as exc:
            raise ConfigError(f"model_overrides: {exc}") from None
    return spec, mcfg


# ----------------------------------------------------------------------------
# Data


def build_datasets(cfg: TrainConfig, spec: FrameSpec) -> tuple[ds.EpochDataset, ds.EpochDataset, dict]:
    """``(train, valid, summary)`` for ``cfg.data``; the split is made before loopback.

    With ``data.valid_set`` the validation items are that folder's tracks, each once, from its start,
    as long as the shortest of them (a benchmark set's items are all one length: each whole).
    """
    train_ds, valid_ds, summary = _build_datasets(cfg, spec)
    if cfg.data.valid_set:
        valid_ds, summary["valid_set"] = _valid_set(cfg, spec)
    return train_ds, valid_ds, summary


def _valid_set(cfg: TrainConfig, spec: FrameSpec) -> tuple[ds.EpochDataset, dict[str, Any]]:
    tracks = ds.folder_tracks(cfg.data.valid_set)
    shortest = min(t.length * spec.sample_rate // t.rate for t in tracks)
    if shortest < spec.n_fft:
        raise ds.DatasetError(f"{cfg.data.valid_set}: a validation track is shorter than one frame")
    valid = ds.TrackSegments(tracks, rate=spec.sample_rate, samples=int(shortest), items=len(tracks),
                             channels=cfg.data.channels, seed=cfg.seed, train=False)
    return valid, {"root": str(cfg.data.valid_set), "items": len(tracks),
                   "seconds": round(shortest / spec.sample_rate, 3)}


def _build_datasets(cfg: TrainConfig, spec: FrameSpec) -> tuple[ds.EpochDataset, ds.EpochDataset, dict]:
    d = cfg.data
    samples = int(round(d.segment_seconds * spec.sample_rate))
    if samples < spec.n_fft:
        raise ConfigError(f"data.segment_seconds {d.segment_seconds} is shorter than one frame")
    common = {"rate": spec.sample_rate, "samples": samples, "channels": d.channels, "seed": cfg.seed}
    summary: dict[str, Any] = {"kind": d.kind, "root": d.root}
    if d.pcm_cache and d.kind != "manifest":
        raise ConfigError("data.pcm_cache needs data.kind 'manifest' (a cache is built from a corpus manifest)")
    if d.kind in ("folder", "musdb", "medleydb"):
        if not d.root:
            raise ConfigError(f"data.root is required for data.kind {d.kind!r}")
        if d.kind == "folder":
            root = Path(d.root)
            if (root / "train").is_dir() and (root / "valid").is_dir():
                train, valid = ds.folder_tracks(root / "train"), ds.folder_tracks(root / "valid")
            else:
                train, valid = ds.split_tracks(ds.folder_tracks(root), d.valid_fraction)
        elif d.kind == "musdb":
            train_all = ds.musdb_tracks(d.root, "train", split=None, is_wav=d.is_wav)
            names = {t.name for t in ds.musdb_tracks(d.root, "train", split="train", is_wav=d.is_wav)} \
                if len(train_all) > 1 else set()
            valid = [t for t in train_all if t.name not in names]
            train = [t for t in train_all if t.name in names]
            if not valid or not train:  # not the full MUSDB18: musdb's fixed validation names are absent
                train, valid = ds.split_tracks(train_all, d.valid_fraction)
        else:
            train, valid = ds.split_tracks(ds.medleydb_tracks(d.root, d.metadata or None), d.valid_fraction)
        if not valid:
            raise ds.DatasetError(f"{d.root}: no validation tracks (need at least two tracks)")
        summary.update(train_tracks=len(train), valid_tracks=len(valid))
        train = ds.apply_loopback(train, cfg.augment.loopback, cfg.seed)
        summary["loopback_tracks"] = len(train) - summary["train_tracks"]
        train_ds: ds.EpochDataset = ds.TrackSegments(train, items=d.train_items, train=True, draw=d.draw,
                                                     **common)
        valid_ds: ds.EpochDataset = ds.TrackSegments(valid, items=d.valid_items, train=False, **common)
        return train_ds, valid_ds, summary
    if d.kind in ("sources", "manifest"):
        if d.kind == "sources":
            files = ds.folder_sources(d.voice_dirs, d.background_dirs, d.valid_fraction)
        else:
            if not d.root:
                raise ConfigError("data.root must name the corpus manifest.json (or its folder)")
            files = ds.manifest_sources(d.root)
        train_files = reweight_sources([f for f in files if f.split == "train"], d.source_weights,
                                       {f.source for f in files})
        valid_files = [f for f in files if f.split == "valid"]
        summary.update(train_files=len(train_files), valid_files=len(valid_files),
                       sources=ds.sources_summary(train_files), valid_sources=ds.sources_summary(valid_files),
                       categories=sorted({f.category for f in files if f.category}))
        mix = {"snr_db": tuple(d.snr_db), "level_db": tuple(d.level_db), "voice_fill": tuple(d.voice_fill)}
        if d.pcm_cache:
            folder = cache_folder(d.root, spec.sample_rate, d.channels) if d.pcm_cache == "auto" else d.pcm_cache
            try:
                mix["pcm"] = PcmCache(folder, d.root)
            except CacheError as exc:
                raise ds.DatasetError(str(exc)) from None
            summary["pcm_cache"] = str(folder)
        try:
            train_ds = ds.SourceMixDataset(train_files, items=d.train_items, train=True, draw=d.draw,
                                           loopback=cfg.augment.loopback, band_match=d.band_match, quiet=d.quiet,
                                           quiet_seconds=tuple(d.quiet_seconds),
                                           quiet_level_db=tuple(d.quiet_level_db), quiet_hiss=d.quiet_hiss,
                                           speed=d.speed, speed_factor=tuple(d.speed_factor),
                                           formant=d.formant, formant_factor=tuple(d.formant_factor),
                                           pitch=d.pitch, pitch_factor=tuple(d.pitch_factor), mic_eq=d.mic_eq,
                                           mic_eq_db=d.mic_eq_db, room=d.room, room_rt60=tuple(d.room_rt60),
                                           room_target=d.room_target, room_background=d.room_background,
                                           phone=d.phone, phone_mixture=d.phone_mixture,
                                           phone_codec=d.phone_codec, **mix, **common)
            # Loopback is a training augmentation: validation measures the real task
            # (a silent-accompaniment item would score an SI-SDR of the mixture near +inf).
            valid_ds = ds.SourceMixDataset(valid_files, items=d.valid_items, train=False,
                                           loopback=0.0, **mix, **common)
        except ds.DatasetError as exc:
            raise ds.DatasetError(f"{d.root or ', '.join(d.voice_dirs + d.background_dirs)}: {exc}") from None
        return train_ds, valid_ds, summary
    raise ConfigError(f"unknown data.kind {d.kind!r}; use folder, musdb, medleydb, sources or manifest")


def reweight_sources(files: list[ds.SourceFile], weights: dict[str, float], known: set[str]) -> list[ds.SourceFile]:
    """``files`` with each file's sampling weight multiplied by ``weights[file.source]`` (training split only)."""
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ConfigError(f"data.source_weights names unknown sources {unknown}; the corpus has "
                          f"{sorted(s for s in known if s)}")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
            raise ConfigError(f"data.source_weights.{name} must be a number >= 0, got {w!r}")
    return [dataclasses.replace(f, weight=f.weight * float(weights[f.source])) if f.source in weights else f
            for f in files]


def build_augment(cfg: TrainConfig) -> Augment:
    a = cfg.augment
    mods: list[torch.nn.Module] = []
    if a.gain_db and (a.gain_db[0] or a.gain_db[1]):
        mods.append(RandomGain(a.gain_db[0], a.gain_db[1]))
    if a.channel_swap > 0:
        mods.append(ChannelSwap(a.channel_swap))
    if a.remix > 0:
        mods.append(Remix(a.remix))
    if a.awgn_profiles > 0 and a.awgn_snr_db:
        mods.append(AWGN(a.awgn_profiles, a.awgn_snr_db, a.awgn_keep_clean))
    if a.onset > 0:
        mods.append(Onset(a.onset, a.onset_max))
    return Augment(mods)


# ----------------------------------------------------------------------------
# One batch through the model


@dataclass
class Outputs:
    loss: torch.Tensor
    parts: dict[str, float]
    pred: torch.Tensor  # (B', T, 2 bins) vocal spectrum features
    pred_wave: torch.Tensor | None  # (B', T * hop) iSTFT of pred, streaming delay
    mix_wave: torch.Tensor | None  # (B', T * hop) mixture with the same delay
    voc_wave: torch.Tensor | None  # (B', T * hop) vocals with the same delay
    state: tuple[torch.Tensor, torch.Tensor] | None = None  # the LSTM state after the last frame


def run_batch(model: torch.nn.Module, net: IsolatorNet, frontend: Frontend, batch: dict[str, torch.Tensor],
              weights: LossWeights, need_waves: bool, carry: StateCarry | None = None,
              gen: torch.Generator | None = None) -> Outputs:
    """Features, forward and loss for a batch ``{"mixture", "vocals"}`` of ``(B, C, L)``.

    Channels are separate items (the engine runs the model per channel), so
    ``B' = B * C``. ``model`` may be DDP-wrapped; ``net`` is the bare network.
    Waveforms are computed when ``need_waves`` or a term on waveforms (SI-SDR, multi-resolution STFT) is on.
    With ``carry``, items start from the state it gives (drawn with ``gen``)
    instead of zeros, and it keeps the state they end with.
    """
    mix = batch["mixture"].reshape(-1, batch["mixture"].shape[-1])
    voc = batch["vocals"].reshape(-1, batch["vocals"].shape[-1])
    acc = mix - voc
    x = frontend.contexts(mix)
    state0 = carry.initial(mix, gen) if carry is not None and gen is not None else None
    y, state = model(x, state0)
    if carry is not None:
        carry.update(state)
    pred = net.vocal_spectrum(y, x)
    voc_f, acc_f = features(frontend.stft(voc)), features(frontend.stft(acc))
    pred_wave = mix_wave = voc_wave = None
    if need_waves or weights.needs_waves:
        pred_wave = frontend.istft(from_features(pred))
        mix_wave, voc_wave = frontend.delay(mix), frontend.delay(voc)
    loss, parts = combined_loss(weights, pred, voc_f, acc_f, pred_wave, voc_wave, mix_wave)
    return Outputs(loss, parts, pred, pred_wave, mix_wave, voc_wave, state)


# ----------------------------------------------------------------------------
# Distributed helpers


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _all_reduce(values: list[float], d: Dist, device: torch.device) -> list[float]:
    if d.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _gather_carry(carry: StateCarry, d: Dist) -> torch.Tensor | None:
    """Every process's carried LSTM state, ``(world, 2, layers, B, hidden)``, for the resumable checkpoint.

    Called by every process (it is a collective with more than one).
    """
    if carry.state is None:
        return None
    mine = torch.stack(carry.state)
    if d.world == 1:
        return mine[None].cpu()
    parts = [torch.empty_like(mine) for _ in range(d.world)]  # on the device: NCCL gathers CUDA tensors
    dist.all_gather(parts, mine)
    return torch.stack(parts).cpu()


def pick_device(cfg: TrainConfig, d_local_rank: int = 0) -> torch.device:
    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {cfg.device!r} asked for, but no CUDA GPU is available")
        if want == "cuda":
            want = f"cuda:{d_local_rank}"
    return torch.device(want)


# ----------------------------------------------------------------------------
# Logging helpers


def plot_history(history: list[dict], path: Path) -> None:
    """Training and validation loss per epoch (and validation SI-SDR) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] + 1 for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax[0].plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("loss")
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    ax[1].plot(epochs, [h.get("val_si_sdr", float("nan")) for h in history], "o-", label="SI-SDR")
    ax[1].plot(epochs, [h.get("val_si_sdri", float("nan")) for h in history], "o-", label="SI-SDR improvement")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("dB (validation)")
    ax[1].legend()
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.part.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------
# Validation


@torch.no_grad()
def validate(model: torch.nn.Module, net: IsolatorNet, frontend: Frontend, loader: DataLoader,
             weights: LossWeights, device: torch.device, d: Dist) -> dict[str, float]:
    """Mean loss, SI-SDR of the estimate and its improvement over the mixture (voiced items only)."""
    model.eval()
    loss_sum = n_batches = 0.0
    sdr_sum = sdri_sum = n_voiced = 0.0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = run_batch(model, net, frontend, batch, weights, need_waves=True)
        loss_sum += float(out.loss) * 1.0
        n_batches += 1
        ref, est, mix = out.voc_wave, out.pred_wave, out.mix_wave
        voiced = ref.pow(2).mean(-1) > 1e-6 * mix.pow(2).mean(-1) + 1e-12
        if bool(voiced.any()):
            s_est = si_sdr(est[voiced], ref[voiced])
            s_mix = si_sdr(mix[voiced], ref[voiced])
            sdr_sum += float(s_est.sum())
            sdri_sum += float((s_est - s_mix).sum())
            n_voiced += float(voiced.sum())
    loss_sum, n_batches, sdr_sum, sdri_sum, n_voiced = _all_reduce(
        [loss_sum, n_batches, sdr_sum, sdri_sum, n_voiced], d, device)
    model.train()
    nan = float("nan")
    return {"val_loss": loss_sum / max(n_batches, 1),
            "val_si_sdr": sdr_sum / n_voiced if n_voiced else nan,
            "val_si_sdri": sdri_sum / n_voiced if n_voiced else nan}


# ----------------------------------------------------------------------------
# The loop


class _StopRequested(Exception):
    pass


def _batches(indices: list[int], batch_size: int, steps: int, start: int) -> list[list[int]]:
    return [indices[s * batch_size : (s + 1) * batch_size] for s in range(start, steps)]


SCHEDULES = ("constant", "cosine")


def check_schedule(cfg: TrainConfig) -> None:
    """Refuse a learning-rate schedule that cannot run, naming the field."""
    o = cfg.optim
    if o.schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule {o.schedule!r} is not one of {', '.join(SCHEDULES)}")
    if not (math.isfinite(o.lr) and o.lr > 0):
        raise ConfigError(f"optim.lr must be a positive number, got {o.lr}")
    if not (math.isfinite(o.min_lr) and 0 <= o.min_lr <= o.lr):
        raise ConfigError(f"optim.min_lr must lie in 0..optim.lr ({o.lr}), got {o.min_lr}")
    if o.warmup_steps < 0:
        raise ConfigError(f"optim.warmup_steps must be >= 0, got {o.warmup_steps}")


def learning_rate(o: OptimConfig, step: int, total_steps: int) -> float:
    """The rate of optimiser step ``step`` (0-based, counted over the whole run) of ``total_steps``.

    ``constant``: ``lr``; ``cosine``: half a cosine from ``lr`` at step 0 to
    ``min_lr`` at the last step (and after it). A warm-up ramps linearly from
    ``lr / warmup_steps`` to the scheduled rate over the first ``warmup_steps``.
    It depends on the step alone, so a resumed run follows the same curve.
    """
    rate = o.lr
    if o.schedule == "cosine":
        last = max(total_steps - 1, 1)
        rate = o.min_lr + (o.lr - o.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(step, last) / last))
    if o.warmup_steps and step < o.warmup_steps:
        rate *= (step + 1) / o.warmup_steps
    return rate


def initial_weights(source: str, spec: FrameSpec, mcfg: ModelConfig,
                    verbose: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """The state dict of ``source`` (checkpoint ``.pt``, or exported ``.onnx`` / shipped name) for this
    network, and the training configuration it records (``{}`` when none). A network with another
    awareness window gets this one's (:func:`deepiso.train.reframe.reframe`: each context position keeps
    its weights, a new one starts at zero), a
    ratio-mask network gets this one's deep filter
    (:func:`deepiso.train.deepfilter.add_deep_filter`: the same function, a filter starting at zero) and a
    narrower one is widened to this one (:func:`deepiso.train.widen.widen`: the same function, more units)."""
    trained: dict = {}
    if source.endswith(".pt"):
        try:
            net, info = load_checkpoint(source)
        except CheckpointError as exc:
            raise ConfigError(f"optim.init_from: {exc}") from None
        trained = info.get("train_config") or {}
    else:
        from deepiso.realtime.onnx_model import ModelError

        from .onnx_import import OnnxImportError, import_onnx

        try:
            net, _ = import_onnx(source)
        except (ModelError, OnnxImportError) as exc:
            raise ConfigError(f"optim.init_from: {exc}") from None
    if not isinstance(net, IsolatorNet) or not isinstance(mcfg, ModelConfig):
        # reframing, widening and adding a filter or an input are IsolatorNet's: another architecture
        # starts only from the same network, or from the same weights with its filter gated (bandfilter)
        net = _regated(net, mcfg, source, verbose)
        if net.spec.to_dict() != spec.to_dict() or net.cfg.to_dict() != mcfg.to_dict():
            raise ConfigError(f"optim.init_from: {source} is a {architecture_of(net.cfg)!r} network other than "
                              f"this configuration's {architecture_of(mcfg)!r} one")
        return {k: v.detach().clone() for k, v in net.state_dict().items()}, trained
    if net.spec.to_dict() != spec.to_dict():
        from .reframe import WINDOW_FIELDS, ReframeError, reframe

        try:
            moved = reframe(net, spec)
        except ReframeError:
            pass  # another frame contract: refused below, naming what differs
        else:
            if verbose:
                window = ", ".join(f"{k} {getattr(net.spec, k)} -> {getattr(spec, k)}" for k in WINDOW_FIELDS
                                   if getattr(net.spec, k) != getattr(spec, k))
                print(f"moved the awareness window of {source} ({window}; new positions start at zero)",
                      file=sys.stderr)
            net = moved
    if mcfg.deep_filter and not net.cfg.deep_filter:
        from .deepfilter import DeepFilterError, add_deep_filter

        try:
            filtered = add_deep_filter(net, spec, mcfg)
        except DeepFilterError:
            pass  # not the same network plus a deep filter: refused below, naming what differs
        else:
            if verbose:
                print(f"gave {source} a deep filter on its lowest {mcfg.deep_filter} bins (starting at zero: "
                      f"the same output; {net.num_parameters():,} -> {filtered.num_parameters():,} parameters)",
                      file=sys.stderr)
            net = filtered
    elif mcfg.deep_filter and net.cfg.deep_filter_gain != mcfg.deep_filter_gain:
        from .deepfilter import DeepFilterError, regain

        try:
            net = regain(net, mcfg)
        except DeepFilterError:
            pass  # refused below, naming what differs
        else:
            if verbose:
                print(f"set the deep filter gain of {source} to {mcfg.deep_filter_gain:g} (its weights rescaled: "
                      f"the same output)", file=sys.stderr)
    if net.spec.to_dict() == spec.to_dict() and net.cfg.to_dict() != mcfg.to_dict():
        from .widen import WIDTH_FIELDS, WidenError, output_change, widen

        try:
            wide = widen(net, mcfg, seed=derive_seed(0, "widen"))
        except WidenError:
            pass  # not a widening: refused below, naming what differs
        else:
            grown = ", ".join(f"{k} {getattr(net.cfg, k)} -> {getattr(mcfg, k)}" for k in WIDTH_FIELDS
                              if getattr(net.cfg, k) != getattr(mcfg, k))
            if verbose:
                print(f"widened {source} ({grown}; {net.num_parameters():,} -> {wide.num_parameters():,} "
                      f"parameters, output moved by at most {output_change(net.eval(), wide.eval()):.2g})",
                      file=sys.stderr)
            net = wide
    if net.spec.to_dict() != spec.to_dict() or net.cfg.to_dict() != mcfg.to_dict():
        have, want = {**asdict(net.spec), **asdict(net.cfg)}, {**asdict(spec), **asdict(mcfg)}
        diff = sorted(k for k in have if want.get(k) != have[k])
        raise ConfigError(f"optim.init_from: {source} is another network than this configuration's "
                          f"(differs in {', '.join(diff) or 'its layout'})")
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, trained


def _regated(net: torch.nn.Module, mcfg: Any, source: str, verbose: bool) -> torch.nn.Module:
    """A bandfilter network whose deep filter is added, as one whose filter is gated (the same weights)
    when ``mcfg`` differs from its configuration in that alone; ``net`` itself otherwise (a gated filter
    is not made an added one: nothing trains that way any more)."""
    from .bandfilter import BandFilterConfig, BandFilterNet

    if not isinstance(mcfg, BandFilterConfig) or not isinstance(net, BandFilterNet):
        return net
    if (net.cfg.deep_filter, mcfg.deep_filter) != ("added", "gated") or net.cfg.replace(deep_filter="gated") != mcfg:
        return net
    moved = BandFilterNet(net.spec, mcfg)
    moved.load_state_dict(net.state_dict())
    if verbose:
        print(f"{source}: its deep filter {net.cfg.deep_filter} -> {mcfg.deep_filter} (the same weights; the "
              f"output moves where the band gains are below 1)", file=sys.stderr)
    return moved


def same_draw(cfg: TrainConfig, trained: dict) -> bool:
    """Whether a run configured as ``trained`` (a checkpoint's ``train_config``) drew the training
    mixtures ``cfg`` will draw: same data, seed and draw, so its epochs would come again."""
    # a setting a run's configuration predates (data.draw, data.speed, ...) had its default, off
    data = {**dataclasses.asdict(DataConfig()), **(trained.get("data") or {})}
    mine = dataclasses.asdict(cfg.data)
    return trained.get("seed") == cfg.seed and all(
        data.get(k) == v for k, v in mine.items() if k not in _NOT_IN_TRAINING_ITEMS)


#: Data settings that leave the training items as they are.
_NOT_IN_TRAINING_ITEMS = frozenset({"valid_items", "valid_set", "num_workers"})


def _device_kind(cfg: TrainConfig) -> str:
    return "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) \
        else "cpu"


class Trainer:
    """One training run, resumable after a kill: set-up, steps, validation, checkpoints and logging apart.

    :meth:`run` trains to ``optim.epochs``. Every random draw comes from ``(seed, epoch, step, rank)``
    and the position, optimiser, history and carried states are checkpointed in ``out_dir/last.pt``,
    so a run killed at any step and resumed gives the weights an uninterrupted run gives.
    """

    def __init__(self, cfg: TrainConfig, *, restart: bool = False) -> None:
        check_schedule(cfg)  # before any data is read or process group joined
        self.cfg = cfg
        self.d = d = init_distributed(_device_kind(cfg))
        self.device = device = pick_device(cfg, d.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // d.world))
        self.out = Path(cfg.out_dir)
        self.spec, self.mcfg = resolve_model(cfg)
        self.train_ds, self.valid_ds, self.data_summary = build_datasets(cfg, self.spec)
        self.weights = LossWeights(**vars(cfg.loss))
        if not self.weights.any_on():
            raise ConfigError("all loss weights are zero: enable loss.contrastive, loss.magnitude, loss.si_sdr, "
                              "loss.gap, loss.compressed, loss.mrstft or loss.voice_guard")
        torch.manual_seed(derive_seed(cfg.seed, "init"))
        self.net = build_model(self.spec, self.mcfg).to(device)
        self.frontend = Frontend(self.spec).to(device)
        self.augment = build_augment(cfg).to(device)
        try:
            self.carry = StateCarry(cfg.augment.carry_state, self.spec.hop)
        except ValueError as exc:
            raise ConfigError(f"augment.carry_state: {exc}") from None
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.position: dict[str, Any] = {"epoch": 0, "step": 0, "global_step": 0}
        self.history: list[dict] = []
        self.best: dict[str, Any] = {"val_loss": math.inf, "epoch": -1}
        self.last = self.out / "last.pt"
        resuming = self.last.exists() and not restart
        if cfg.optim.init_from and not resuming:
            self._start_from(cfg.optim.init_from)
        if resuming:
            self._resume()
        self.model: torch.nn.Module = self.net
        if d.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None)
        self.train_config = cfg.to_dict()
        self.train_config["data_summary"] = self.data_summary
        self.train_config["world_size"] = d.world
        if d.main:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out / "train_config.json")
        self._schedule()

    # ------------------------------------------------------------ set-up
    def _start_from(self, source: str) -> None:
        """Weights of another model (``optim.init_from``) for a run that starts afresh."""
        state, trained = initial_weights(source, self.spec, self.mcfg, verbose=self.d.main)
        self.net.load_state_dict(state)
        if self.d.main:
            print(f"starting from the weights of {source}", file=sys.stderr)
            if same_draw(self.cfg, trained):
                print(f"warning: {source} was trained on the mixtures this run draws (seed "
                      f"{self.cfg.seed}, data.draw {self.cfg.data.draw}): its epochs come again; set data.draw to "
                      "one it did not use", file=sys.stderr)

    def _resume(self) -> None:
        """Weights, optimiser, position, history and carried states from ``last.pt``."""
        payload = read_checkpoint(self.last)
        extra = payload.get("extra") or {}
        if "optimizer" not in extra or "position" not in extra:
            raise CheckpointError(self.last, "not a resumable checkpoint (no optimiser state)")
        stored = payload["meta"]
        if stored["frame_spec"] != self.spec.to_dict() or stored["model"] != self.mcfg.to_dict():
            raise CheckpointError(self.last, "was written for another model configuration; use --restart to "
                                             "start afresh or another out_dir")
        self.net.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(extra["optimizer"])
        for group in self.optimizer.param_groups:  # the configuration's rate wins: a resumed run may lower it
            group["lr"], group["weight_decay"] = self.cfg.optim.lr, self.cfg.optim.weight_decay
        self.position = json.loads(extra["position"])
        self.history = json.loads(extra["history"])
        self.best = json.loads(extra["best"])
        carried = extra.get("carry")
        if carried is not None and carried.shape[0] == self.d.world:
            self.carry.load_state_dict(carried[self.d.rank], self.device)
        if self.d.main:
            p = self.position
            print(f"resuming from {self.last}: epoch {p['epoch'] + 1}, step {p['step']} "
                  f"(global step {p['global_step']})", file=sys.stderr)

    def _schedule(self) -> None:
        cfg, d = self.cfg, self.d
        self.per_rank = cfg.data.train_items // d.world
        steps = self.per_rank // cfg.optim.batch_size
        if cfg.optim.max_steps_per_epoch:
            steps = min(steps, cfg.optim.max_steps_per_epoch)
        if steps < 1:
            raise ConfigError(f"data.train_items {cfg.data.train_items} gives no full batch of "
                              f"{cfg.optim.batch_size} per process ({d.world} processes)")
        self.steps_per_epoch = steps
        self.total_steps = steps * cfg.optim.epochs
        valid_idx = list(range(d.rank, len(self.valid_ds), d.world))
        self.valid_loader = DataLoader(self.valid_ds, batch_sampler=_batches(
            valid_idx, cfg.optim.batch_size, -(-len(valid_idx) // cfg.optim.batch_size), 0),
            num_workers=cfg.data.num_workers)

    # ------------------------------------------------------------ checkpoints and logs
    def save_last(self) -> None:
        """The resumable checkpoint: weights, optimiser, position, history, best and carried states."""
        carried = _gather_carry(self.carry, self.d)
        if not self.d.main:
            return
        extra = {"optimizer": self.optimizer.state_dict(), "position": json.dumps(self.position),
                 "history": json.dumps(self.history), "best": json.dumps(self.best)}
        if carried is not None:
            extra["carry"] = carried
        save_checkpoint(self.last, self.net, train_config=self.train_config,
                        metrics=self.history[-1] if self.history else None, extra=extra)

    def _log_step(self, loss: float, rate: float, parts: dict[str, float]) -> None:
        step = self.position["global_step"]
        if self.writer is not None and step % max(self.cfg.log_every, 1) == 0:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", rate, step)
            for k, v in parts.items():
                self.writer.add_scalar(f"train/{k}", v, step)

    def _log_epoch(self, record: dict, improved: bool) -> None:
        _write_json(self.out / "history.json", self.history)
        plot_history(self.history, self.out / "loss.png")
        if self.writer is not None:
            for k, v in record.items():
                if k.startswith("val_") or k == "train_loss":
                    self.writer.add_scalar(f"epoch/{k}", v, self.position["global_step"])
            self.writer.flush()
        print(f"epoch {record['epoch'] + 1}/{self.cfg.optim.epochs}: train loss {record['train_loss']:.4f}, "
              f"validation loss {record['val_loss']:.4f}, SI-SDR {record['val_si_sdr']:.2f} dB "
              f"(improvement {record['val_si_sdri']:.2f} dB)" + ("  *best*" if improved else ""),
              file=sys.stderr)

    # ------------------------------------------------------------ training
    def step(self, batch: dict[str, torch.Tensor], epoch: int, step: int) -> tuple[float, float, dict[str, float]]:
        """One optimiser step on ``batch``: ``(loss, learning rate, loss parts)``."""
        cfg, d = self.cfg, self.d
        torch.manual_seed(derive_seed(cfg.seed, epoch, step, d.rank, "dropout"))
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(cfg.seed, epoch, step, d.rank, "augment"))
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        batch = self.augment(batch, gen)
        res = run_batch(self.model, self.net, self.frontend, batch, self.weights, need_waves=False,
                        carry=self.carry, gen=gen)
        self.optimizer.zero_grad(set_to_none=True)
        res.loss.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.optim.grad_clip)
        rate = learning_rate(cfg.optim, self.position["global_step"], self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.optimizer.step()
        loss = float(res.loss.detach())
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1}, step {step}; "
                                     "lower optim.lr or check the data")
        self.audio_seconds += batch["mixture"].shape[0] * batch["mixture"].shape[-1] / self.spec.sample_rate
        return loss, rate, res.parts

    def run_epoch(self, epoch: int, stop_after_steps: int | None) -> float:
        """The steps of ``epoch`` from where the position stands; the sum of their losses."""
        from tqdm import tqdm

        cfg, d = self.cfg, self.d
        self.train_ds.set_epoch(epoch)
        resumed = epoch == self.position["epoch"]
        start_step = self.position["step"] if resumed else 0
        indices = list(range(d.rank, d.world * self.per_rank, d.world))
        loader = DataLoader(self.train_ds, num_workers=cfg.data.num_workers, batch_sampler=_batches(
            indices, cfg.optim.batch_size, self.steps_per_epoch, start_step))
        bar = tqdm(total=self.steps_per_epoch, initial=start_step, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
                   disable=not (cfg.progress and d.main), leave=False, file=sys.stderr)
        epoch_loss = float(self.position.get("epoch_loss_sum", 0.0)) if resumed else 0.0
        for step, batch in enumerate(loader, start=start_step):
            loss, rate, parts = self.step(batch, epoch, step)
            epoch_loss += loss
            self.position = {"epoch": epoch, "step": step + 1, "global_step": self.position["global_step"] + 1,
                             "epoch_loss_sum": epoch_loss}
            self.steps_this_call += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            self._log_step(loss, rate, parts)
            if cfg.checkpoint_every and self.position["global_step"] % cfg.checkpoint_every == 0 \
                    and self.position["step"] < self.steps_per_epoch:
                self.save_last()
            if stop_after_steps is not None and self.steps_this_call >= stop_after_steps:
                self.save_last()
                raise _StopRequested
        bar.close()
        return epoch_loss

    def end_epoch(self, epoch: int, epoch_loss: float) -> None:
        """Validate, keep the best weights, checkpoint the position at the next epoch, log."""
        d = self.d
        metrics = validate(self.model, self.net, self.frontend, self.valid_loader, self.weights, self.device, d)
        train_loss = _all_reduce([epoch_loss / self.steps_per_epoch], d, self.device)[0] / d.world
        record = {"epoch": epoch, "global_step": self.position["global_step"], "train_loss": train_loss, **metrics}
        self.history.append(record)
        improved = metrics["val_loss"] < self.best["val_loss"]
        if improved:
            self.best = {"val_loss": metrics["val_loss"], "epoch": epoch}
        self.position = {"epoch": epoch + 1, "step": 0, "global_step": self.position["global_step"],
                         "epoch_loss_sum": 0.0}
        if d.main:
            if improved:
                save_checkpoint(self.out / "best.pt", self.net, train_config=self.train_config, metrics=record)
            if self.cfg.keep_epochs:
                save_checkpoint(self.out / f"epoch_{epoch + 1:03d}.pt", self.net, train_config=self.train_config,
                                metrics=record, config_json=False)
        self.save_last()
        if d.main:
            self._log_epoch(record, improved)

    def run(self, stop_after_steps: int | None = None) -> dict[str, Any]:
        """Train to the last epoch (or ``stop_after_steps`` steps of this call); returns a summary."""
        cfg, d = self.cfg, self.d
        self.writer = None
        if d.main and cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.position["global_step"] or None)
        self.steps_this_call = 0
        self.audio_seconds = 0.0
        t_start = time.perf_counter()
        self.model.train()
        self.augment.train()
        try:
            for epoch in range(self.position["epoch"], cfg.optim.epochs):
                self.end_epoch(epoch, self.run_epoch(epoch, stop_after_steps))
        except _StopRequested:
            pass
        finally:
            if self.writer is not None:
                self.writer.close()
        if d.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
        return {"out_dir": str(self.out), "position": self.position, "history": self.history, "best": self.best,
                "steps": self.steps_this_call, "seconds": time.perf_counter() - t_start,
                "audio_seconds": self.audio_seconds, "rank": d.rank, "world": d.world, "device": str(self.device),
                "parameters": self.net.num_parameters(), "data": self.data_summary}


def train(cfg: TrainConfig, *, restart: bool = False, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Run (or resume) the training described by ``cfg``; returns a summary dict.

    Resumes from ``out_dir/last.pt`` when it exists, unless ``restart``.
    ``stop_after_steps``: return after that many optimiser steps of this call
    (used by benchmarks; a checkpoint is written first).
    """
    return Trainer(cfg, restart=restart).run(stop_after_steps)
