"""The ``deepiso`` command line: the help, every option's help and default, ``models``, ``--version``, ``latency``."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

from deepiso.realtime import cli
from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.onnx_model import read_card, shipped_models
from deepiso.realtime.pulse import output_buffer_s
from deepiso.realtime.version import __version__


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _all_parsers(parser: argparse.ArgumentParser, prefix: str = "deepiso"):
    yield prefix, parser
    for name, sub in _commands(parser).items():
        yield from _all_parsers(sub, f"{prefix} {name}")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------
# help


def test_help_lists_the_user_commands_first_then_the_developer_commands_in_two_groups():
    text = cli.build_parser().format_help()
    user, developer = text.index("\ncommands:\n"), text.index("\ndeveloper commands")
    assert user < developer
    positions = [text.index(f"\n  {name} ") for name in cli.USER_COMMANDS + cli.DEVELOPER_COMMANDS]
    assert positions == sorted(positions)
    assert all(p < developer for p in positions[: len(cli.USER_COMMANDS)])
    assert all(p > developer for p in positions[len(cli.USER_COMMANDS):])
    assert set(_commands(cli.build_parser())) == set(cli.USER_COMMANDS + cli.DEVELOPER_COMMANDS)


def test_help_ends_with_examples_of_the_virtual_mic_live_separate_and_demo():
    text = cli.build_parser().format_help()
    examples = text[text.index("\nexamples:\n"):]
    for line in ("deepiso virtual-mic up", "deepiso live --output deepiso", "deepiso separate ", "deepiso demo"):
        assert f"\n  {line}" in examples, line
    assert text.index("\nexamples:\n") > text.index("\ndeveloper commands")


def test_invalid_command_names_the_commands_in_the_same_order(capsys):
    with pytest.raises(SystemExit):
        cli.main(["nope"])
    err = capsys.readouterr().err
    named = re.findall(r"'([a-z-]+)'", err.split("choose from", 1)[1])
    assert named == list(cli.USER_COMMANDS + cli.DEVELOPER_COMMANDS)


@pytest.mark.parametrize("name", cli.USER_COMMANDS)
def test_every_user_command_has_a_description_and_examples(name):
    sub = _commands(cli.build_parser())[name]
    text = sub.format_help()
    assert "\nexamples:\n" in text
    examples = text.split("\nexamples:\n", 1)[1]
    assert examples.startswith("  deepiso ") and f"deepiso {name}" in examples
    assert sub.description and sub.description.endswith(".")


def test_every_option_has_a_help_text_that_shows_its_default():
    problems = []
    for where, parser in _all_parsers(cli.build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.nargs == argparse.REMAINDER:
                continue  # -h; train and prepare-data hand their arguments to the training package
            if isinstance(action, argparse._SubParsersAction) and action.help == argparse.SUPPRESS:
                continue  # deepiso's own command list is in its description
            name = "/".join(action.option_strings) or action.dest
            if not action.help or action.help == argparse.SUPPRESS:
                problems.append(f"{where} {name}: no help")
                continue
            text = " ".join(formatter._expand_help(action).split())
            shown = action.default is None or action.default is argparse.SUPPRESS or action.nargs == 0
            if not shown and f"(default: {action.default})" not in text:
                problems.append(f"{where} {name}: default {action.default!r} not in {text!r}")
    assert not problems, "\n".join(problems)


def test_defaults_are_shown_once_in_the_rendered_help():
    live = _commands(cli.build_parser())["live"].format_help()
    flat = " ".join(live.split())
    assert "frames per callback (0 = variable) (default: 256)" in flat
    assert flat.count("(default: low)") == 1 and "default 256" not in flat
    assert "--quiet, -q no status line --fast" in flat  # flags: no "(default: False)"


# ----------------------------------------------------------------------------
# --version


def test_version_names_the_package_and_the_default_model(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    model = shipped_models()["default"]["model_version"]
    assert model == read_card("default")["version"]
    assert capsys.readouterr().out.strip() == f"deepiso {__version__} (default model {model})"


def test_version_and_models_read_cards_only():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from deepiso.realtime import cli\n"
            "assert cli.main(['models']) == 0\n"
            "assert cli.main(['models', '--json']) == 0\n"
            "try:\n    cli.main(['--version'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'onnxruntime' not in sys.modules, 'onnxruntime imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "(default model " in out.stdout


# ----------------------------------------------------------------------------
# models


def test_models_lists_each_shipped_model_with_its_card(capsys):
    code, out, _ = _run(capsys, "models")
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert lines["NAME"].split()[:7] == ["NAME", "VERSION", "PRECISION", "RATE", "LATENCY", "PARAMETERS", "SIZE"]
    for name in shipped_models():
        card = read_card(name)
        spec = FrameSpec.from_dict(card["frame_spec"])
        line = lines[name]
        assert f" {card['version']} " in line and f" {card['precision']} " in line
        assert f" {spec.sample_rate} Hz " in line and f" {spec.latency_ms(256):.2f} ms " in line
        assert f" {card['parameters']:,} " in line
        assert re.search(r" \d+(\.\d)? (MB|kB)", line)
    assert "test only" in lines["tiny-test"] and "test only" not in lines["default"]
    default = FrameSpec.from_dict(read_card("default")["frame_spec"])
    assert default.sample_rate == 44_100 and f"{default.latency_ms(256):.2f}" == "17.41"


def test_models_json(capsys):
    code, out, _ = _run(capsys, "models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(shipped_models())
    for name, row in rows.items():
        card = read_card(name)
        spec = FrameSpec.from_dict(card["frame_spec"])
        assert row["version"] == card["version"] and row["precision"] == card["precision"]
        assert row["sample_rate"] == spec.sample_rate and row["parameters"] == card["parameters"]
        assert row["latency_block"] == 256 and row["latency_samples"] == spec.latency_samples(256)
        assert row["latency_ms"] == pytest.approx(spec.latency_ms(256), abs=0.01)
        assert row["file_bytes"] > 1000 and row["sequence_file_bytes"] > 1000
    assert rows["tiny-test"]["test_only"] is True and rows["default"]["test_only"] is False
    code, out, _ = _run(capsys, "models", "--json", "--blocksize", "0")
    spec = FrameSpec.from_dict(read_card("default")["frame_spec"])
    assert {r["name"]: r for r in json.loads(out)}["default"]["latency_samples"] == spec.latency_samples(None)


# ----------------------------------------------------------------------------
# latency


def _rows(out: str) -> dict[str, tuple[str, str, str]]:
    """The table's rows: label -> (samples, ms, source)."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("LATENCY "))
    rows = {}
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        label, samples, ms, source = re.match(r"(.+?)\s{2,}(\d*)\s+(-|\d+\.\d\d)  (.*)$", ln).groups()
        rows[label] = (samples, ms, source)
    return rows


