"""The frame contract: the one object shared by training, export and the engine.

A :class:`FrameSpec` says how audio becomes model input and how model output
becomes audio again:

* ``sample_rate``, ``n_fft``, ``hop`` and ``window`` define the STFT;
* ``past_frames`` / ``future_frames`` define *awareness*: the model sees the
  features of ``past_frames`` earlier frames, the current frame and
  ``future_frames`` later frames, concatenated oldest first;
* ``synthesis_length`` (0: ``n_fft``) is the span of the synthesis window.
  The full span is the usual weighted overlap-add, and its delay is
  ``n_fft - hop``. A shorter one is a *low-delay* synthesis: the window only
  covers the newest ``synthesis_length`` samples of each frame, and the
  delay drops to ``synthesis_length - hop``. The analysis window and with it
  the frequency resolution the model sees stay the same (see
  :func:`deepiso.realtime.windows.synthesis_window`);
* ``features`` is the per-frame feature layout; ``"ri"`` is the report's
  doubling: the real parts of all ``n_fft // 2 + 1`` bins followed by their
  imaginary parts;
* ``output`` is what the model produces per frame: ``"spectrum"`` (real+imag
  of the vocal spectrum, laid out like the features), ``"ratio_mask"`` (one
  real gain per bin, applied to the mixture) or ``"complex_mask"`` (real+imag
  of a complex gain per bin).

It is written by training into the checkpoint, carried by the exporter into
the ONNX metadata and read by the engine, always as JSON via
:meth:`FrameSpec.to_json` / :meth:`FrameSpec.from_json`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from .windows import low_delay_floor, overlap_floor

#: Version of the serialised form. A reader refuses a newer one. Version 2
#: added ``synthesis_length``; a spec with the full synthesis is still written
#: as version 1 (without the field), so the deepiso releases before it read it.
FORMAT_VERSION = 2

WINDOWS = ("hann", "sqrt_hann", "hamming", "blackman", "rect")
FEATURES = ("ri",)
OUTPUTS = ("spectrum", "ratio_mask", "complex_mask")

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000


class FrameSpecError(ValueError):
    """A frame contract that cannot work, or a serialised one we cannot read."""


@dataclass(frozen=True)
class FrameSpec:
    sample_rate: int = 44_100
    n_fft: int = 1024
    hop: int = 256
    window: str = "hann"
    past_frames: int = 4
    future_frames: int = 0
    features: str = "ri"
    output: str = "spectrum"
    synthesis_length: int = 0

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`FrameSpecError` naming the first impossible setting."""
        for name in ("sample_rate", "n_fft", "hop", "past_frames", "future_frames", "synthesis_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise FrameSpecError(f"{name} must be an integer, got {value!r}")
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise FrameSpecError(
                f"sample_rate {self.sample_rate} Hz is outside "
                f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
            )
        if self.n_fft < 16 or self.n_fft % 2:
            raise FrameSpecError(f"n_fft must be an even number >= 16, got {self.n_fft}")
        if self.hop < 1:
            raise FrameSpecError(f"hop must be >= 1, got {self.hop}")
        if self.hop > self.n_fft:
            raise FrameSpecError(
                f"hop {self.hop} is larger than n_fft {self.n_fft}: samples between "
                "frames would never be analysed"
            )
        if self.window not in WINDOWS:
            raise FrameSpecError(f"unknown window {self.window!r}; choose one of {WINDOWS}")
        if self.features not in FEATURES:
            raise FrameSpecError(f"unknown feature layout {self.features!r}; choose one of {FEATURES}")
        if self.output not in OUTPUTS:
            raise FrameSpecError(f"unknown output kind {self.output!r}; choose one of {OUTPUTS}")
        if self.past_frames < 0 or self.future_frames < 0:
            raise FrameSpecError(
                f"past_frames and future_frames must be >= 0, got "
                f"{self.past_frames} and {self.future_frames}"
            )
        if self.context > 64:
            raise FrameSpecError(f"awareness of {self.context} frames is more than the 64 supported")
        # Perfect reconstruction needs the squared analysis window, shifted by
        # every multiple of hop, to cover each sample (weighted overlap-add).
        floor = overlap_floor(self.window, self.n_fft, self.hop)
        if floor < 1e-3:
            raise FrameSpecError(
                f"window {self.window!r} with n_fft {self.n_fft} and hop {self.hop} does not "
                f"overlap enough to reconstruct the signal (minimum window energy {floor:.2g}); "
                "use a smaller hop"
            )
        if self.synthesis_length:
            if not self.hop <= self.synthesis_length < self.n_fft:
                raise FrameSpecError(
                    f"synthesis_length must be 0 (the full n_fft) or from hop {self.hop} to below "
                    f"n_fft {self.n_fft}, got {self.synthesis_length}")
            floor = low_delay_floor(self.window, self.n_fft, self.hop, self.synthesis_length)
            if floor < 1e-3:
                raise FrameSpecError(
                    f"a {self.window!r} synthesis window of {self.synthesis_length} samples at hop "
                    f"{self.hop} does not overlap enough to reconstruct the signal (minimum overlap "
                    f"{floor:.2g}); make synthesis_length a larger multiple of the hop")

    # ------------------------------------------------------------- derived
    @property
    def n_bins(self) -> int:
        """Frequency bins per frame: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def feature_size(self) -> int:
        """Values per frame of features (real+imag: ``2 * n_bins``)."""
        return 2 * self.n_bins

    @property
    def context(self) -> int:
        """Frames the model sees per step: past + current + future."""
        return self.past_frames + 1 + self.future_frames

    @property
    def input_size(self) -> int:
        """Values per model step: ``context * feature_size``."""
        return self.context * self.feature_size

    @property
    def output_size(self) -> int:
        """Values the model produces per frame."""
        return self.n_bins if self.output == "ratio_mask" else 2 * self.n_bins

    @property
    def causal(self) -> bool:
        return self.future_frames == 0

    @property
    def synthesis_span(self) -> int:
        """Samples the synthesis window covers: ``synthesis_length``, or ``n_fft`` when that is 0."""
        return self.synthesis_length or self.n_fft

    @property
    def synthesis_delay(self) -> int:
        """Samples the overlap-add output trails its input by, blocks and look-ahead aside:
        ``synthesis_span - hop`` (what :func:`~deepiso.realtime.dsp.istft` leaves to
        :func:`~deepiso.realtime.dsp.align`)."""
        return self.synthesis_span - self.hop

    def latency_samples(self, block_size: int | None = None) -> int:
        """Algorithmic latency, in samples at ``sample_rate``.

        With blocks of ``block_size`` samples, a sample waits for the rest of
        its hop (unless blocks end on hop boundaries), for the overlap of the
        synthesis window, and for the look-ahead frames. The exact delay is
        ``synthesis_span - gcd(block_size, hop) + future_frames * hop``
        (``synthesis_span`` is ``n_fft`` unless a low-delay synthesis is
        chosen); ``None`` means blocks of any, varying size (``gcd`` of 1).
        """
        bad = isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
        if block_size is not None and bad:
            raise FrameSpecError(f"block_size must be a positive integer, got {block_size!r}")
        g = 1 if block_size is None else math.gcd(block_size, self.hop)
        return self.synthesis_delay + self.hop - g + self.future_frames * self.hop

    def latency_ms(self, block_size: int | None = None) -> float:
        return 1000.0 * self.latency_samples(block_size) / self.sample_rate

    # ------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["synthesis_length"]:  # the full synthesis: the version-1 form every release reads
            del d["synthesis_length"]
            return {"format_version": 1, **d}
        return {"format_version": FORMAT_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameSpec:
        if not isinstance(data, dict):
            raise FrameSpecError(f"a frame spec must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format_version", None)
        if version is None:
            raise FrameSpecError("frame spec has no format_version")
        if not isinstance(version, int) or version < 1:
            raise FrameSpecError(f"frame spec format_version {version!r} is not valid")
        if version > FORMAT_VERSION:
            raise FrameSpecError(
                f"frame spec format_version {version} is newer than this deepiso "
                f"understands ({FORMAT_VERSION}); upgrade deepiso"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FrameSpecError(f"frame spec has unknown fields: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> FrameSpec:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FrameSpecError(f"frame spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)
