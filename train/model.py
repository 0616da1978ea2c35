"""The isolation network: pure tensors in, pure tensors out (no I/O, no STFT).

One step of the model sees the *awareness context* of one frame: the
real+imag features (:func:`deepiso.realtime.dsp.features` layout: all real
parts, then all imaginary parts) of ``spec.context`` frames, oldest first,
concatenated. Offline this is exactly
``dsp.awareness(dsp.features(dsp.stft(x, spec)), spec.past_frames, spec.future_frames)``;
streaming it is ``StreamAnalyzer.context.reshape(C, -1)``.

The report's network ("seed") is::

    context (K * 2 * bins) -> pre-FC -> 2-layer LSTM -> 3-layer FC -> real+imag vocal spectrum

Everything beyond it is a switch in :class:`ModelConfig` so the report's
configuration stays runnable by name and every change can be measured
against it: per-frame input compression (power law, inside the network so it
exports), band compression of the input, a per-frame encoder shared across
the context ("encode once, then stack"), and mask outputs (chosen by
``FrameSpec.output``).

``forward(x, state) -> (y, state)`` with the LSTM state explicit, so a call
over a whole sequence equals frame-by-frame calls carrying the state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from deepiso.realtime.frame import FrameSpec

#: Version of :meth:`ModelConfig.to_dict`'s layout; readers refuse newer ones.
MODEL_FORMAT_VERSION = 1

ENCODERS = ("stack", "encode_once")
COMPRESSIONS = ("none", "power")
ACTIVATIONS = ("relu", "tanh", "gelu")
NORMS = ("none", "layer")

State = tuple[Tensor, Tensor]


class ModelConfigError(ValueError):
    """A model configuration that cannot be built, or a serialised one we cannot read."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`IsolatorNet` (the frame contract is separate: :class:`FrameSpec`).

    * ``hidden``, ``layers``: LSTM width and depth.
    * ``pre_fc``: width of the fully connected layer before the LSTM (the
      report's "pre-FC"); 0 feeds the (encoded) context to the LSTM directly.
    * ``fc_layers``, ``fc_width``: the FC head after the LSTM (``fc_layers``
      linear layers; the last one maps to ``spec.output_size``); ``fc_width``
      0 means ``hidden``.
    * ``encoder``: ``"stack"`` (the report: the K frames are concatenated and
      mixed by the pre-FC) or ``"encode_once"`` (one per-frame encoder of
      width ``encoder_width`` shared by all K context positions; its outputs
      are stacked, cutting the input layer's weights K-fold, and a full
      sequence encodes each frame once).
    * ``input_compression``: ``"none"`` or ``"power"``: each complex bin
      ``X`` becomes ``X * (|X| + eps)^(compression_power - 1)`` (magnitude
      raised to the power, phase kept) before anything else.
    * ``bands``: 0, or the number of triangular, mel-spaced bands the
      (compressed) magnitude of each frame is pooled into; the phase is then
      dropped, so this suits mask outputs.
    * ``norm``: ``"none"`` or ``"layer"``: a LayerNorm on each frame's encoded
      input to the LSTM (after the encoder / pre-FC) and on the LSTM's output
      (per frame, so it is causal and the same in streaming).
    * ``skip``: the LSTM's input is concatenated to its output before the FC
      head (Open-Unmix's skip connection).
    * ``activation``: non-linearity of the FC layers; ``dropout`` between the
      LSTM layers (training only); ``mask_bound``: bound of a complex mask's
      real and imaginary parts (``bound * tanh``).
    * ``deep_filter``: 0, or the number of lowest bins that, besides the
      ratio mask on the centre frame, get a complex filter over all K
      awareness frames (DeepFilterNet's deep filtering): for bin ``k < D``
      the vocal spectrum is ``m_k X_t,k + sum_j w_j,k X_j,k`` with complex
      ``w = tanh(deep_filter_gain * L(u))`` (each part in ±1) from a second
      linear layer ``L`` on the FC head's last hidden layer ``u``. The gain
      (0.05) slows the filter's start: Adam moves every weight of ``L`` by
      about the learning rate at once, and unscaled, their sum over a
      256-wide layer disturbed a trained mask network (first 250 steps from
      0.7.0: training loss -0.82 at gain 1, -1.02 at 0.05). A filter over several frames can take
      apart harmonics that share one bin (43 Hz at 44.1 kHz / 1024), which a
      gain per bin cannot. Needs ``output "spectrum"``: the network outputs
      the vocal spectrum itself. Its weights start at zero, so a trained
      mask network given a deep filter computes what it did
      (:func:`deepiso.train.deepfilter.add_deep_filter`).
    """

    #: Not a field: the serialised form of this architecture carries no ``architecture`` key.
    architecture: ClassVar[str] = "isolator"

    name: str = "custom"
    hidden: int = 256
    layers: int = 2
    pre_fc: int = 256
    fc_layers: int = 3
    fc_width: int = 0
    encoder: str = "stack"
    encoder_width: int = 0
    input_compression: str = "none"
    compression_power: float = 0.3
    bands: int = 0
    activation: str = "relu"
    dropout: float = 0.0
    mask_bound: float = 1.5
    norm: str = "none"
    skip: bool = False
    deep_filter: int = 0
    deep_filter_gain: float = 0.05

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ModelConfigError` naming the first impossible setting."""
        for name in ("hidden", "layers", "pre_fc", "fc_layers", "fc_width", "encoder_width", "bands", "deep_filter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelConfigError(f"{name} must be an integer, got {value!r}")
        if self.hidden < 1 or self.layers < 1:
            raise ModelConfigError(f"hidden and layers must be >= 1, got {self.hidden} and {self.layers}")
        if self.pre_fc < 0 or self.fc_width < 0 or self.encoder_width < 0 or self.bands < 0 or self.deep_filter < 0:
            raise ModelConfigError("pre_fc, fc_width, encoder_width, bands and deep_filter must be >= 0")
        if self.deep_filter and self.fc_layers < 2:
            raise ModelConfigError("deep_filter needs fc_layers >= 2 (it reads the head's last hidden layer)")
        if self.fc_layers < 1:
            raise ModelConfigError(f"fc_layers must be >= 1, got {self.fc_layers}")
        if self.encoder not in ENCODERS:
            raise ModelConfigError(f"unknown encoder {self.encoder!r}; choose one of {ENCODERS}")
        if self.encoder == "encode_once" and self.encoder_width < 1:
            raise ModelConfigError("encoder 'encode_once' needs encoder_width >= 1")
        if self.input_compression not in COMPRESSIONS:
            raise ModelConfigError(
                f"unknown input_compression {self.input_compression!r}; choose one of {COMPRESSIONS}")
        if not 0.0 < float(self.compression_power) <= 1.0:
            raise ModelConfigError(f"compression_power must be in (0, 1], got {self.compression_power}")
        if self.norm not in NORMS:
            raise ModelConfigError(f"unknown norm {self.norm!r}; choose one of {NORMS}")
        if not isinstance(self.skip, bool):
            raise ModelConfigError(f"skip must be true or false, got {self.skip!r}")
        if self.activation not in ACTIVATIONS:
            raise ModelConfigError(f"unknown activation {self.activation!r}; choose one of {ACTIVATIONS}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ModelConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not float(self.deep_filter_gain) > 0.0:
            raise ModelConfigError(f"deep_filter_gain must be > 0, got {self.deep_filter_gain}")
        if not float(self.mask_bound) > 0.0:
            raise ModelConfigError(f"mask_bound must be > 0, got {self.mask_bound}")

    # ------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {"format_version": MODEL_FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The configuration ``data`` describes: a :class:`ModelConfig`, or with an ``architecture`` key
        naming another registered architecture, that architecture's configuration (see :data:`ARCHITECTURES`)."""
        if not isinstance(data, dict):
            raise ModelConfigError(f"a model config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        arch = data.pop("architecture", cls.architecture)
        if arch != cls.architecture:
            return architecture(arch).config.from_dict({**data, "architecture": arch})
        version = data.pop("format_version", MODEL_FORMAT_VERSION)
        if not isinstance(version, int) or version < 1:
            raise ModelConfigError(f"model config format_version {version!r} is not valid")
        if version > MODEL_FORMAT_VERSION:
            raise ModelConfigError(
                f"model config format_version {version} is newer than this deepiso understands "
                f"({MODEL_FORMAT_VERSION}); upgrade deepiso")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelConfigError(f"model config has unknown fields: {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------
# Named configurations

CONFIGS: dict[str, tuple[FrameSpec, ModelConfig]] = {
    # The report's model exactly: 44.1 kHz, n_fft 1024, hop 256, hann; awareness
    # of K=5 frames centred on the output frame; pre-FC to the LSTM width;
    # 2-layer LSTM (256); 3-layer FC; real+imag of the vocal spectrum out.
    "seed": (
        FrameSpec(sample_rate=44_100, n_fft=1024, hop=256, window="hann", past_frames=2, future_frames=2,
                  output="spectrum"),
        ModelConfig(name="seed", hidden=256, layers=2, pre_fc=256, fc_layers=3, fc_width=256, encoder="stack"),
    ),
    # Real time: causal (no look-ahead, latency = n_fft - hop + block jitter),
    # a ratio mask on the current frame, power-law input compression, a shared
    # per-frame encoder, LayerNorm around the LSTM and Open-Unmix's skip
    # connection (without the norms training sat on a plateau near +1.8 dB
    # validation SI-SDRi); ~1.8 M parameters (~7.1 MB fp32).
    "default": (
        FrameSpec(sample_rate=44_100, n_fft=1024, hop=256, window="hann", past_frames=4, future_frames=0,
                  output="ratio_mask"),
        ModelConfig(name="default", hidden=256, layers=2, pre_fc=0, fc_layers=3, fc_width=256,
                    encoder="encode_once", encoder_width=96, input_compression="power", compression_power=0.3,
                    norm="layer", skip=True),
    ),
    # A tiny network for tests (random init is fine): 16 kHz, n_fft 256, hop 64,
    # one look-ahead frame so the whole chain exercises future awareness.
    "tiny-test": (
        FrameSpec(sample_rate=16_000, n_fft=256, hop=64, window="hann", past_frames=2, future_frames=1,
                  output="spectrum"),
        ModelConfig(name="tiny-test", hidden=16, layers=2, pre_fc=16, fc_layers=3, fc_width=16, encoder="stack"),
    ),
}


def get_config(name: str) -> tuple[FrameSpec, ModelConfig]:
    """The named ``(FrameSpec, ModelConfig)``; ``KeyError`` with the known names otherwise."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model configuration {name!r}; known: {', '.join(sorted(CONFIGS))}") from None


# ----------------------------------------------------------------------------
# Architectures: network classes beside IsolatorNet, chosen by their configuration's type


@dataclass(frozen=True)
class Architecture:
    """A network family: its configuration dataclass (``from_dict``, ``to_dict``, ``replace``, ``name``,
    ``layers``, ``hidden``) and the function that builds its network from ``(FrameSpec, config)``.

    Every network takes ``forward(x, (h, c)) -> (y, (h, c))`` with ``h`` and ``c`` of shape
    ``(layers, B, hidden)`` (the engine's state contract) and has ``spec``, ``cfg``, ``initial_state``,
    ``vocal_spectrum`` and ``num_parameters``.
    """

    name: str
    config: type
    network: type
    build: Callable[[FrameSpec, Any], nn.Module]


#: The registered architectures by name. A serialised configuration (checkpoint, model card) names its
#: architecture in an ``architecture`` key; one without that key is an :class:`IsolatorNet`'s, so every
#: file written before other architectures existed reads as it did.
ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture, configs: dict[str, tuple[FrameSpec, Any]] | None = None) -> None:
    """Add ``arch`` and its named configurations (to :data:`CONFIGS`, for ``get_config`` and training)."""
    ARCHITECTURES[arch.name] = arch
    for name, pair in (configs or {}).items():
        if name in CONFIGS and CONFIGS[name] != pair:
            raise ModelConfigError(f"model configuration {name!r} is already defined")
        CONFIGS[name] = pair


def architecture(name: str) -> Architecture:
    """The registered architecture ``name``; :class:`ModelConfigError` naming the known ones otherwise."""
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise ModelConfigError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}") \
            from None


def architecture_of(cfg: Any) -> str:
    """The architecture name of a model configuration (``"isolator"`` for a :class:`ModelConfig`)."""
    return str(getattr(cfg, "architecture", ModelConfig.architecture))


def network_types() -> tuple[type, ...]:
    """The network classes of all registered architectures."""
    return tuple(a.network for a in ARCHITECTURES.values())


# ----------------------------------------------------------------------------
# Building blocks


def mel_bands(n_bins: int, sample_rate: int, bands: int) -> Tensor:
    """Triangular, mel-spaced pooling matrix ``(bands, n_bins)``; every bin is covered.

    Each row sums the bins of one band with triangular weights; rows are
    normalised to sum to one so band values stay on the scale of the bins.
    """
    if bands > n_bins:
        raise ModelConfigError(f"{bands} bands is more than the {n_bins} frequency bins")

    def hz_to_mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    def mel_to_hz(m: float) -> float:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    nyquist = sample_rate / 2
    mels = [hz_to_mel(nyquist) * i / (bands + 1) for i in range(bands + 2)]
    # Centres in bins, forced strictly increasing so low bands are never empty.
    pos = [mel_to_hz(m) / nyquist * (n_bins - 1) for m in mels]
    for i in range(1, len(pos)):
        pos[i] = max(pos[i], pos[i - 1] + 1.0)
    scale = (n_bins - 1) / pos[-1]
    pos = [p * scale for p in pos]
    k = torch.arange(n_bins, dtype=torch.float64)
    rows = []
    for b in range(bands):
        lo, mid, hi = pos[b], pos[b + 1], pos[b + 2]
        up = (k - lo) / max(mid - lo, 1e-9)
        down = (hi - k) / max(hi - mid, 1e-9)
        w = torch.clamp(torch.minimum(up, down), min=0.0)
        if b == 0:
            w = torch.where(k <= mid, torch.ones_like(w), w)
        if b == bands - 1:
            w = torch.where(k >= mid, torch.ones_like(w), w)
        rows.append(w / w.sum().clamp_min(1e-9))
    return torch.stack(rows).to(torch.float32)


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[name]()


class FrameTransform(nn.Module):
    """Per-frame input transform: power-law compression and band pooling.

    ``(..., 2 * n_bins)`` real+imag → ``(..., frame_size)`` where
    ``frame_size`` is ``2 * n_bins`` (no bands) or ``bands``.
    """

    def __init__(self, spec: FrameSpec, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_bins = spec.n_bins
        self.compress = cfg.input_compression == "power"
        self.power = float(cfg.compression_power)
        self.use_bands = cfg.bands > 0
        if self.use_bands:
            self.register_buffer("band_matrix", mel_bands(spec.n_bins, spec.sample_rate, cfg.bands).T.contiguous())
        self.frame_size = cfg.bands if self.use_bands else spec.feature_size

    def forward(self, f: Tensor) -> Tensor:
        re, im = f[..., : self.n_bins], f[..., self.n_bins :]
        if not (self.compress or self.use_bands):
            return f
        mag = torch.sqrt(re * re + im * im + 1e-12)
        if self.use_bands:
            m = mag ** self.power if self.compress else mag
            return m @ self.band_matrix
        gain = (mag + 1e-8) ** (self.power - 1.0)
        return torch.cat([re * gain, im * gain], dim=-1)


# ----------------------------------------------------------------------------
# The network


def centre_features(spec: FrameSpec, x: Tensor) -> Tensor:
    """The centre frame's real+imag features ``(..., 2 * n_bins)`` from contexts ``(..., input_size)``."""
    f, p = spec.feature_size, spec.past_frames
    return x[..., p * f : (p + 1) * f]


def deep_filtered(spec: FrameSpec, d: int, mask: Tensor, coef: Tensor, x: Tensor, gated: bool = False) -> Tensor:
    """The vocal spectrum's real+imag ``(B, T, 2 * n_bins)``: ``mask`` ``(B, T, n_bins)`` on the centre
    frame, plus the complex filter ``coef`` ``(B, T, 2 * K * d)`` (real parts, then imaginary, each
    ``(K, d)`` context-major) over the ``d`` lowest bins of the K context frames of ``x``; ``gated``:
    the filter's output times the mask too (a bin the mask closes stays closed)."""
    n, k = spec.n_bins, spec.context
    b, t, _ = x.shape
    frames = x.reshape(b, t, k, 2 * n)
    centre = centre_features(spec, x)
    cr, ci = centre[..., :n] * mask, centre[..., n:] * mask
    fr, fi = frames[..., :d], frames[..., n : n + d]  # (B, T, K, d)
    wr, wi = coef[..., : k * d].reshape(b, t, k, d), coef[..., k * d :].reshape(b, t, k, d)
    dr = (wr * fr - wi * fi).sum(dim=2)
    di = (wr * fi + wi * fr).sum(dim=2)
    if gated:
        dr, di = dr * mask[..., :d], di * mask[..., :d]
    return torch.cat([cr[..., :d] + dr, cr[..., d:], ci[..., :d] + di, ci[..., d:]], dim=-1)


class IsolatorNet(nn.Module):
    """Awareness context in, vocal spectrum (or mask) out, one row per frame.

    ``forward(x, state=None) -> (y, state)``:

    * ``x``: ``(B, T, spec.input_size)`` float32, row ``t`` = the context of
      frame ``t`` (``spec.context`` feature frames, oldest first);
    * ``state``: ``(h, c)``, each ``(layers, B, hidden)``; ``None`` = zeros;
    * ``y``: ``(B, T, spec.output_size)``: ``"spectrum"`` → real+imag of the
      vocal spectrum of the centre frame (context row ``past_frames``);
      ``"ratio_mask"`` → one gain in [0, 1] per bin for the centre frame;
      ``"complex_mask"`` → real+imag of a complex gain (each part in
      ``±mask_bound``) for the centre frame. Use :meth:`vocal_spectrum` to
      turn any of them into the vocal spectrum.

    With ``encoder="encode_once"`` a sequence call encodes every frame once
    (row 0's context plus the newest frame of each later row), which equals
    encoding every context row whenever ``x`` is a true awareness stack of one
    signal, as both the offline and the streaming feature paths produce.
    """

    def __init__(self, spec: FrameSpec, cfg: ModelConfig) -> None:
        super().__init__()
        self.spec = spec
        self.cfg = cfg
        k = spec.context
        self.frame_transform = FrameTransform(spec, cfg)
        frame_size = self.frame_transform.frame_size
        if cfg.encoder == "encode_once":
            self.frame_encoder: nn.Module | None = nn.Sequential(
                nn.Linear(frame_size, cfg.encoder_width), _activation(cfg.activation))
            width = k * cfg.encoder_width
        else:
            self.frame_encoder = None
            width = k * frame_size
        if cfg.pre_fc:
            self.pre_fc: nn.Module = nn.Sequential(nn.Linear(width, cfg.pre_fc), _activation(cfg.activation))
            width = cfg.pre_fc
        else:
            self.pre_fc = nn.Identity()
        layer_norm = cfg.norm == "layer"
        self.in_norm: nn.Module = nn.LayerNorm(width) if layer_norm else nn.Identity()
        self.lstm = nn.LSTM(width, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.out_norm: nn.Module = nn.LayerNorm(cfg.hidden) if layer_norm else nn.Identity()
        fc_width = cfg.fc_width or cfg.hidden
        head: list[nn.Module] = []
        width = cfg.hidden + (width if cfg.skip else 0)
        for _ in range(cfg.fc_layers - 1):
            head += [nn.Linear(width, fc_width), _activation(cfg.activation)]
            width = fc_width
        # with a deep filter the head's last layer gives the mask's logits, one per bin
        head.append(nn.Linear(width, spec.n_bins if cfg.deep_filter else spec.output_size))
        self.head = nn.Sequential(*head)
        if cfg.deep_filter:
            self.df_head: nn.Linear | None = nn.Linear(width, 2 * k * cfg.deep_filter)
            nn.init.zeros_(self.df_head.weight)
            nn.init.zeros_(self.df_head.bias)
        else:
            self.df_head = None

    # ------------------------------------------------------------- state
    def initial_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero ``(h, c)``, each ``(layers, batch, hidden)`` float32."""
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        dev = device if device is not None else next(self.parameters()).device
        return torch.zeros(shape, device=dev), torch.zeros(shape, device=dev)

    # ------------------------------------------------------------- forward
    def _encode(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        k, f = self.spec.context, self.spec.feature_size
        if self.frame_encoder is None:
            frames = self.frame_transform(x.reshape(b, t, k, f))
            return frames.reshape(b, t, -1)
        # The distinct frames of a consistent awareness stack: row 0's K frames,
        # then the newest frame of every later row: (B, T + K - 1, F).
        distinct = torch.cat([x[:, 0].reshape(b, k, f), x[:, 1:, (k - 1) * f :]], dim=1)
        enc = self.frame_encoder(self.frame_transform(distinct))  # (B, T + K - 1, E)
        return torch.cat([enc[:, j : j + t] for j in range(k)], dim=-1)  # (B, T, K * E)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if x.dim() != 3 or x.shape[-1] != self.spec.input_size:
            raise ValueError(f"expected input (batch, frames, {self.spec.input_size}), got {tuple(x.shape)}")
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        z = self.in_norm(self.pre_fc(self._encode(x)))
        r, (h, c) = self.lstm(z, state)
        r = self.out_norm(r)
        inp = torch.cat([z, r], dim=-1) if self.cfg.skip else r
        if self.df_head is not None:
            hidden = self.head[:-1](inp)
            mask = torch.sigmoid(self.head[-1](hidden))
            coef = torch.tanh(self.cfg.deep_filter_gain * self.df_head(hidden))
            return self._deep_filtered(mask, coef, x), (h, c)
        y = self.head(inp)
        if self.spec.output == "ratio_mask":
            y = torch.sigmoid(y)
        elif self.spec.output == "complex_mask":
            y = self.cfg.mask_bound * torch.tanh(y)
        return y, (h, c)

    def _deep_filtered(self, mask: Tensor, coef: Tensor, x: Tensor) -> Tensor:
        return deep_filtered(self.spec, self.cfg.deep_filter, mask, coef, x)

    # ------------------------------------------------------------- outputs
    def centre_features(self, x: Tensor) -> Tensor:
        """The centre frame's real+imag features ``(..., 2 * n_bins)`` from contexts ``(..., input_size)``."""
        return centre_features(self.spec, x)

    def vocal_spectrum(self, y: Tensor, x: Tensor) -> Tensor:
        """Real+imag vocal spectrum ``(..., 2 * n_bins)`` from output ``y`` and the input contexts ``x``.

        This is what the engine does after the network: a spectrum passes
        through; a mask multiplies the (uncompressed) centre frame.
        """
        n = self.spec.n_bins
        if self.spec.output == "spectrum":
            return y
        mix = self.centre_features(x)
        mr, mi = mix[..., :n], mix[..., n:]
        if self.spec.output == "ratio_mask":
            return torch.cat([mr * y, mi * y], dim=-1)
        gr, gi = y[..., :n], y[..., n:]
        return torch.cat([mr * gr - mi * gi, mr * gi + mi * gr], dim=-1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(spec: FrameSpec, cfg: ModelConfig) -> IsolatorNet:
    """A fresh :class:`IsolatorNet` (PyTorch's default init) for ``spec`` and ``cfg``; for the configuration
    of another architecture, that architecture's network."""
    if not isinstance(cfg, ModelConfig):
        return architecture(architecture_of(cfg)).build(spec, cfg)
    if cfg.bands and spec.output == "spectrum":
        # Band pooling drops the phase; a spectrum output would have to invent it.
        raise ModelConfigError("bands > 0 needs a mask output (ratio_mask or complex_mask), not 'spectrum'")
    if cfg.deep_filter:
        if spec.output != "spectrum":
            raise ModelConfigError(f"deep_filter needs output 'spectrum' (the network outputs the filtered "
                                   f"vocal spectrum), not {spec.output!r}")
        if cfg.deep_filter > spec.n_bins:
            raise ModelConfigError(f"deep_filter {cfg.deep_filter} is more than the {spec.n_bins} bins")
    return IsolatorNet(spec, cfg)


def build_named(name: str) -> IsolatorNet:
    """``build_model(*get_config(name))``."""
    return build_model(*get_config(name))


class TorchSequence:
    """A network as :class:`deepiso.realtime.separator.Separator` runs a model.

    PyTorch on the calling thread's settings, no gradients, the LSTM state
    carried from one call to the next until :meth:`reset`.
    """

    def __init__(self, net: IsolatorNet) -> None:
        self.net = net.eval()
        self.spec = net.spec
        self.state: State | None = None

    def reset(self) -> None:
        self.state = None

    def run_sequence(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            y, self.state = self.net(torch.from_numpy(np.ascontiguousarray(x, np.float32)), self.state)
        return y.numpy()


register_architecture(Architecture(ModelConfig.architecture, ModelConfig, IsolatorNet, build_model))

# Other architectures register themselves on import; importing them here makes every configuration
# known wherever this module is (they import this module, so they come last).
from . import bandfilter as _bandfilter  # noqa: E402, F401