MEASURED = {"date": "2026-01-02", "servers": {
    "pulseaudio": {"soak": {"seconds": 600.0, "algorithmic_ms": 17.41496598639456,
                            "delay": {"median_ms": 32.98, "min_ms": 31.04, "max_ms": 34.85}}},
    "pipewire": {"soak": {"seconds": 600.0, "algorithmic_ms": 17.41496598639456,
                          "delay": {"median_ms": 44.65, "min_ms": 44.65, "max_ms": 50.46}}},
    # JACK runs the engine at the graph's 48 kHz: the isolator's resampling is in its algorithmic latency
    "pipewire-jack": {"date": "2026-01-03", "soak": {"seconds": 600.0, "algorithmic_ms": 23.6458,
                                                     "delay": {"median_ms": 28.98, "min_ms": 28.98, "max_ms": 29.0}}}}}


def test_latency_of_the_default_model_as_live_runs_it(capsys, tmp_path):
    measured = tmp_path / "live.json"
    measured.write_text(json.dumps(MEASURED))
    code, out, _ = _run(capsys, "latency", "--measured", str(measured))
    assert code == 0
    spec = FrameSpec.from_dict(read_card("default")["frame_spec"])
    assert (spec.sample_rate, spec.n_fft, spec.hop, spec.future_frames, spec.synthesis_span) == (44_100, 1024, 256,
                                                                                                  0, 1024)
    rows = _rows(out)
    alg = rows["algorithmic (the engine)"]
    assert alg[:2] == (str(spec.latency_samples(256)), f"{spec.latency_ms(256):.2f}") == ("768", "17.41")
    assert "frame spec" in alg[2] and "deepiso live" in alg[2]
    dev = rows["+ device (buffers asked for)"]
    device_s = output_buffer_s("low", 256, 44_100) + 256 / 44_100
    assert dev[1] == f"{1000 * device_s:.2f}" == "17.80" and dev[0] == str(round(device_s * 44_100))
    assert "max(2 blocks, 12 ms) = 12.00 ms (16.00 on PipeWire)" in dev[2] and "1 input block 5.80 ms" in dev[2]
    total = rows["= expected round trip"]
    assert total[1] == f"{spec.latency_ms(256) + 1000 * device_s:.2f}" == "35.22"
    assert rows["measured: PulseAudio"][1:] == ("32.98", f"{measured} (2026-01-02): median of a 600 s run, "
                                                         "31.0..34.9 ms")
    assert rows["measured: PipeWire, pulse"][1] == "44.65"
    jack = rows["measured: PipeWire, jack (default)"]
    assert jack[1:] == ("28.98", f"{measured} (2026-01-03): median of a 600 s run, "
                                 "29.0..29.0 ms; algorithmic 23.65 ms at the graph's rate")
    # what the old output said stays: the frame spec and the latency at any block size
    assert f"frame spec: {spec.to_json()}" in out
    assert "768 samples = 17.41 ms (blocks of any size: 1023 samples = 23.20 ms)" in out


