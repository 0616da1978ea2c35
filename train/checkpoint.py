"""Checkpoints: weights plus the plain-JSON configuration that rebuilds the model.

A checkpoint file is a ``torch.save`` of a dict holding only tensors, strings
and numbers, so it loads with ``torch.load(weights_only=True)`` (files are
data, never code)::

    {"format": "deepiso-checkpoint",
     "format_version": 1,
     "meta": "<JSON: frame_spec, model, train_config, metrics, deepiso_version, created>",
     "state_dict": {name: tensor},
     "extra": {...}}            # optional, e.g. optimiser and RNG state to resume

Writes are atomic (temporary file + ``os.replace``), and a ``config.json``
holding the same metadata (minus ``extra``) appears beside the file, so a
person or the exporter can read the configuration without torch.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from deepiso.realtime.atomic import atomic_write_bytes
from deepiso.realtime.frame import FrameSpec, FrameSpecError
from deepiso.realtime.version import __version__

from .model import IsolatorNet, ModelConfig, ModelConfigError, build_model, network_types

FORMAT = "deepiso-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that is missing, not ours, corrupt, or from a newer deepiso."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def checkpoint_meta(model: IsolatorNet, train_config: dict | None = None, metrics: dict | None = None) -> dict:
    """The JSON metadata stored with a model's weights."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "deepiso_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "frame_spec": model.spec.to_dict(),
        "model": model.cfg.to_dict(),
        "parameters": model.num_parameters(),
        "train_config": train_config,
        "metrics": metrics,
    }


def save_checkpoint(path: str | os.PathLike, model: IsolatorNet, *, train_config: dict | None = None,
                    metrics: dict | None = None, extra: dict | None = None,
                    config_json: bool = True) -> Path:
    """Write ``model``'s weights and configuration to ``path`` atomically.

    ``train_config`` and ``metrics`` must be JSON-serialisable; ``extra`` may
    hold tensors, numbers, strings, lists and dicts of them (what
    ``torch.load(weights_only=True)`` accepts), e.g. optimiser state. A
    DDP-wrapped model is unwrapped. Also writes ``config.json`` beside the
    file unless ``config_json`` is False. Returns the path.
    """
    path = Path(path)
    net = model.module if hasattr(model, "module") else model
    if not isinstance(net, network_types()):
        raise TypeError(f"save_checkpoint needs a deepiso network (an IsolatorNet or another registered "
                        f"architecture's), got {type(net).__name__}")
    meta = checkpoint_meta(net, train_config, metrics)
    try:
        meta_text = json.dumps(meta, sort_keys=True)
    except TypeError as exc:
        raise CheckpointError(path, f"train_config/metrics are not JSON-serialisable ({exc})") from None
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    payload: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta_text,
                               "state_dict": state}
    if extra is not None:
        payload["extra"] = extra
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    if config_json:
        atomic_write_bytes(path.with_name("config.json"), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw, validated payload of a checkpoint (``meta`` already parsed into a dict).

    Raises :class:`CheckpointError` for a missing, foreign, corrupt or newer file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "checkpoint file is empty")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise CheckpointError(path, "not a deepiso checkpoint (not a PyTorch zip archive)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(path, "not a deepiso checkpoint: it holds objects other than plain data, "
                                    "and checkpoints are loaded as data, never as code") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"corrupt or truncated checkpoint ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, "not a deepiso checkpoint (no 'deepiso-checkpoint' format marker)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(path, f"checkpoint format_version {version!r} is not valid")
    if version > FORMAT_VERSION:
        raise CheckpointError(path, f"checkpoint format_version {version} is newer than this deepiso "
                                    f"understands ({FORMAT_VERSION}); upgrade deepiso")
    try:
        meta = json.loads(payload["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path, f"checkpoint metadata is missing or not JSON ({exc})") from None
    if not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(path, "checkpoint holds no state_dict")
    payload["meta"] = meta
    return payload


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[IsolatorNet, dict]:
    """Rebuild the model from ``path`` alone: ``(model in eval mode, info)``.

    ``info`` is the metadata dict (``frame_spec``, ``model``, ``train_config``,
    ``metrics``, ``deepiso_version``, ...) plus ``extra`` when the file has it.
    """
    payload = read_checkpoint(path)
    meta = payload["meta"]
    try:
        spec = FrameSpec.from_dict(meta["frame_spec"])
        cfg = ModelConfig.from_dict(meta["model"])
        model = build_model(spec, cfg)
    except KeyError as exc:
        raise CheckpointError(path, f"checkpoint metadata lacks {exc}") from None
    except (FrameSpecError, ModelConfigError, TypeError) as exc:
        raise CheckpointError(path, f"checkpoint configuration is not usable: {exc}") from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(path, f"weights do not match the stored configuration ({' '.join(first[:3])})") from None
    model.to(map_location)
    model.eval()
    info = dict(meta)
    if "extra" in payload:
        info["extra"] = payload["extra"]
    return model, info
