"""Put exported models into the package (``realtime/models/``) and build the shipped ``tiny-test`` model.

Shipped models are found by name (``load_model("tiny-test")``) and checked
on every load against the sha256 that ``realtime/models/registry.json``
records beside them. Rebuild the tiny test model (bit-identical for the same
PyTorch and onnxruntime versions, fixed seed)::

    python -m deepiso.export.ship tiny-test

Ship an exported model under a name (copies ``model.onnx`` and
``model.seq.onnx`` and records their sha256), keeping the release's fp32
weights in the repository's ``releases/`` folder, where a fresh clone finds
them to train on from (``optim.init_from: releases/NAME-VERSION.fp32.onnx``;
:mod:`deepiso.train.onnx_import` reads an fp32 file back bit for bit)::

    python -m deepiso.export.ship add model.int8.onnx --name default --weights model.onnx

An fp32 model is its own weights; an int8 one needs ``--weights``: the fp32
export of the same checkpoint, which is checked against its card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from deepiso.realtime.onnx_model import MODELS_DIR, REGISTRY_FILE, ModelError, read_card

from .exporter import ExportError, export_model, sequence_path_for

#: Seed of the tiny test model's random weights.
TINY_SEED = 0
REGISTRY_FORMAT_VERSION = 1
#: Each release's fp32 weights, in the repository (not in the package).
RELEASES_DIR = Path(__file__).resolve().parents[1] / "releases"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def keep_weights(step_path: Path, weights: Path, releases_dir: Path = RELEASES_DIR) -> dict[str, Any]:
    """Copy the fp32 export ``weights`` of the model ``step_path`` to ``releases_dir/NAME-VERSION.fp32.onnx``.

    Refuses (:class:`ModelError`) a file that is not fp32, or not the same checkpoint, name, version,
    frame spec and network as the model. Returns ``{"file", "sha256"}``, the file relative to the
    repository.
    """
    card, kept = read_card(step_path), read_card(weights)
    if kept["precision"] != "fp32":
        raise ModelError(f"{weights}: is {kept['precision']}; the weights kept for a release are the fp32 export")
    for key in ("name", "version", "frame_spec", "model_config"):
        if kept.get(key) != card.get(key):
            raise ModelError(f"{weights}: its {key} differs from {step_path.name}'s; export both from one checkpoint")
    ours, theirs = (c.get("checkpoint", {}).get("sha256") for c in (card, kept))
    if not ours or ours != theirs:
        raise ModelError(f"{weights}: not exported from the checkpoint {step_path.name} was exported from "
                         f"(checkpoint sha256 {str(theirs)[:12]}… vs {str(ours)[:12]}…)")
    releases_dir.mkdir(parents=True, exist_ok=True)
    target = releases_dir / f"{card['name']}-{card['version']}.fp32.onnx"
    if weights.resolve() != target.resolve():
        shutil.copyfile(weights, target)
    try:
        where = str(target.resolve().relative_to(RELEASES_DIR.parent))
    except ValueError:
        where = str(target)
    return {"file": where, "sha256": _sha256(target)}


def register(step_path: Path, name: str, description: str, models_dir: Path = MODELS_DIR,
             weights: Path | None = None, releases_dir: Path | None = RELEASES_DIR) -> dict[str, Any]:
    """Copy a step graph (and its sequence graph) into ``models_dir`` as ``NAME.onnx`` and record their sha256.

    With ``releases_dir`` (``None``: weights that need no keeping, as the tiny test model's, rebuilt from a
    seed) the release's fp32 weights are kept there (:func:`keep_weights`): the model itself when it is
    fp32, else ``weights``, which an int8 model must be given.
    """
    card = read_card(step_path)  # refuses anything the engine would refuse
    if releases_dir is not None:
        if weights is None and card["precision"] != "fp32":
            raise ModelError(f"{step_path}: a {card['precision']} model ships with its release's fp32 weights; "
                             "give the fp32 export of the same checkpoint (--weights)")
        kept = keep_weights(step_path, weights or step_path, releases_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"{name}.onnx"
    seq_source = sequence_path_for(step_path)
    entry: dict[str, Any] = {"file": target.name, "description": description, "model_name": card["name"],
                             "model_version": card["version"], "precision": card["precision"]}
    if step_path.resolve() != target.resolve():
        shutil.copyfile(step_path, target)
    entry["sha256"] = _sha256(target)
    if seq_source.is_file():
        if card.get("sequence_graph", {}).get("file") != seq_source.name:
            raise ModelError(f"{step_path}: its card names sequence graph {card.get('sequence_graph')}, "
                             f"not {seq_source.name}")
        seq_target = models_dir / seq_source.name
        if seq_source.resolve() != seq_target.resolve():
            shutil.copyfile(seq_source, seq_target)
        entry["sequence_file"] = seq_target.name
        entry["sequence_sha256"] = _sha256(seq_target)
    if releases_dir is not None:
        entry["release_weights"] = kept
    registry_file = models_dir / REGISTRY_FILE.name
    registry = {"format_version": REGISTRY_FORMAT_VERSION, "models": {}}
    if registry_file.exists():
        registry = json.loads(registry_file.read_text(encoding="utf-8"))
    registry["models"][name] = entry
    registry["models"] = dict(sorted(registry["models"].items()))
    registry_file.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return entry


def build_tiny_test(models_dir: Path = MODELS_DIR) -> dict[str, Any]:
    """Export the ``tiny-test`` configuration with random weights (seed 0) into ``models_dir``."""
    import torch

    from deepiso.train.model import build_named

    torch.manual_seed(TINY_SEED)
    net = build_named("tiny-test")
    data = {"sources": [], "summary": f"none: random initial weights (torch.manual_seed({TINY_SEED})); "
                                     "for tests of the engine and the CLI only, it does not isolate voice"}
    with tempfile.TemporaryDirectory(prefix="deepiso-tiny-") as tmp:
        # Export under the final file names, so the card names the right sequence file.
        result = export_model(net, Path(tmp) / "tiny-test.onnx", name="tiny-test", version="1.0.0",
                              training_data=data, metrics={})
        return register(result.step_path, "tiny-test",
                        "random weights for tests; rebuild with: python -m deepiso.export.ship tiny-test",
                        models_dir, releases_dir=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepiso.export.ship", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tiny-test", help="rebuild the shipped tiny test model")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p = sub.add_parser("add", help="ship an exported model under a name")
    p.add_argument("model", type=Path, help="exported step graph (NAME.onnx; NAME.seq.onnx beside it is shipped too)")
    p.add_argument("--name", required=True)
    p.add_argument("--description", default="", help="one line for the registry")
    p.add_argument("--weights", type=Path, default=None,
                   help="the fp32 export of the same checkpoint, kept in releases/ (needed for an int8 model)")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p.add_argument("--releases-dir", type=Path, default=RELEASES_DIR, help="where release weights are kept")
    args = parser.parse_args(argv)
    try:
        if args.command == "tiny-test":
            entry = build_tiny_test(args.models_dir)
        else:
            entry = register(args.model, args.name, args.description, args.models_dir, weights=args.weights,
                             releases_dir=args.releases_dir)
    except (ExportError, ModelError) as exc:
        print(f"deepiso: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(entry, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
