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
                     past_frames=args.past, future_frames=args.future)
    block = args.blocksize
    samples = spec.latency_samples(block)
    print(f"frame spec: {spec.to_json()}")
    print(f"algorithmic latency with blocks of {block or 'any size'}: "
          f"{samples} samples = {spec.latency_ms(block):.2f} ms")
    return 0


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
    p.add_argument("--blocksize", type=int, default=None, help="device block size (default: any)")
    p.set_defaults(func=_cmd_latency)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
