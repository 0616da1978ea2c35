"""Put exported models into the package (``realtime/models/``) and build the shipped ``tiny-test`` model.

Shipped models are found by name (``load_model("tiny-test")``) and checked
on every load against the sha256 that ``realtime/models/registry.json``
records beside them. Rebuild the tiny test model (bit-identical for the same
PyTorch and onnxruntime versions, fixed seed)::

    python -m deepiso.export.ship tiny-test

Ship an exported model under a name (copies ``model.onnx`` and
``model.seq.onnx`` and records their sha256)::

    python -m deepiso.export.ship add model.onnx --name default
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register(step_path: Path, name: str, description: str, models_dir: Path = MODELS_DIR) -> dict[str, Any]:
    """Copy a step graph (and its sequence graph) into ``models_dir`` as ``NAME.onnx`` and record their sha256."""
    card = read_card(step_path)  # refuses anything the engine would refuse
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
                        models_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepiso.export.ship", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tiny-test", help="rebuild the shipped tiny test model")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p = sub.add_parser("add", help="ship an exported model under a name")
    p.add_argument("model", type=Path, help="exported step graph (NAME.onnx; NAME.seq.onnx beside it is shipped too)")
    p.add_argument("--name", required=True)
    p.add_argument("--description", default="")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)
    try:
        if args.command == "tiny-test":
            entry = build_tiny_test(args.models_dir)
        else:
            entry = register(args.model, args.name, args.description, args.models_dir)
    except (ExportError, ModelError) as exc:
        print(f"deepiso: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(entry, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
