"""The ``deepiso`` command.

Each sub-command lives with the part of the data path it drives; this module
only parses arguments and imports the part lazily, so ``deepiso live`` never
imports PyTorch and a missing optional dependency is reported, not raised.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .frame import FrameSpec, FrameSpecError
from .version import __version__

#: The commands a user runs, in the order ``deepiso --help`` lists them; then the ones that make models.
USER_COMMANDS = ("live", "virtual-mic", "separate", "demo", "devices", "models", "latency")
DEVELOPER_COMMANDS = ("train", "export", "corpus", "prepare-data")
#: ``deepiso live``'s default --blocksize and --latency: what ``models`` and ``latency`` describe by default.
LIVE_BLOCK = 256
LIVE_LATENCY = "low"
#: Where ``python -m benchmarks.live`` writes the round trip it measures (in a source checkout only).
MEASURED_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "live.json"

EXAMPLES = """\
examples:
  deepiso virtual-mic up                # a 'deepiso' microphone for call apps (PulseAudio/PipeWire)
  deepiso live --output deepiso         # the voice of your microphone, alone, into it
  deepiso separate song.mp3 -o stems    # stems/song/vocals.wav and stems/song/instrumental.wav
  deepiso demo                          # the engine on a bundled clip; results in ./deepiso-demo
  deepiso models                        # the shipped models, their latency and size

'deepiso COMMAND --help' shows a command's options and examples.
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples keep their lines), and every option's default.

    ``(default: X)`` is added to the help of an option whose default is set, unless the help
    already names its default; a ``None`` default (not set: the help says what happens) and
    flags get none.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "%(default)" in text or "(default" in text or action.nargs == 0:
            return action.help
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)".lstrip()
        return action.help


class _Commands(argparse._SubParsersAction):
    """Sub-commands whose own ``--help`` opens with the line ``deepiso --help`` shows for them."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        if kwargs.get("help") and "description" not in kwargs:
            kwargs["description"] = kwargs["help"][:1].upper() + kwargs["help"][1:] + "."
        return super().add_parser(name, **kwargs)


class ArgumentParser(argparse.ArgumentParser):
    """``deepiso``'s parsers: :class:`HelpFormatter` unless told otherwise, sub-commands with a description."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)


def version_line() -> str:
    """``deepiso X (default model Y)``: the package, and the shipped default model as its registry records it."""
    try:
        from .onnx_model import ModelError, read_card, shipped_models
    except ImportError:  # pragma: no cover - numpy missing
        return f"deepiso {__version__}"
    try:
        entry = shipped_models().get("default")
        model = entry.get("model_version") if isinstance(entry, dict) else None
        if entry and not model:
            model = read_card("default")["version"]  # the card, read without a session
    except ModelError:
        model = None
    return f"deepiso {__version__} ({f'default model {model}' if model else 'no default model installed'})"


