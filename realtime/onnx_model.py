"""Load an exported deepiso model and run it frame by frame (engine side, no PyTorch).

A deepiso model is an ONNX file whose ``metadata_props`` hold a *model card*
under the key ``"deepiso.card"`` (JSON). The card carries the frame contract
(:class:`~deepiso.realtime.frame.FrameSpec`), the LSTM state shape, the model's
name and version, a summary of its training data (sources and licenses), its
validation metrics, and the sha256 of its graph including the weights. A file
without a card, with a card this version cannot read, or whose weights no
longer match the card's sha256 is refused with :class:`ModelError`.

The *step graph* (``NAME.onnx``) runs one frame::

    inputs   features (B, input_size)   h (layers, B, hidden)   c (layers, B, hidden)
    outputs  output   (B, output_size)  h_out (layers, B, hidden)  c_out (layers, B, hidden)

An optional *sequence graph* (``NAME.seq.onnx``, named in the step card) runs
many frames per call for offline files: ``features`` ``(B, T, input_size)`` →
``output`` ``(B, T, output_size)``, with the same state inputs and outputs.

Shipped models live in ``models/`` beside this module; ``models/registry.json``
records the sha256 of every shipped file, checked on each load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .frame import FrameSpec, FrameSpecError

#: Metadata key of the model card.
CARD_KEY = "deepiso.card"
#: Version of the model card format this deepiso writes and reads; newer ones are refused.
CARD_FORMAT_VERSION = 1
#: Graph input and output names (the same for the step and the sequence graph).
INPUT_NAMES = ("features", "h", "c")
OUTPUT_NAMES = ("output", "h_out", "c_out")
#: Folder of the models shipped inside the package, and the file recording their sha256.
MODELS_DIR = Path(__file__).resolve().parent / "models"
REGISTRY_FILE = MODELS_DIR / "registry.json"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelError(Exception):
    """A model file that cannot be used: missing, not ONNX, not deepiso's, tampered or incompatible."""


# ----------------------------------------------------------------------------
# The ONNX container, read without the onnx package (the engine does not need it)


@dataclass(frozen=True)
class OnnxFile:
    """The parts of an ONNX file deepiso checks before handing it to onnxruntime.

    ``data`` is the whole file; ``graph_sha256`` the sha256 of the serialised
    graph (structure and weights, as stored in the file); ``metadata`` the
    ``metadata_props`` entries.
    """

    data: bytes
    graph_sha256: str
    metadata: dict[str, str]
    ir_version: int


