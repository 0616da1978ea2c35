"""``python -m deepiso.train`` (also ``deepiso train`` / ``deepiso prepare-data``).

    python -m deepiso.train CONFIG.{json,yaml} [--set section.key=value ...] [--out DIR] [--restart]
    python -m deepiso.train prepare {musdb,medleydb} SOURCE OUT [--wav] [--metadata DIR]
    python -m deepiso.train write-config FILE [--model NAME]
    python -m deepiso.train models
    python -m deepiso.train average OUT.pt IN... [--weights W...]

Launch on several processes with ``torchrun --nproc-per-node N -m deepiso.train CONFIG``.
"""

from __future__ import annotations

import argparse
import json
import sys

from deepiso.realtime.audio_io import AudioFileError
from deepiso.realtime.frame import FrameSpecError

from .checkpoint import CheckpointError
from .config import ConfigError, TrainConfig
from .datasets import DatasetError
from .model import CONFIGS, ModelConfigError, build_model


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepiso train", description="Train the voice isolation model.")
    p.add_argument("config", help="training configuration (JSON or YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change one field, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--out", help="output folder (overrides out_dir)")
    p.add_argument("--restart", action="store_true", help="ignore out_dir/last.pt and start afresh")
    p.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)
    return p


def _prepare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepiso prepare-data",
                                description="Write MUSDB18 or MedleyDB as one folder per track "
                                            "(mixture.wav + vocals.wav).")
    p.add_argument("dataset", choices=["musdb", "medleydb"])
    p.add_argument("source", help="dataset root (MUSDB18: holds train/ and test/; MedleyDB: the audio folder)")
    p.add_argument("out", help="output folder")
    p.add_argument("--wav", action="store_true", help="MUSDB18 in the decoded WAV layout")
    p.add_argument("--subsets", nargs="+", default=["train", "test"], help="MUSDB18 subsets")
    p.add_argument("--metadata", help="MedleyDB metadata folder (*_METADATA.yaml)")
    p.add_argument("--overwrite", action="store_true")
    return p


def _run_train(argv: list[str]) -> int:
    args = _train_parser().parse_args(argv)
    cfg = TrainConfig.load(args.config).with_overrides(args.overrides)
    if args.out:
        cfg.out_dir = args.out
    from .loop import train

    summary = train(cfg, restart=args.restart, stop_after_steps=args.stop_after_steps)
    if summary["rank"] == 0:
        best = summary["best"]
        print(json.dumps({"out_dir": summary["out_dir"], "best": best, "steps": summary["steps"],
                          "position": summary["position"]}))
    return 0


def _run_prepare(argv: list[str]) -> int:
    args = _prepare_parser().parse_args(argv)
    from .prepare import prepare_medleydb, prepare_musdb

    def say(name: str) -> None:
        print(f"wrote {name}", file=sys.stderr)

    if args.dataset == "musdb":
        n = prepare_musdb(args.source, args.out, is_wav=args.wav, subsets=args.subsets, overwrite=args.overwrite,
                          progress=say)
    else:
        n = prepare_medleydb(args.source, args.out, metadata=args.metadata, overwrite=args.overwrite, progress=say)
    print(f"{n} track(s) written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "prepare":
            return _run_prepare(argv[1:])
        if argv and argv[0] == "average":
            from .average import main as average_main

            return average_main(argv[1:])
        if argv and argv[0] == "models":
            width = max(len(name) for name in CONFIGS)
            for name, (spec, mcfg) in CONFIGS.items():
                net = build_model(spec, mcfg)
                arch = getattr(mcfg, "architecture", "isolator")
                print(f"{name:{width}s}  {arch:10s} {net.num_parameters():>9,d} parameters  {spec.to_json()}")
            return 0
        if argv and argv[0] == "write-config":
            p = argparse.ArgumentParser(prog="deepiso train write-config")
            p.add_argument("file")
            p.add_argument("--model", default="default", choices=sorted(CONFIGS))
            a = p.parse_args(argv[1:])
            TrainConfig(model=a.model, out_dir=f"runs/{a.model}").save(a.file)
            print(f"wrote {a.file}")
            return 0
        return _run_train(argv)
    except (ConfigError, DatasetError, CheckpointError, AudioFileError, FrameSpecError, ModelConfigError) as exc:
        print(f"deepiso train: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