class _VersionAction(argparse.Action):
    """``--version``, read only when asked (the registry, not the model)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_line())  # on stdout, as argparse's own version action
        parser.exit()


# ----------------------------------------------------------------------------
# deepiso models


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _test_only(entry: dict[str, Any], card: dict[str, Any] | None) -> bool:
    """A model with random weights, shipped for the tests: its registry entry or card says so,
    or it has neither training data nor validation metrics."""
    text = str(entry.get("description", ""))
    if card is not None:
        text += " " + str(card.get("training_data", {}).get("summary", ""))
        if not card.get("training_data", {}).get("sources") and not card.get("metrics"):
            return True
    return "random weights" in text.lower() or "random initial weights" in text.lower()


def model_rows(block: int | None = LIVE_BLOCK) -> list[dict[str, Any]]:
    """One row per shipped model, from the registry and the model cards (no session, no PyTorch)."""
    from .onnx_model import MODELS_DIR, ModelError, read_card, shipped_models

    rows = []
    for name, entry in shipped_models().items():
        row: dict[str, Any] = {"name": name, "version": entry.get("model_version"),
                               "precision": entry.get("precision"), "description": entry.get("description")}
        card = None
        try:
            card = read_card(name)
        except ModelError as exc:
            row["error"] = str(exc)
        if card is not None:
            spec = FrameSpec.from_dict(card["frame_spec"])
            row.update(version=card["version"], precision=card.get("precision", row["precision"]),
                       sample_rate=spec.sample_rate, output=card["output"], latency_block=block,
                       latency_samples=spec.latency_samples(block), latency_ms=round(spec.latency_ms(block), 2),
                       parameters=card.get("parameters"))
        row["test_only"] = _test_only(entry, card)
        for key in ("file", "sequence_file"):
            path = MODELS_DIR / str(entry.get(key) or "")
            row[key] = entry.get(key)
            row[f"{key}_bytes"] = path.stat().st_size if entry.get(key) and path.is_file() else None
        rows.append(row)
    return rows


def _cmd_models(args: argparse.Namespace) -> int:
    import json

    from .onnx_model import ModelError

    block = args.blocksize or None
    if block is not None and block < 1:
        print(f"deepiso models: --blocksize {args.blocksize} must be positive (0: blocks of any size)",
              file=sys.stderr)
        return 2
    try:
        rows = model_rows(block)
    except ModelError as exc:
        print(f"deepiso models: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no models are shipped with this installation")
        return 0
    head = ("NAME", "VERSION", "PRECISION", "RATE", "LATENCY", "PARAMETERS", "SIZE", "")
    table = [head]
    for r in rows:
        if "error" in r:
            table.append((r["name"], str(r["version"] or "?"), str(r["precision"] or "?"), "?", "?", "?",
                          _size(r["file_bytes"]), f"unusable: {r['error']}"))
            continue
        table.append((r["name"], r["version"], r["precision"], f"{r['sample_rate']} Hz", f"{r['latency_ms']:.2f} ms",
                      f"{r['parameters']:,}" if r.get("parameters") else "-", _size(r["file_bytes"]),
                      "test only: random weights, it does not isolate voice" if r["test_only"] else ""))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(str(v).ljust(w) if i < len(head) - 1 else str(v)
                        for i, (v, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    print(f"\nLATENCY: algorithmic, at blocks of {f'{block} samples' if block else 'any size'} "
          f"('deepiso live' uses {LIVE_BLOCK});\n"
          "         'deepiso latency --model NAME' adds the audio server's share.")
    print("SIZE:    the step graph (NAME.onnx) the live engine runs. Use a model with: deepiso live --model NAME")
    return 0


# ----------------------------------------------------------------------------
# deepiso latency


def _parse_latency(text: str) -> str | float:
    """``--latency`` as ``live`` takes it: ``"low"``, ``"high"`` or seconds (given in milliseconds)."""
    if text in ("low", "high"):
        return text
    try:
        ms = float(text)
    except ValueError:
        ms = float("nan")
    if not 1.0 <= ms <= 2000.0:
        raise ValueError(f"--latency {text!r} is neither low, high nor milliseconds in 1..2000")
    return ms / 1000.0


def device_latency(latency: str | float, block: int | None, rate: int) -> tuple[float, float, str]:
    """``(output_s, input_s, how)``: the output buffer the pulse backend asks the server for at
    ``latency`` (:func:`deepiso.realtime.pulse.output_buffer_s`) and the one input block it waits for."""
    from . import pulse

    block = block or pulse.DEFAULT_BLOCK
    out_s = pulse.output_buffer_s(latency, block, rate)
    if latency == "low":
        rule = f"max(2 blocks, {1000 * pulse.LOW_OUTPUT_S:g} ms)"
    elif latency == "high":
        rule = f"max(4 blocks, {1000 * pulse.HIGH_OUTPUT_S:g} ms)"
    else:
        rule = f"max({1000 * float(latency):g} ms, 2 blocks)"
    pipewire = pulse.output_buffer_s(latency, block, rate, server="PipeWire")
    on_pipewire = f" ({1000 * pipewire:.2f} on PipeWire)" if pipewire != out_s else ""
    return out_s, block / rate, f"pulse output buffer {rule} = {1000 * out_s:.2f} ms{on_pipewire} + 1 input " \
                                f"block {1000 * block / rate:.2f} ms"


def measured_round_trip(path: Path | None, algorithmic_ms: float) -> tuple[list[tuple[str, float, str]], str]:
    """Rows ``(label, ms, source)`` of the round trip ``python -m benchmarks.live`` measured through each
    audio server, and a note: empty rows with the reason when there is no measurement that fits."""
    import json

    path = MEASURED_FILE if path is None else Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], "not measured; run python -m benchmarks.live"
    except (OSError, json.JSONDecodeError) as exc:
        return [], f"{path}: unreadable ({exc}); run python -m benchmarks.live"
    try:
        shown = path.resolve().relative_to(MEASURED_FILE.parents[2])
    except ValueError:
        shown = path
    rows = []
    other = None  # an algorithmic latency measured that is not this model's at this block
    for key, server in (data.get("servers") or {}).items():
        soak = server.get("soak") or {}
        delay = soak.get("delay") or {}
        if delay.get("median_ms") is None:
            continue
        note = ""
        if soak.get("algorithmic_ms") is not None and abs(soak["algorithmic_ms"] - algorithmic_ms) > 0.01:
            if not key.endswith("jack"):
                other = soak["algorithmic_ms"]
                continue
            # JACK runs at the graph's rate: the isolator resamples, which is part of its latency there
            note = f"; algorithmic {soak['algorithmic_ms']:.2f} ms at the graph's rate"
        label = {"pulseaudio": "PulseAudio", "pipewire": "PipeWire, pulse",
                 "pipewire-jack": "PipeWire, jack (default)"}.get(key, key)
        rows.append((f"measured: {label}", float(delay["median_ms"]),
                     f"{shown} ({server.get('date') or data.get('date', '?')}): median of a "
                     f"{soak.get('seconds', 0):.0f} s run, "
                     f"{delay.get('min_ms', 0):.1f}..{delay.get('max_ms', 0):.1f} ms{note}"))
    if not rows and other is not None:
        return [], (f"not measured: {shown} measured an algorithmic latency of {other:.2f} ms "
                    "(another model); run python -m benchmarks.live")
    if not rows:
        return [], f"not measured ({shown} has no round trip); run python -m benchmarks.live"
    return rows, ""


def _cmd_latency(args: argparse.Namespace) -> int:
    import dataclasses

    overrides = {field: getattr(args, dest) for field, dest in (
        ("sample_rate", "sample_rate"), ("n_fft", "n_fft"), ("hop", "hop"), ("window", "window"),
        ("past_frames", "past"), ("future_frames", "future"), ("synthesis_length", "synthesis_length"))
        if getattr(args, dest) is not None}
    label = "explicit frame configuration"
    if args.model == "none":
        spec = FrameSpec()
    else:
        from .onnx_model import ModelError, read_card

        try:
            card = read_card(args.model)
        except ModelError as exc:
            print(f"deepiso latency: {exc}", file=sys.stderr)
            return 2
        spec = FrameSpec.from_dict(card["frame_spec"])
        label = f"model {card['name']} {card['version']}" + (" with the options given" if overrides else "")
    spec = dataclasses.replace(spec, **overrides)
    if args.blocksize < 0:
        print(f"deepiso latency: --blocksize {args.blocksize} must be positive (0: blocks of any size)",
              file=sys.stderr)
        return 2
    block = args.blocksize or None
    try:
        latency = _parse_latency(args.latency)
    except ValueError as exc:
        print(f"deepiso latency: {exc}", file=sys.stderr)
        return 2
    rate = spec.sample_rate
    samples = spec.latency_samples(block)
    alg_ms = spec.latency_ms(block)
    out_s, in_s, how = device_latency(latency, block, rate)
    dev_ms = 1000.0 * (out_s + in_s)
    look = f" + {spec.future_frames} look-ahead × hop {spec.hop}" if spec.future_frames else ""
    gcd = f"gcd(block {block}, hop {spec.hop})" if block else "1 (blocks of any size)"
    rows: list[tuple[str, str, float, str]] = [
        ("algorithmic (the engine)", str(samples), alg_ms,
         f"frame spec: synthesis {spec.synthesis_span} - {gcd}{look}; what 'deepiso live' reports"),
        ("+ device (buffers asked for)", str(round((out_s + in_s) * rate)), dev_ms, how),
        ("= expected round trip", str(samples + round((out_s + in_s) * rate)), alg_ms + dev_ms,
         "algorithmic + device: what the engine and the buffers asked for add up to"),
    ]
    matches = (args.model == "default" and not overrides and block == LIVE_BLOCK and latency == LIVE_LATENCY)
    if matches:
        measured, note = measured_round_trip(args.measured, alg_ms)
    else:
        measured, note = [], ("not measured for this configuration (python -m benchmarks.live measures the "
                              f"default model at --blocksize {LIVE_BLOCK} --latency {LIVE_LATENCY})")
    rows += [(lbl, "", ms, src) for lbl, ms, src in measured]
    block_text = f"blocks of {block} samples ({1000 * block / rate:.2f} ms)" if block else "blocks of any size"
    print(f"deepiso latency: {label}, {rate} Hz, {block_text}, --latency {args.latency}")
    print(f"frame spec: {spec.to_json()}")
    print(f"algorithmic latency with blocks of {block or 'any size'}: {samples} samples = {alg_ms:.2f} ms"
          + (f" (blocks of any size: {spec.latency_samples()} samples = {spec.latency_ms():.2f} ms)" if block else ""))
    print()
    table = [("LATENCY", "SAMPLES", "MS", "WHERE THE NUMBER COMES FROM")]
    table += [(lbl, n, f"{ms:.2f}", src) for lbl, n, ms, src in rows]
    if note:
        table.append(("measured round trip", "", "-", note))
    w = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]}")
    print("\nThe device row is what the pulse backend (the default on PulseAudio) asks the server for; on "
          "PipeWire the default\nis its JACK API, one quantum; with sounddevice/pyaudio, 'deepiso live' prints "
          "what PortAudio reports.")
    return 0


def _cmd_corpus(args: argparse.Namespace) -> int:
    # Lazy: the corpus recipe lives in the training package and needs ffmpeg/dpkg, not the engine.
    from deepiso.train import corpus

    if args.corpus_command == "cache":
        from deepiso.train import pcm_cache

        try:
            return pcm_cache.run_cli(args)
        except (pcm_cache.CacheError, corpus.CorpusError) as exc:
            print(f"deepiso corpus: {exc}", file=sys.stderr)
            return 2
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
    parser = ArgumentParser(prog="deepiso", usage="deepiso [-h] [--version] COMMAND [ARGS]",
                            description="Live voice isolation: the voice of a microphone, call or file, alone.",
                            epilog=EXAMPLES)
    parser.add_argument("--version", action=_VersionAction,
                        help="show deepiso's version and the shipped default model's, then exit")
    # The commands are listed by _describe_commands, in two groups; argparse's one list is hidden.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="deepiso", help=argparse.SUPPRESS)

    p = sub.add_parser("models", help="list the shipped models: version, precision, rate, latency, size",
                       epilog="examples:\n  deepiso models\n  deepiso models --json\n"
                              "  deepiso live --model NAME     # run one of them\n")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.add_argument("--blocksize", type=int, default=LIVE_BLOCK, metavar="N",
                   help="block size the algorithmic latency is given for (0 = blocks of any size)")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("latency", help="algorithmic, device and measured latency of a live configuration",
                       epilog="examples:\n"
                              "  deepiso latency                              # the default model as 'deepiso live' "
                              "runs it\n"
                              "  deepiso latency --blocksize 128 --latency high\n"
                              "  deepiso latency --synthesis-length 512       # the default model, low-delay "
                              "synthesis\n"
                              "  deepiso latency --model none --n-fft 512 --hop 128   # a frame configuration "
                              "of your own\n")
    p.add_argument("--model", "-m", default="default", metavar="NAME",
                   help="shipped model name or .onnx file whose card gives the frame configuration; "
                        "'none' = only the frame options below (FrameSpec's defaults for the rest)")
    frame = p.add_argument_group("frame configuration (each replaces the model's)")
    frame.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                       help="sample rate (default: the model's)")
    frame.add_argument("--n-fft", type=int, default=None, metavar="N", help="FFT size (default: the model's)")
    frame.add_argument("--hop", type=int, default=None, metavar="N", help="hop size (default: the model's)")
    frame.add_argument("--window", default=None, help="analysis window (default: the model's)")
    frame.add_argument("--past", type=int, default=None, metavar="N",
                       help="awareness: past frames (default: the model's)")
    frame.add_argument("--future", type=int, default=None, metavar="N",
                       help="awareness: future (look-ahead) frames (default: the model's)")
    frame.add_argument("--synthesis-length", type=int, default=None, metavar="N",
                       help="span of the synthesis window; shorter than --n-fft is a low-delay synthesis, "
                            "0 = n_fft (default: the model's)")
    p.add_argument("--blocksize", type=int, default=LIVE_BLOCK, metavar="N",
                   help="device block size, as 'deepiso live --blocksize' (0 = blocks of any size)")
    p.add_argument("--latency", default=LIVE_LATENCY, metavar="low|high|MS",
                   help="output buffering, as 'deepiso live --latency'")
    p.add_argument("--measured", default=None, metavar="FILE",
                   help="results of python -m benchmarks.live to show the measured round trip from "
                        "(default: benchmarks/results/live.json of the source tree, where there is one)")
    p.set_defaults(func=_cmd_latency)

    p = sub.add_parser("corpus", help="build or inspect the training corpus (allowed sources only)",
                       epilog="examples:\n"
                              "  deepiso corpus sources\n"
                              "  deepiso corpus build corpus/ --jobs 2\n"
                              "  deepiso corpus info corpus/\n"
                              "  deepiso corpus card corpus/ -o training-data.json   # for deepiso export "
                              "--training-data\n")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True,
                            help="'deepiso corpus ACTION --help' shows its options")
    c = csub.add_parser("build", help="fetch, decode and chunk every source into DIR (resumable)")
    c.add_argument("dir", help="corpus folder (FLAC files, manifest.jsonl)")
    c.add_argument("--only", choices=("voice", "background"), default=None,
                   help="build only the voice or only the background sources (default: both)")
    c.add_argument("--sources", default=None,
                   help="comma-separated source names (see: deepiso corpus sources; default: all)")
    c.add_argument("--sample-rate", type=int, default=44_100, help="sample rate of the FLAC files")
    c.add_argument("--jobs", type=int, default=1, help="parallel decoding processes")
    c.add_argument("--cache-dir", default=None, help="where .deb files are kept and unpacked (default: DIR/.cache)")
    c.add_argument("--no-download", action="store_true", help="use only .deb files already in the cache")
    c = csub.add_parser("info", help="minutes per source, category and split of a built corpus")
    c.add_argument("dir", help="corpus folder")
    c = csub.add_parser("cache", help="decode a built corpus once into one 16-bit file that training slices "
                                      "(data.pcm_cache)")
    c.add_argument("dir", help="corpus folder")
    c.add_argument("--rate", type=int, default=44_100, help="the rate training mixes at (the model's)")
    c.add_argument("--channels", type=int, default=1, help="the channels training mixes (data.channels)")
    c.add_argument("-o", "--output", default=None, help="cache folder (default: DIR/pcm-RATE-CHANNELS)")
    c = csub.add_parser("resplit", help="give a built corpus's files the recipe's current splits (speakers in one "
                                        "split each), without remaking audio")
    c.add_argument("dir", help="corpus folder")
    csub.add_parser("sources", help="list the allowed sources and their licenses")
    c = csub.add_parser("card", help="the training-data summary for a model card (JSON, for deepiso export)")
    c.add_argument("dir", help="corpus folder")
    c.add_argument("-o", "--output", default=None, help="write to this file (default: print)")
    p.set_defaults(func=_cmd_corpus)

    p = sub.add_parser("export", help="export a training checkpoint to verified ONNX with a model card",
                       epilog="examples:\n"
                              "  deepiso export CHECKPOINT.pt -o mine.onnx\n"
                              "  deepiso export CHECKPOINT.pt -o mine.onnx --int8 --mixtures tracks/ "
                              "--training-data training-data.json\n"
                              "  deepiso live --model mine.onnx\n")
    p.add_argument("checkpoint", help="training checkpoint (.pt)")
    p.add_argument("-o", "--output", required=True,
                   help="step graph file (.onnx); the sequence graph is written beside it as NAME.seq.onnx")
    p.add_argument("--int8", action="store_true", help="dynamic int8 quantisation, its measured cost in the card")
    p.add_argument("--name", default=None, help="model name (default: the checkpoint's configuration name)")
    p.add_argument("--version", default=None, help="model version (default: 1.0.0)")
    p.add_argument("--mixtures", default=None,
                   help="folder of track folders with mixture.wav and vocals.wav: int8 quality in SI-SDR "
                        "(default: a synthetic signal's relative error)")
    p.add_argument("--training-data", default=None,
                   help='JSON file {"sources": [{"name", "license"}], "summary"} (default: from the checkpoint)')
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("train", help="train a model (deepiso train CONFIG.yaml), or average checkpoints "
                                     "(deepiso train average OUT.pt IN...)",
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
    _describe_commands(parser, sub)
    return parser


def _describe_commands(parser: argparse.ArgumentParser, sub: Any) -> None:
    """List the commands in ``deepiso --help`` in two groups: the user's, then the developer's."""
    helps = {a.dest: a.help for a in sub._choices_actions}
    order = {name: i for i, name in enumerate(USER_COMMANDS + DEVELOPER_COMMANDS)}
    names = sorted(helps, key=lambda n: order.get(n, len(USER_COMMANDS)))
    width = max(map(len, names)) + 2
    groups = {"commands:": [n for n in names if n not in DEVELOPER_COMMANDS],
              "developer commands (making and shipping models):":
                  [n for n in names if n in DEVELOPER_COMMANDS]}
    parts = [parser.description or ""]
    for title, group in groups.items():
        lines = [f"  {n:<{width}}{helps[n] or ''}" for n in group]
        parts.append("\n".join([title, *lines]))
    parser.description = "\n\n".join(parts)
    parsers = dict(sub.choices)  # the same order in "invalid choice" errors
    sub.choices.clear()
    sub.choices.update((n, parsers[n]) for n in sorted(parsers, key=lambda n: order.get(n, len(USER_COMMANDS))))


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
