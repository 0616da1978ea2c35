"""The ``deepiso`` command.

Each sub-command lives with the part of the data path it drives; this module
only parses arguments and imports the part lazily, so ``deepiso live`` never
imports PyTorch and a missing optional dependency is reported, not raised.
"""

from __future__ import annotations

import argparse
import sys

from .frame import FrameSpec, FrameSpecError
from .version import __version__


def _cmd_latency(args: argparse.Namespace) -> int:
    spec = FrameSpec(sample_rate=args.sample_rate, n_fft=args.n_fft, hop=args.hop, window=args.window,
                     past_frames=args.past, future_frames=args.future, synthesis_length=args.synthesis_length)
    block = args.blocksize
    samples = spec.latency_samples(block)
    print(f"frame spec: {spec.to_json()}")
    print(f"algorithmic latency with blocks of {block or 'any size'}: "
          f"{samples} samples = {spec.latency_ms(block):.2f} ms")
    return 0


def _cmd_corpus(args: argparse.Namespace) -> int:
    # Lazy: the corpus recipe lives in the training package and needs ffmpeg/dpkg, not the engine.
    from deepiso.train import corpus

    try:
        return corpus.run_cli(args)
    except corpus.CorpusError as exc:
        print(f"deepiso corpus: {exc}", file=sys.stderr)
        return 2


def _cmd_export(args: argparse.Namespace) -> int:
    # Lazy: exporting needs PyTorch and onnx (the train extra); the engine does not.
    import json

    try:
        from deepiso.export import ExportError, export_checkpoint
    except ImportError as exc:
        print(f"deepiso export: needs PyTorch and onnx (pip install 'deepiso[train]'): {exc}", file=sys.stderr)
        return 2
    training_data = None
    if args.training_data:
        try:
            with open(args.training_data, encoding="utf-8") as f:
                training_data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            print(f"deepiso export: {args.training_data}: cannot read training data summary: {exc}", file=sys.stderr)
            return 2
    try:
        result = export_checkpoint(args.checkpoint, args.output, name=args.name, version=args.version,
                                   int8=args.int8, mixtures=args.mixtures, training_data=training_data)
    except (ExportError, ValueError) as exc:
        print(f"deepiso export: {exc}", file=sys.stderr)
        return 1
    card = result.card
    check = card["verification"]
    print(f"wrote {result.step_path} (step graph) and {result.sequence_path} (sequence graph)")
    print(f"model {card['name']} {card['version']}, {card['precision']}, output {card['output']}, "
          f"weights sha256 {card['weights_sha256']}")
    print(f"verified over {check['frames']} frames: onnxruntime vs PyTorch max |diff| "
          f"{check['step_vs_pytorch_max_abs_diff']:.2g}, sequence vs step {check['sequence_vs_step_max_abs_diff']:.2g}")
    if card["quantization"]:
        q = card["quantization"]
        if q["kind"] == "si_sdr":
            print(f"int8: SI-SDR {q['si_sdr']['int8_db']:.2f} dB vs fp32 {q['si_sdr']['fp32_db']:.2f} dB "
                  f"({q['si_sdr']['delta_db']:+.2f} dB over {q['si_sdr']['tracks']} tracks)")
        else:
            print(f"int8: output differs from fp32 by {q['synthetic']['relative_rms_error']:.2g} relative RMS "
                  "on a synthetic signal (no mixtures given: --mixtures DIR measures SI-SDR)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    # Lazy: training needs PyTorch (the train extra); the engine does not.
    try:
        from deepiso.train.__main__ import main as train_main
    except ImportError as exc:
        print(f"deepiso {args.command}: needs PyTorch (pip install 'deepiso[train]'): {exc}", file=sys.stderr)
        return 2
    return train_main((["prepare"] if args.command == "prepare-data" else []) + args.args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepiso", description="Live voice isolation.")
    parser.add_argument("--version", action="version", version=f"deepiso {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("latency", help="algorithmic latency of a frame configuration")
    p.add_argument("--sample-rate", type=int, default=44_100)
    p.add_argument("--n-fft", type=int, default=1024)
    p.add_argument("--hop", type=int, default=256)
    p.add_argument("--window", default="hann")
    p.add_argument("--past", type=int, default=4, help="awareness: past frames")
    p.add_argument("--future", type=int, default=0, help="awareness: future (look-ahead) frames")
    p.add_argument("--synthesis-length", type=int, default=0,
                   help="span of the synthesis window; shorter than --n-fft is a low-delay synthesis "
                        "(default 0: n-fft)")
    p.add_argument("--blocksize", type=int, default=None, help="device block size (default: any)")
    p.set_defaults(func=_cmd_latency)

    p = sub.add_parser("corpus", help="build or inspect the training corpus (allowed sources only)")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    c = csub.add_parser("build", help="fetch, decode and chunk every source into DIR (resumable)")
    c.add_argument("dir", help="corpus folder (FLAC files, manifest.jsonl)")
    c.add_argument("--only", choices=("voice", "background"), default=None)
    c.add_argument("--sources", default=None, help="comma-separated source names (see: deepiso corpus sources)")
    c.add_argument("--sample-rate", type=int, default=44_100)
    c.add_argument("--jobs", type=int, default=1, help="parallel decoding processes")
    c.add_argument("--cache-dir", default=None, help="where .deb files are kept and unpacked (default DIR/.cache)")
    c.add_argument("--no-download", action="store_true", help="use only .deb files already in the cache")
    c = csub.add_parser("info", help="minutes per source, category and split of a built corpus")
    c.add_argument("dir")
    csub.add_parser("sources", help="list the allowed sources and their licenses")
    c = csub.add_parser("card", help="the training-data summary for a model card (JSON, for deepiso export)")
    c.add_argument("dir", help="corpus folder")
    c.add_argument("-o", "--output", default=None, help="write to this file (default: print)")
    p.set_defaults(func=_cmd_corpus)

    p = sub.add_parser("export", help="export a training checkpoint to verified ONNX with a model card")
    p.add_argument("checkpoint", help="training checkpoint (.pt)")
    p.add_argument("-o", "--output", required=True,
                   help="step graph file (.onnx); the sequence graph is written beside it as NAME.seq.onnx")
    p.add_argument("--int8", action="store_true", help="dynamic int8 quantisation, its measured cost in the card")
    p.add_argument("--name", default=None, help="model name (default: the checkpoint's configuration name)")
    p.add_argument("--version", default=None, help="model version (default 1.0.0)")
    p.add_argument("--mixtures", default=None,
                   help="folder of track folders with mixture.wav and vocals.wav: int8 quality in SI-SDR")
    p.add_argument("--training-data", default=None,
                   help='JSON file {"sources": [{"name", "license"}], "summary"} (default: from the checkpoint)')
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("train", help="train a model: deepiso train CONFIG.{json,yaml} [--set k=v] [--restart]; "
                                     "average weights: deepiso train average OUT.pt IN...",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("prepare-data", help="write MUSDB18/MedleyDB as track folders (mixture.wav, vocals.wav)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_train)

    from .live import add_parsers as _add_live_parsers  # argparse only; handlers import lazily

    _add_live_parsers(sub)
    from .demo import add_parser as _add_demo_parser

    _add_demo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("train", "prepare-data"):
        # the training package parses its own options (argparse's REMAINDER would swallow --help)
        return _cmd_train(argparse.Namespace(command=argv[0], args=argv[1:]))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FrameSpecError as exc:
        print(f"deepiso: invalid frame configuration: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