def _varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ModelError(f"{where}: truncated (file ends inside a field)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ModelError(f"{where}: not an ONNX model file (malformed protobuf varint)")


def _fields(buf: bytes, where: str):
    """Yield ``(field_number, wire_type, value)`` of one protobuf message level."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, where)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ModelError(f"{where}: not an ONNX model file (protobuf field number 0)")
        if wire == 0:
            value, pos = _varint(buf, pos, where)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ModelError(f"{where}: truncated (file ends inside a field)")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos, where)
            if pos + size > end:
                raise ModelError(
                    f"{where}: truncated or not an ONNX model file (a field of {size} bytes runs past the end "
                    f"of the {end}-byte file)"
                )
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ModelError(f"{where}: not an ONNX model file (protobuf wire type {wire})")
        yield number, wire, value


def parse_onnx(data: bytes, where: str = "model") -> OnnxFile:
    """Check that ``data`` is a complete ONNX ModelProto and extract what deepiso verifies.

    Raises :class:`ModelError` naming ``where`` for anything else (text, audio,
    a truncated download).
    """
    if not data:
        raise ModelError(f"{where}: empty file, not an ONNX model")
    graph: bytes | None = None
    ir_version: int | None = None
    metadata: dict[str, str] = {}
    for number, wire, value in _fields(data, where):
        if number == 1 and wire == 0:
            ir_version = value
        elif number == 7 and wire == 2:
            if graph is not None:
                raise ModelError(f"{where}: not a valid ONNX model (two graphs)")
            graph = value
        elif number == 14 and wire == 2:
            key = text = None
            for n2, w2, v2 in _fields(value, where):
                if w2 != 2:
                    continue
                if n2 == 1:
                    key = v2
                elif n2 == 2:
                    text = v2
            try:
                metadata[(key or b"").decode("utf-8")] = (text or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise ModelError(f"{where}: metadata is not valid UTF-8; not an ONNX model") from None
    if ir_version is None or graph is None:
        raise ModelError(f"{where}: not an ONNX model file (no {'ir_version' if ir_version is None else 'graph'})")
    return OnnxFile(data=data, graph_sha256=hashlib.sha256(graph).hexdigest(), metadata=metadata,
                    ir_version=ir_version)


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not a model file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file: {exc.strerror or exc}") from None


def read_onnx(path: str | os.PathLike) -> OnnxFile:
    """Read and check an ONNX file; :class:`ModelError` for a missing or unreadable one."""
    path = Path(path)
    return parse_onnx(_read_bytes(path), str(path))


# ----------------------------------------------------------------------------
# The model card


def _require(card: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in card:
        raise ModelError(f"{where}: model card has no {key!r}")
    value = card[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ModelError(f"{where}: model card field {key!r} has the wrong type ({type(value).__name__})")
    return value


def validate_card(card: Any, where: str = "model") -> dict[str, Any]:
    """Check a model card (parsed JSON) and return it; :class:`ModelError` names the problem.

    Required: ``format_version`` (int, not newer than :data:`CARD_FORMAT_VERSION`),
    ``name``, ``version``, ``graph`` (``"step"`` or ``"sequence"``),
    ``frame_spec`` (a valid FrameSpec dict), ``output`` (equal to the spec's
    output kind), ``state`` (``{"layers": int, "hidden": int}``),
    ``training_data`` (``{"sources": [...]}``), ``metrics`` (dict),
    ``weights_sha256`` (hex) and ``deepiso_version``. Other keys are kept.
    """
    if not isinstance(card, dict):
        raise ModelError(f"{where}: model card must be a JSON object, got {type(card).__name__}")
    version = _require(card, "format_version", int, where)
    if version < 1:
        raise ModelError(f"{where}: model card format_version {version} is not valid")
    if version > CARD_FORMAT_VERSION:
        raise ModelError(
            f"{where}: model card format_version {version} is newer than this deepiso understands "
            f"({CARD_FORMAT_VERSION}); upgrade deepiso to use this model"
        )
    for key in ("name", "version", "deepiso_version", "graph", "output", "weights_sha256"):
        _require(card, key, str, where)
    if card["graph"] not in ("step", "sequence"):
        raise ModelError(f"{where}: model card graph {card['graph']!r} is neither 'step' nor 'sequence'")
    if not _SHA256.match(card["weights_sha256"]):
        raise ModelError(f"{where}: model card weights_sha256 is not a sha256 hex digest")
    try:
        spec = FrameSpec.from_dict(_require(card, "frame_spec", dict, where))
    except FrameSpecError as exc:
        raise ModelError(f"{where}: model card frame_spec: {exc}") from None
    if card["output"] != spec.output:
        raise ModelError(f"{where}: model card output {card['output']!r} disagrees with its frame_spec "
                         f"({spec.output!r})")
    state = _require(card, "state", dict, where)
    for key in ("layers", "hidden"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{where}: model card state.{key} must be a positive integer, got {value!r}")
    data = _require(card, "training_data", dict, where)
    if not isinstance(data.get("sources"), list):
        raise ModelError(f"{where}: model card training_data has no 'sources' list")
    _require(card, "metrics", dict, where)
    return card


def card_from_onnx(onnx_file: OnnxFile, where: str = "model") -> dict[str, Any]:
    """The validated card of a parsed file, with its weights checked against ``weights_sha256``."""
    text = onnx_file.metadata.get(CARD_KEY)
    if text is None:
        raise ModelError(f"{where}: not a deepiso model (no {CARD_KEY!r} model card in its metadata)")
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{where}: model card is not valid JSON: {exc}") from None
    card = validate_card(card, where)
    if card["weights_sha256"] != onnx_file.graph_sha256:
        raise ModelError(
            f"{where}: weights do not match the model card (sha256 {onnx_file.graph_sha256[:16]}…, card says "
            f"{card['weights_sha256'][:16]}…): the file was modified after export"
        )
    return card


def read_card(path_or_name: str | os.PathLike) -> dict[str, Any]:
    """The validated model card of a model file or shipped model name (no session is created)."""
    path = resolve_model(path_or_name)
    return card_from_onnx(_read_model_file(path), str(path))


# ----------------------------------------------------------------------------
# Shipped models


def shipped_models() -> dict[str, dict[str, Any]]:
    """Registry of models shipped in the package: ``{name: {"file", "sha256", ...}}``."""
    if not REGISTRY_FILE.exists():
        return {}
    try:
        registry = json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{REGISTRY_FILE}: unreadable model registry: {exc}") from None
    models = registry.get("models") if isinstance(registry, dict) else None
    if not isinstance(models, dict):
        raise ModelError(f"{REGISTRY_FILE}: model registry has no 'models' table")
    return models


def _check_shipped(path: Path, data: bytes) -> None:
    """Compare the bytes of a file inside :data:`MODELS_DIR` with the sha256 the registry records for it."""
    recorded = {}
    for entry in shipped_models().values():
        for file_key, sha_key in (("file", "sha256"), ("sequence_file", "sequence_sha256")):
            if entry.get(file_key):
                recorded[entry[file_key]] = entry.get(sha_key)
    if path.name not in recorded:
        return
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded[path.name]:
        raise ModelError(f"{path}: shipped model file does not match the sha256 in {REGISTRY_FILE.name} "
                         f"({actual[:16]}… vs {str(recorded[path.name])[:16]}…); reinstall deepiso")


def _read_model_file(path: Path) -> OnnxFile:
    """:func:`read_onnx`, plus the registry's sha256 check for files shipped in the package.

    The file is read once, so the bytes checked are the bytes loaded.
    """
    data = _read_bytes(path)
    if path.resolve().parent == MODELS_DIR:
        _check_shipped(path.resolve(), data)
    return parse_onnx(data, str(path))


def resolve_model(path_or_name: str | os.PathLike) -> Path:
    """A model file path for a path or a shipped model name (``"tiny-test"``, ``"default"``)."""
    text = os.fspath(path_or_name)
    looks_like_path = isinstance(path_or_name, Path) or os.sep in text or text.endswith(".onnx")
    if not looks_like_path:
        models = shipped_models()
        if text in models:
            path = MODELS_DIR / str(models[text].get("file", ""))
            if not path.is_file():
                raise ModelError(f"{path}: shipped model {text!r} is missing from the installation; reinstall deepiso")
            return path
        if not Path(text).exists():
            known = ", ".join(sorted(models)) or "none"
            raise ModelError(f"{text!r} is neither a model file nor a shipped model (shipped: {known})")
    return Path(text)


# ----------------------------------------------------------------------------
# Sessions


#: What a streaming session (the step graph, one hop at a time) runs on unless told otherwise.
STREAMING_PROVIDERS = ("CPUExecutionProvider",)


def default_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu is installed (it falls back to CPU without a GPU), else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session(data: bytes, where: str, providers: Sequence[str] | None, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread: a streaming step is a few small matrix products, where a
    # thread pool costs more in wake-ups than it gains, and the audio thread
    # must not compete with other cores' work.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, options, providers=list(providers or default_providers()))
    except Exception as exc:  # onnxruntime raises several unrelated types for bad graphs
        raise ModelError(f"{where}: onnxruntime cannot load the model: {exc}") from None


def _check_io(session: Any, card: dict[str, Any], spec: FrameSpec, where: str, sequence: bool) -> None:
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if set(inputs) != set(INPUT_NAMES) or set(outputs) != set(OUTPUT_NAMES):
        raise ModelError(f"{where}: graph inputs {sorted(inputs)} / outputs {sorted(outputs)} are not deepiso's "
                         f"{list(INPUT_NAMES)} / {list(OUTPUT_NAMES)}")
    layers, hidden = card["state"]["layers"], card["state"]["hidden"]
    rank = 3 if sequence else 2
    expected = {"features": spec.input_size, "output": spec.output_size}
    for name, shape in (("features", inputs["features"]), ("output", outputs["output"])):
        if len(shape) != rank or (isinstance(shape[-1], int) and shape[-1] != expected[name]):
            raise ModelError(f"{where}: graph {name} has shape {shape}, the card's frame contract needs "
                             f"{rank} axes ending in {expected[name]}")
    for name, shape in (("h", inputs["h"]), ("c", inputs["c"]), ("h_out", outputs["h_out"]),
                        ("c_out", outputs["c_out"])):
        if len(shape) != 3 or (isinstance(shape[0], int) and shape[0] != layers) or (
                isinstance(shape[2], int) and shape[2] != hidden):
            raise ModelError(f"{where}: graph state {name} has shape {shape}, the card says ({layers}, B, {hidden})")


class StepModel:
    """A loaded model that runs one frame per :meth:`step`, carrying the LSTM state.

    All buffers are allocated once here: the input ``(batch, input_size)``, the
    output ``(batch, output_size)`` and two ``h``/``c`` pairs
    ``(layers, batch, hidden)`` that swap roles each step (one is read while
    the other is written), each bound to onnxruntime once through two IOBinding
    objects. A step copies the features in, runs, and returns the output buffer
    (owned by the model, valid until the next step or reset); it allocates no
    arrays.

    Attributes: ``spec`` (FrameSpec), ``card`` (dict), ``batch`` (int, e.g. one
    per audio channel), ``layers``, ``hidden``, ``path``, ``providers`` (those
    onnxruntime actually uses), ``session`` (the step graph's InferenceSession).
    """

    def __init__(self, path: Path, onnx_file: OnnxFile, card: dict[str, Any], *, batch: int = 1,
                 providers: Sequence[str] | None = None, threads: int = 1) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        where = str(path)
        if card["graph"] != "step":
            raise ModelError(f"{where}: is a {card['graph']} graph; load the step graph (NAME.onnx) instead")
        self.path = path
        self.card = card
        self.spec = FrameSpec.from_dict(card["frame_spec"])
        self.batch = batch
        self.layers = int(card["state"]["layers"])
        self.hidden = int(card["state"]["hidden"])
        # A step is a few small matrix products on buffers in host memory, once per hop inside the
        # audio callback: a GPU provider would add a transfer and a launch to each. Streaming runs on
        # the CPU unless a caller names providers; CUDA is for files and batches (the sequence graph).
        providers = list(providers) if providers else list(STREAMING_PROVIDERS)
        self._providers_requested = providers
        self._threads = threads
        self.session = _session(onnx_file.data, where, providers, threads)
        _check_io(self.session, card, self.spec, where, sequence=False)
        self.providers = self.session.get_providers()

        spec = self.spec
        self._x = np.zeros((batch, spec.input_size), np.float32)   # features in
        self._y = np.zeros((batch, spec.output_size), np.float32)  # output frame
        state_shape = (self.layers, batch, self.hidden)
        self._h = [np.zeros(state_shape, np.float32) for _ in range(2)]  # h[k]: read at even/odd steps
        self._c = [np.zeros(state_shape, np.float32) for _ in range(2)]
        self._cur = 0  # index of the pair holding the current state
        self._bindings = [self._bind(k) for k in range(2)]
        self._sequence: Any = None

    def _bind(self, k: int) -> Any:
        """An IOBinding that reads state pair ``k`` and writes pair ``1 - k``."""
        binding = self.session.io_binding()

        def bind(fn, name: str, array: np.ndarray) -> None:
            fn(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)

        bind(binding.bind_input, "features", self._x)
        bind(binding.bind_input, "h", self._h[k])
        bind(binding.bind_input, "c", self._c[k])
        bind(binding.bind_output, "output", self._y)
        bind(binding.bind_output, "h_out", self._h[1 - k])
        bind(binding.bind_output, "c_out", self._c[1 - k])
        return binding

    # ----------------------------------------------------------------- state
    @property
    def h(self) -> np.ndarray:
        """Current hidden state ``(layers, batch, hidden)`` (a view of the model's buffer)."""
        return self._h[self._cur]

    @property
    def c(self) -> np.ndarray:
        """Current cell state ``(layers, batch, hidden)`` (a view of the model's buffer)."""
        return self._c[self._cur]

    def reset(self) -> None:
        """Zero the LSTM state (start of a new stream); allocates nothing."""
        for array in (*self._h, *self._c):
            array.fill(0.0)
        self._cur = 0

    # ------------------------------------------------------------------ run
    def step(self, features: np.ndarray) -> np.ndarray:
        """Run one frame.

        ``features``: float32 ``(batch, input_size)``, or any C-contiguous array
        of that size such as the awareness ring ``(batch, context, 2*bins)``.
        Returns the model's output buffer ``(batch, output_size)`` float32,
        owned by the model and overwritten by the next step.
        """
        if features.size != self._x.size:
            raise ValueError(f"features have {features.size} values, the model needs "
                             f"batch {self.batch} x input_size {self.spec.input_size}")
        np.copyto(self._x, features.reshape(self._x.shape))
        self.session.run_with_iobinding(self._bindings[self._cur])
        self._cur = 1 - self._cur
        return self._y

    @property
    def has_sequence_graph(self) -> bool:
        """True when the card names a sequence graph and its file is present beside this one."""
        entry = self.card.get("sequence_graph")
        return isinstance(entry, dict) and (self.path.parent / str(entry.get("file", ""))).is_file()

    def _load_sequence(self) -> Any:
        entry = self.card["sequence_graph"]
        path = self.path.parent / str(entry["file"])
        where = str(path)
        onnx_file = _read_model_file(path)
        card = card_from_onnx(onnx_file, where)
        if card["graph"] != "sequence":
            raise ModelError(f"{where}: is a {card['graph']} graph, the step card names it as its sequence graph")
        if card["weights_sha256"] != entry.get("weights_sha256"):
            raise ModelError(f"{where}: sequence graph does not belong to {self.path.name} (sha256 differs from "
                             "the one its card records)")
        for key in ("name", "version", "frame_spec", "state"):
            if card[key] != self.card[key]:
                raise ModelError(f"{where}: sequence graph's {key} differs from {self.path.name}'s")
        session = _session(onnx_file.data, where, self._providers_requested, self._threads)
        _check_io(session, card, self.spec, where, sequence=True)
        return session

    def run_sequence(self, x: np.ndarray) -> np.ndarray:
        """Run many frames at once, continuing from (and updating) the current state.

        ``x``: float32 ``(batch, T, input_size)``. Returns a new array
        ``(batch, T, output_size)``. Uses the sequence graph when the model has
        one, else steps frame by frame; both give the same result (the
        exporter verifies it).
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[0] != self.batch or x.shape[2] != self.spec.input_size:
            raise ValueError(f"run_sequence needs (batch={self.batch}, T, input_size={self.spec.input_size}), "
                             f"got {x.shape}")
        n_frames = x.shape[1]
        if n_frames == 0:
            return np.zeros((self.batch, 0, self.spec.output_size), np.float32)
        if self.has_sequence_graph:
            if self._sequence is None:
                self._sequence = self._load_sequence()
            y, h, c = self._sequence.run(list(OUTPUT_NAMES), {"features": x, "h": self.h, "c": self.c})
            self.h[...] = h
            self.c[...] = c
            return y
        out = np.empty((self.batch, n_frames, self.spec.output_size), np.float32)
        for t in range(n_frames):
            out[:, t] = self.step(x[:, t])
        return out

    def __repr__(self) -> str:
        return (f"StepModel({self.card['name']!r} {self.card['version']}, {self.card['output']}, "
                f"batch={self.batch}, providers={self.providers})")


def load_model(path_or_name: str | os.PathLike, batch: int = 1, providers: Sequence[str] | None = None,
               threads: int = 1) -> StepModel:
    """Load a deepiso step model from a file or a shipped model name.

    ``batch``: frames per step (one per audio channel). ``providers``:
    onnxruntime execution providers (default: the CPU, :data:`STREAMING_PROVIDERS`).
    ``threads``: onnxruntime intra-op threads (1 for streaming). Raises
    :class:`ModelError` for a missing, foreign, tampered, truncated or
    incompatible file, with the file named in the message.
    """
    path = resolve_model(path_or_name)
    onnx_file = _read_model_file(path)
    card = card_from_onnx(onnx_file, str(path))
    return StepModel(path, onnx_file, card, batch=batch, providers=providers, threads=threads)