def test_latency_says_what_was_not_measured(capsys, tmp_path):
    code, out, _ = _run(capsys, "latency", "--measured", str(tmp_path / "absent.json"))
    assert code == 0
    assert _rows(out)["measured round trip"][1:] == ("-", "not measured; run python -m benchmarks.live")
    other = json.loads(json.dumps(MEASURED))
    for key in ("pulseaudio", "pipewire"):  # (a JACK entry is at the graph's rate: not this model's anyway)
        other["servers"][key]["soak"]["algorithmic_ms"] = 11.61
    del other["servers"]["pipewire-jack"]
    (tmp_path / "other.json").write_text(json.dumps(other))
    _, out, _ = _run(capsys, "latency", "--measured", str(tmp_path / "other.json"))
    assert "another model" in _rows(out)["measured round trip"][2]
    (tmp_path / "live.json").write_text(json.dumps(MEASURED))
    for args in (["--blocksize", "128"], ["--latency", "high"], ["--synthesis-length", "512"], ["-m", "tiny-test"]):
        _, out, _ = _run(capsys, "latency", "--measured", str(tmp_path / "live.json"), *args)
        rows = _rows(out)
        assert "not measured for this configuration" in rows["measured round trip"][2], args
        assert not any(label.startswith("measured:") for label in rows)


def test_latency_of_an_explicit_frame_configuration(capsys):
    code, out, _ = _run(capsys, "latency", "--model", "none", "--sample-rate", "48000", "--n-fft", "960",
                        "--hop", "240", "--future", "1", "--blocksize", "240", "--latency", "30")
    assert code == 0
    assert out.startswith("deepiso latency: explicit frame configuration, 48000 Hz, blocks of 240 samples (5.00 ms)")
    rows = _rows(out)
    # 960 - gcd(240, 240) + 1 x 240 samples; device: max(30 ms, 2 blocks) + one block of 5 ms
    assert rows["algorithmic (the engine)"][:2] == ("960", "20.00")
    assert "+ 1 look-ahead" in rows["algorithmic (the engine)"][2]
    assert rows["+ device (buffers asked for)"][:2] == ("1680", "35.00")
    assert "max(30 ms, 2 blocks) = 30.00 ms" in rows["+ device (buffers asked for)"][2]
    assert rows["= expected round trip"][:2] == ("2640", "55.00")
    assert "960 samples = 20.00 ms" in out


def test_latency_with_blocks_of_any_size_and_bad_options(capsys):
    code, out, _ = _run(capsys, "latency", "--model", "none", "--blocksize", "0")
    assert code == 0 and _rows(out)["algorithmic (the engine)"][:2] == ("1023", "23.20")
    assert _run(capsys, "latency", "--latency", "fast")[0] == 2
    assert _run(capsys, "latency", "--blocksize", "-1")[0] == 2
    code, _, err = _run(capsys, "latency", "--model", "no-such-model")
    assert code == 2 and "shipped: " in err
    code, _, err = _run(capsys, "latency", "--hop", "4096")
    assert code == 2 and "larger than n_fft" in err
