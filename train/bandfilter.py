"""``bandfilter``: ERB-band gains over the full band plus a complex deep filter on the low bins, a GRU core.

An architecture of its own beside :class:`~deepiso.train.model.IsolatorNet`, shaped after DeepFilterNet
(Schröter et al., 2022-2023) and sized for two CPU cores. It reads the same frame contract (the awareness
context of real+imag frames, ``features: "ri"``) and writes the same output kind (``"spectrum"``), so the
engine, the exporter and the training loop run it unchanged. Per frame::

    newest frame of the context (real+imag, all bins)
      ├─ magnitude per bin → |X|^c → mean per ERB band   (E values: compressed band levels)
      └─ lowest D bins' real+imag, magnitude → |X|^c       (2D values: compressed complex low bins)
    concat → Linear + ReLU → GRU (layers × hidden) ─┬─ Linear → sigmoid → E gains in [0, 1]
                                                    │    spread to the bins by the bands' transpose
                                                    └─ Linear → tanh → complex filter of order K on D bins
    vocal spectrum = gain × centre frame, plus, on the D lowest bins, the filter over the K context frames
                     (``deep_filter: "gated"``: the filter's output times the gain as well)

The band matrices are fixed buffers computed from the configuration (:func:`erb_bands`), not parameters and
not stored in checkpoints; a change to how they are computed is a new ``format_version``.

**State.** A GRU has a hidden state and no cell state. The engine's contract carries ``h`` and ``c``, each
``(layers, B, hidden)``: the GRU state travels in ``h``, and ``c`` is passed through unchanged
(``c_out = c``), so the engine, the exporter and carried training states need nothing new. The model card
says so in ``state`` (``"cell": "gru"``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from deepiso.realtime.frame import FrameSpec

from .model import Architecture, ModelConfigError, centre_features, deep_filtered, register_architecture

#: Version of :meth:`BandFilterConfig.to_dict`'s layout and of the band matrices; readers refuse newer ones.
#: 2 added ``deep_filter`` (version 1 files read as ``"added"``).
FORMAT_VERSION = 2
#: How the deep filter's output joins the band gains' (:class:`BandFilterConfig`).
DEEP_FILTER_MODES = ("added", "gated")

State = tuple[Tensor, Tensor]


def _hz_to_erb(f: float) -> float:
    return 21.4 * math.log10(1.0 + 0.00437 * f)


def _erb_to_hz(e: float) -> float:
    return (10 ** (e / 21.4) - 1.0) / 0.00437


def erb_bands(n_bins: int, sample_rate: int, bands: int, min_width: int = 2) -> Tensor:
    """Triangular bands on the ERB scale, ``(bands, n_bins)`` float32, that sum to one in every bin.

    Band centres run from bin 0 to the last bin, equally spaced in ERB but at least ``min_width`` bins
    apart (the low bands, narrower than a bin or two on the ERB scale, take the minimum and the rest of the
    scale is shared by the others). Between two centres a bin's weight goes linearly from one band to the
    next, so every column sums to one: the transpose spreads band gains to the bins as a convex mix (gains
    in [0, 1] stay in [0, 1]), and row-normalised rows average a band's bins.
    """
    if bands < 2:
        raise ModelConfigError(f"erb_bands must be >= 2, got {bands}")
    if (bands - 1) * min_width > n_bins - 1:
        raise ModelConfigError(f"{bands} bands at least {min_width} bins apart do not fit in {n_bins} bins")
    nyquist = sample_rate / 2
    to_bin = (n_bins - 1) / nyquist
    pos = [0.0]
    for i in range(1, bands):
        here = _hz_to_erb(pos[-1] / to_bin)
        step = (_hz_to_erb(nyquist) - here) / (bands - i)  # the rest of the scale, shared equally
        nxt = _erb_to_hz(here + step) * to_bin if i < bands - 1 else float(n_bins - 1)
        pos.append(max(nxt, pos[-1] + min_width))
    if pos[-1] > n_bins - 1 + 1e-6:
        raise ModelConfigError(f"{bands} bands at least {min_width} bins apart do not fit in {n_bins} bins")
    k = torch.arange(n_bins, dtype=torch.float64)
    rows = []
    for b in range(bands):
        w = torch.zeros(n_bins, dtype=torch.float64)
        if b > 0:
            lo, mid = pos[b - 1], pos[b]
            w = torch.where((k > lo) & (k <= mid), (k - lo) / (mid - lo), w)
        else:
            w = torch.where(k <= pos[0], torch.ones_like(w), w)
        if b < bands - 1:
            mid, hi = pos[b], pos[b + 1]
            w = torch.where((k > mid) & (k < hi), (hi - k) / (hi - mid), w)
        else:
            w = torch.where(k >= pos[-1], torch.ones_like(w), w)
        rows.append(w)
    return torch.stack(rows).to(torch.float32)


@dataclass(frozen=True)
class BandFilterConfig:
    """Hyper-parameters of :class:`BandFilterNet` (the frame contract is separate: :class:`FrameSpec`).

    * ``erb_bands``: ERB bands of the gains and of the band-energy input (:func:`erb_bands`);
      ``min_band_width``: the least distance between band centres, in bins.
    * ``df_bins``: the lowest bins that get the complex deep filter (order: the awareness context) and whose
      complex values join the input.
    * ``compression_power``: ``c`` of the input's power-law compression (the bands average ``|X|^c``, the
      complex bins become ``X |X|^(c - 1)``: magnitude ``|X|^c``, phase kept).
    * ``encoder_width``: the per-frame input layer's width; ``hidden``, ``layers``: the GRU.
    * ``deep_filter_gain``: the filter's coefficients are ``tanh(gain * L(h))``; its output layer starts at
      zero, so a new network starts as band gains alone and learns the filter on top.
    * ``deep_filter``: ``"added"``: the filter's output is added to the gained centre frame on the low bins;
      ``"gated"``: it is multiplied by the same gains first, so where the gains close a band the filter
      cannot put the band back. Added, the filter of phase 1 and 2 (docs/training-history.md) left
      voice-free music 2-4 dB louder than the gains alone did, and at times louder than it went in.
    """

    architecture: ClassVar[str] = "bandfilter"

    name: str = "custom"
    erb_bands: int = 32
    min_band_width: int = 2
    df_bins: int = 96
    compression_power: float = 0.3
    encoder_width: int = 192
    hidden: int = 192
    layers: int = 2
    deep_filter_gain: float = 1.0
    deep_filter: str = "added"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ModelConfigError` naming the first impossible setting."""
        if not isinstance(self.name, str):
            raise ModelConfigError(f"name must be a string, got {self.name!r}")
        for name in ("erb_bands", "min_band_width", "df_bins", "encoder_width", "hidden", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelConfigError(f"{name} must be an integer, got {value!r}")
            if value < 1:
                raise ModelConfigError(f"{name} must be >= 1, got {value}")
        if self.erb_bands < 2:
            raise ModelConfigError(f"erb_bands must be >= 2, got {self.erb_bands}")
        for name in ("compression_power", "deep_filter_gain"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ModelConfigError(f"{name} must be a number, got {value!r}")
        if not 0.0 < float(self.compression_power) <= 1.0:
            raise ModelConfigError(f"compression_power must be in (0, 1], got {self.compression_power}")
        if not float(self.deep_filter_gain) > 0.0:
            raise ModelConfigError(f"deep_filter_gain must be > 0, got {self.deep_filter_gain}")
        if self.deep_filter not in DEEP_FILTER_MODES:
            raise ModelConfigError(f"deep_filter must be one of {', '.join(DEEP_FILTER_MODES)}, got "
                                   f"{self.deep_filter!r}")

    # ------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "architecture": self.architecture, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BandFilterConfig:
        if not isinstance(data, dict):
            raise ModelConfigError(f"a model config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        arch = data.pop("architecture", None)
        if arch != cls.architecture:
            raise ModelConfigError(f"a {cls.architecture} model config needs architecture "
                                   f"{cls.architecture!r}, got {arch!r}")
        version = data.pop("format_version", None)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ModelConfigError(f"{cls.architecture} model config format_version {version!r} is not valid")
        if version > FORMAT_VERSION:
            raise ModelConfigError(
                f"{cls.architecture} model config format_version {version} is newer than this deepiso "
                f"understands ({FORMAT_VERSION}); upgrade deepiso")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ModelConfigError(f"model config has unknown fields: {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> BandFilterConfig:
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ModelConfigError(f"{self.architecture} model config has no fields {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


class BandFilterNet(nn.Module):
    """Awareness context in, vocal spectrum out, one row per frame; a GRU carries the state.

    ``forward(x, state=None) -> (y, (h, c))``:

    * ``x``: ``(B, T, spec.input_size)`` float32, row ``t`` = the context of frame ``t`` (``spec.context``
      real+imag frames, oldest first); the network reads its per-frame input from each row's newest frame
      and filters the low bins over all of them;
    * ``state``: ``(h, c)``, each ``(layers, B, hidden)``; ``None`` = zeros. ``h`` is the GRU's state;
      ``c`` has no use in a GRU and is returned unchanged (``c_out = c``), so the engine's LSTM-shaped
      state contract holds;
    * ``y``: ``(B, T, 2 * n_bins)``: real+imag of the vocal spectrum of the centre frame (context row
      ``past_frames``): ERB-band gains on every bin, plus the complex deep filter on the lowest
      ``df_bins``.
    """

    #: What the model card's ``state`` adds for this network.
    state_card: ClassVar[dict[str, str]] = {"cell": "gru", "c": "unused: passed through unchanged (c_out = c)"}

    def __init__(self, spec: FrameSpec, cfg: BandFilterConfig) -> None:
        super().__init__()
        if spec.output != "spectrum":
            raise ModelConfigError(f"the {cfg.architecture} network outputs the vocal spectrum (output "
                                   f"'spectrum'), not {spec.output!r}")
        if cfg.df_bins > spec.n_bins:
            raise ModelConfigError(f"df_bins {cfg.df_bins} is more than the {spec.n_bins} bins")
        self.spec = spec
        self.cfg = cfg
        bands = erb_bands(spec.n_bins, spec.sample_rate, cfg.erb_bands, cfg.min_band_width)
        # (n_bins, E): the mean of a band's bins; (E, n_bins): band gains to bin gains (columns sum to one)
        self.register_buffer("band_pool", (bands / bands.sum(dim=1, keepdim=True)).T.contiguous(), persistent=False)
        self.register_buffer("band_spread", bands, persistent=False)
        self.input_size = cfg.erb_bands + 2 * cfg.df_bins
        self.encoder = nn.Sequential(nn.Linear(self.input_size, cfg.encoder_width), nn.ReLU())
        self.gru = nn.GRU(cfg.encoder_width, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.gain_head = nn.Linear(cfg.hidden, cfg.erb_bands)
        self.df_head = nn.Linear(cfg.hidden, 2 * spec.context * cfg.df_bins)
        nn.init.zeros_(self.df_head.weight)
        nn.init.zeros_(self.df_head.bias)

    # ------------------------------------------------------------- state
    def initial_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero ``(h, c)``, each ``(layers, batch, hidden)`` float32."""
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        dev = device if device is not None else next(self.parameters()).device
        return torch.zeros(shape, device=dev), torch.zeros(shape, device=dev)

    # ------------------------------------------------------------- forward
    def frame_input(self, frame: Tensor) -> Tensor:
        """Per-frame input ``(..., erb_bands + 2 * df_bins)`` of real+imag frames ``(..., 2 * n_bins)``.

        The band values are band means of the compressed magnitude ``|X|^c``, compressed before the
        pooling: an int8 graph quantises the pooling's input per call to 8 bits over its whole range, which
        for powers moved a quarter of the band values (the exporter's synthetic signal, voiced frames) by
        more than 10 % after compression, and for ``|X|^c`` 8 %.
        """
        n, d, p = self.spec.n_bins, self.cfg.df_bins, float(self.cfg.compression_power)
        re, im = frame[..., :n], frame[..., n:]
        mag = torch.sqrt(re * re + im * im + 1e-12)
        erb = mag**p @ self.band_pool
        gain = (mag[..., :d] + 1e-8) ** (p - 1.0)
        return torch.cat([erb, re[..., :d] * gain, im[..., :d] * gain], dim=-1)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if x.dim() != 3 or x.shape[-1] != self.spec.input_size:
            raise ValueError(f"expected input (batch, frames, {self.spec.input_size}), got {tuple(x.shape)}")
        h0, c = self.initial_state(x.shape[0], x.device) if state is None else state
        f = self.spec.feature_size
        z = self.encoder(self.frame_input(x[..., (self.spec.context - 1) * f :]))
        r, h = self.gru(z, h0)
        gains = torch.sigmoid(self.gain_head(r))  # (B, T, E) in [0, 1]
        mask = gains @ self.band_spread  # (B, T, n_bins), each a convex mix of band gains
        coef = torch.tanh(float(self.cfg.deep_filter_gain) * self.df_head(r))
        return self._filtered(mask, coef, x), (h, c)

    def _filtered(self, mask: Tensor, coef: Tensor, x: Tensor) -> Tensor:
        return deep_filtered(self.spec, self.cfg.df_bins, mask, coef, x, gated=self.cfg.deep_filter == "gated")

    # ------------------------------------------------------------- outputs
    def centre_features(self, x: Tensor) -> Tensor:
        """The centre frame's real+imag features ``(..., 2 * n_bins)`` from contexts ``(..., input_size)``."""
        return centre_features(self.spec, x)

    def vocal_spectrum(self, y: Tensor, x: Tensor) -> Tensor:
        """The vocal spectrum's real+imag: the output itself (output kind ``"spectrum"``)."""
        return y

    def fixed_macs_per_frame(self) -> int:
        """Multiply-adds per frame outside the weight layers: band pooling and spreading, the centre frame's
        gains and the deep filter (4 real multiply-adds per complex one)."""
        n, e, d, k = self.spec.n_bins, self.cfg.erb_bands, self.cfg.df_bins, self.spec.context
        return 2 * n * e + 2 * n + 4 * k * d + (2 * d if self.cfg.deep_filter == "gated" else 0)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_bandfilter(spec: FrameSpec, cfg: BandFilterConfig) -> BandFilterNet:
    """A fresh :class:`BandFilterNet` (PyTorch's default init, the deep filter's output layer at zero)."""
    return BandFilterNet(spec, cfg)


#: The named configurations of this architecture (``get_config``, ``model:`` in a training configuration).
CONFIGS: dict[str, tuple[FrameSpec, BandFilterConfig]] = {
    # DeepFilterNet's frame: 48 kHz, 20 ms window, 10 ms hop (960 / 480 at 48 kHz, 50 Hz per bin); causal
    # (4 past frames: the deep filter's order is 5, no look-ahead); 32 ERB bands over the full band; the
    # deep filter on the lowest 96 bins (0-4.75 kHz), gated by the band gains; a 2-layer GRU of 192: 0.68 M
    # parameters.
    "bandfilter": (
        FrameSpec(sample_rate=48_000, n_fft=960, hop=480, window="hann", past_frames=4, future_frames=0,
                  output="spectrum"),
        BandFilterConfig(name="bandfilter", erb_bands=32, min_band_width=2, df_bins=96, compression_power=0.3,
                         encoder_width=192, hidden=192, layers=2, deep_filter="gated"),
    ),
    # A tiny one for tests: 16 kHz, n_fft 256, hop 64, one look-ahead frame.
    "bandfilter-tiny-test": (
        FrameSpec(sample_rate=16_000, n_fft=256, hop=64, window="hann", past_frames=2, future_frames=1,
                  output="spectrum"),
        BandFilterConfig(name="bandfilter-tiny-test", erb_bands=8, df_bins=12, encoder_width=16, hidden=16,
                         layers=2, deep_filter="gated"),
    ),
}

register_architecture(Architecture(BandFilterConfig.architecture, BandFilterConfig, BandFilterNet, build_bandfilter),
                      CONFIGS)
