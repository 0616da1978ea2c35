"""The exporter: checkpoint → ONNX that the engine runs exactly like PyTorch, with its model card."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import deepiso.export.exporter as exporter
from deepiso.export import ExportError, export_checkpoint, export_model, sequence_path_for
from deepiso.export.graphs import export_graphs
from deepiso.export.quantize import relative_rms_error
from deepiso.export.ship import build_tiny_test, register
from deepiso.export.verify import awareness_inputs, synthetic_signal, torch_steps
from deepiso.realtime.audio_io import write_audio
from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.onnx_model import ModelError, load_model, parse_onnx, read_card
from deepiso.realtime.version import __version__
from deepiso.train.checkpoint import load_checkpoint, save_checkpoint
from deepiso.train.model import ModelConfig, build_model, build_named

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [{"name": "klettres-data", "license": "GPL-2+"}, {"name": "wesnoth-1.16-music", "license": "GPL-2"}]


def tiny_net(seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_named("tiny-test").eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, tiny_net(), train_config={"lr": 1e-3, "training_data": {"sources": SOURCES,
                                                                                  "summary": "two sources"}},
                    metrics={"val_si_sdr_db": 3.25})
    return path


@pytest.fixture(scope="module")
def fp32_export(checkpoint, tmp_path_factory):
    return export_checkpoint(checkpoint, tmp_path_factory.mktemp("fp32") / "model.onnx", version="2.1.0")


@pytest.fixture(scope="module")
def int8_cli(checkpoint, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("int8") / "small.onnx"
    run = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "export", str(checkpoint), "-o", str(out),
                          "--int8", "--name", "tiny-int8", "--version", "3.0"],
                         capture_output=True, text=True, timeout=300)
    return run, out


# ----------------------------------------------------------------------------- round trip and card


def test_export_round_trip_runs_like_pytorch(fp32_export):
    net = tiny_net()
    x = awareness_inputs(net.spec, synthetic_signal(net.spec, 520, channels=2, seed=11))
    reference = torch_steps(net, x)
    model = load_model(fp32_export.step_path, batch=2)
    stepped = np.stack([model.step(x[:, t]).copy() for t in range(x.shape[1])], axis=1)
    assert np.max(np.abs(stepped - reference)) <= 1e-4
    model.reset()
    assert np.max(np.abs(model.run_sequence(x) - reference)) <= 1e-4
    one = load_model(fp32_export.step_path, batch=1)  # the batch axis is dynamic
    assert np.max(np.abs(one.run_sequence(x[1:]) - reference[1:])) <= 1e-4


def test_card_carries_the_contract_and_the_checkpoint_metadata(fp32_export, checkpoint):
    card = read_card(fp32_export.step_path)
    net = tiny_net()
    assert card == fp32_export.card
    assert card["name"] == "tiny-test" and card["version"] == "2.1.0" and card["graph"] == "step"
    assert card["frame_spec"] == net.spec.to_dict() and card["output"] == "spectrum"
    assert card["state"] == {"layers": net.cfg.layers, "hidden": net.cfg.hidden}
    assert card["model_config"] == net.cfg.to_dict() and card["parameters"] == net.num_parameters()
    assert card["training_data"]["sources"] == SOURCES
    assert card["metrics"] == {"val_si_sdr_db": 3.25}
    assert card["train_config"]["lr"] == 1e-3
    assert card["deepiso_version"] == __version__ and card["opset"] >= 17 and card["precision"] == "fp32"
    assert card["checkpoint"]["file"] == checkpoint.name and len(card["checkpoint"]["sha256"]) == 64
    check = card["verification"]
    assert check["frames"] >= 500 and check["tolerance"] <= 1e-4
    assert check["step_vs_pytorch_max_abs_diff"] <= 1e-4 and check["sequence_vs_step_max_abs_diff"] <= 1e-4
    assert card["weights_sha256"] == parse_onnx(fp32_export.step_path.read_bytes()).graph_sha256
    seq_card = read_card(fp32_export.sequence_path)
    assert seq_card["graph"] == "sequence" and fp32_export.sequence_path == sequence_path_for(fp32_export.step_path)
    assert card["sequence_graph"] == {"file": "model.seq.onnx", "weights_sha256": seq_card["weights_sha256"]}


@pytest.mark.parametrize("output, cfg", [
    ("ratio_mask", ModelConfig(hidden=12, layers=1, pre_fc=0, fc_layers=2, encoder="encode_once", encoder_width=8,
                               input_compression="power")),
    ("complex_mask", ModelConfig(hidden=8, layers=3, pre_fc=10, fc_layers=1, bands=12, activation="gelu")),
    ("ratio_mask", ModelConfig(hidden=12, layers=2, pre_fc=0, fc_layers=2, encoder="encode_once", encoder_width=8,
                               input_compression="power", norm="layer", skip=True)),
])
def test_other_outputs_and_encoders_export_exactly(tmp_path, output, cfg):
    spec = FrameSpec(sample_rate=8000, n_fft=128, hop=32, past_frames=3, future_frames=0, output=output)
    torch.manual_seed(5)
    net = build_model(spec, cfg).eval()
    result = export_model(net, tmp_path / "m.onnx", name="variant")
    x = awareness_inputs(spec, synthetic_signal(spec, 300, channels=1, seed=4))
    model = load_model(result.step_path)
    stepped = np.stack([model.step(x[:, t]).copy() for t in range(300)], axis=1)
    assert np.max(np.abs(stepped - torch_steps(net, x))) <= 1e-4
    assert result.card["output"] == output


# ----------------------------------------------------------------------------- failures fail the export


def test_step_graph_that_differs_from_pytorch_fails_and_writes_nothing(tmp_path, monkeypatch):
    other = tiny_net(seed=99)
    monkeypatch.setattr(exporter, "export_graphs", lambda net, opset: export_graphs(other, opset))
    with pytest.raises(ExportError, match="verification failed.*step graph vs PyTorch"):
        export_model(tiny_net(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_sequence_graph_that_differs_from_the_step_graph_fails(tmp_path, monkeypatch):
    other = tiny_net(seed=99)

    def mixed(net, opset):
        return export_graphs(net, opset)[0], export_graphs(other, opset)[1]

    monkeypatch.setattr(exporter, "export_graphs", mixed)
    with pytest.raises(ExportError, match="sequence graph in one call vs step graph"):
        export_model(tiny_net(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_and_checkpoints_are_refused(tmp_path):
    with pytest.raises(ExportError, match="at least 500 frames"):
        export_model(tiny_net(), tmp_path / "m.onnx", frames=100)
    with pytest.raises(ExportError, match="must end in .onnx"):
        export_model(tiny_net(), tmp_path / "m.bin")
    with pytest.raises(ExportError, match="output folder does not exist"):
        export_model(tiny_net(), tmp_path / "no" / "m.onnx")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match="junk.pt: not a deepiso checkpoint"):
        export_checkpoint(junk, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="'license'"):
        export_model(tiny_net(), tmp_path / "m.onnx", training_data={"sources": [{"name": "x"}]})
    assert not (tmp_path / "m.onnx").exists()


# ----------------------------------------------------------------------------- int8 and the CLI


def test_cli_int8_export_states_its_cost_and_keeps_it(int8_cli, fp32_export):
    run, out = int8_cli
    assert run.returncode == 0, run.stderr
    assert "int8: output differs from fp32" in run.stdout and "synthetic" in run.stdout
    card = read_card(out)
    assert card["name"] == "tiny-int8" and card["version"] == "3.0" and card["precision"] == "int8"
    q = card["quantization"]
    assert q["kind"] == "synthetic_output_difference" and "not an audio quality" in q["synthetic"]["note"]
    tolerance = q["tolerance"]["relative_rms_error"]
    assert 0 < q["synthetic"]["relative_rms_error"] <= tolerance
    assert out.stat().st_size < 0.6 * fp32_export.step_path.stat().st_size
    # on a signal the exporter never saw, int8 stays within the tolerance its card states
    spec = FrameSpec.from_dict(card["frame_spec"])
    x = awareness_inputs(spec, synthetic_signal(spec, 800, channels=2, seed=12345))
    q8, f32 = load_model(out, batch=2), load_model(fp32_export.step_path, batch=2)
    y8 = np.stack([q8.step(x[:, t]).copy() for t in range(800)], axis=1)
    y32 = np.stack([f32.step(x[:, t]).copy() for t in range(800)], axis=1)
    err = relative_rms_error(y8, y32)
    assert 0 < err <= tolerance
    q8.reset()
    assert relative_rms_error(q8.run_sequence(x), y8) <= tolerance


def test_int8_quality_in_si_sdr_on_supplied_mixtures(tmp_path):
    net = tiny_net()
    spec = net.spec
    rng = np.random.default_rng(0)
    expected = []
    for i in range(2):
        track = tmp_path / "mixtures" / f"track{i}"
        track.mkdir(parents=True)
        voice = 0.3 * synthetic_signal(spec, 200, channels=1, seed=i)[0]
        noise = 0.01 * rng.standard_normal(voice.shape).astype(np.float32)
        mix = voice + noise
        # SI-SDR of the mixture itself: the voice is the target, scaled by <mix, v> / <v, v>
        target = voice * (np.dot(mix, voice) / np.dot(voice, voice))
        expected.append(10 * np.log10(np.sum(target**2) / np.sum((mix - target) ** 2)))
        write_audio(track / "vocals.wav", voice, spec.sample_rate)
        write_audio(track / "mixture.wav", mix, spec.sample_rate)
    result = export_model(net, tmp_path / "m.onnx", int8=True, mixtures=tmp_path / "mixtures")
    si = result.card["quantization"]["si_sdr"]
    assert result.card["quantization"]["kind"] == "si_sdr" and si["tracks"] == 2
    assert np.isfinite(si["fp32_db"]) and np.isfinite(si["int8_db"])
    assert si["delta_db"] == pytest.approx(si["int8_db"] - si["fp32_db"])
    assert si["mixture_db"] == pytest.approx(np.mean(expected), abs=0.05)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="empty: no track folders with mixture.wav"):
        export_model(net, tmp_path / "n.onnx", int8=True, mixtures=tmp_path / "empty")


def test_cli_reports_a_bad_checkpoint_clearly(tmp_path):
    run = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "export", str(tmp_path / "none.pt"),
                          "-o", str(tmp_path / "m.onnx")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "none.pt: no such checkpoint file" in run.stderr


# ----------------------------------------------------------------------------- shipped models


def test_shipped_tiny_test_is_rebuilt_by_its_generator(tmp_path):
    entry = build_tiny_test(tmp_path)
    rebuilt, shipped = load_model(tmp_path / entry["file"], batch=2), load_model("tiny-test", batch=2)
    assert rebuilt.card["weights_sha256"] == shipped.card["weights_sha256"]
    x = awareness_inputs(shipped.spec, synthetic_signal(shipped.spec, 50, channels=2, seed=8))
    np.testing.assert_array_equal(rebuilt.run_sequence(x), shipped.run_sequence(x))
    registry = json.loads((tmp_path / "registry.json").read_text())
    assert registry["models"]["tiny-test"]["sha256"] == entry["sha256"]


def test_register_refuses_foreign_files(tmp_path):
    foreign = tmp_path / "x.onnx"
    foreign.write_bytes(b"\x08\x07")
    with pytest.raises(ModelError, match="not an ONNX model"):
        register(foreign, "x", "", tmp_path / "models")


def test_step_speed_benchmark_runs(tmp_path):
    out = tmp_path / "speed.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.step_speed", "--configs", "tiny-test",
                          "--frames", "200", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {(r["config"], r["precision"]) for r in rows} == {("tiny-test", "fp32"), ("tiny-test", "int8")}
    for r in rows:
        assert 0 < r["iobinding"]["median_us"] <= r["iobinding"]["p99_us"]
        assert r["session_run"]["median_us"] > 0 and r["sequence_us_per_frame"] > 0


def test_a_low_delay_look_ahead_network_exports_and_the_engine_streams_it_like_offline(tmp_path):
    from deepiso.realtime.host import Host
    from deepiso.realtime.plugins.isolator import Isolator
    from deepiso.realtime.separator import Separator
    from deepiso.train.model import TorchSequence
    from deepiso.train.reframe import reframe

    base = tiny_net()
    spec = FrameSpec.from_dict({**base.spec.to_dict(), "output": "ratio_mask", "future_frames": 1})
    torch.manual_seed(2)
    net = reframe(build_model(spec, base.cfg), FrameSpec.from_dict({**spec.to_dict(), "synthesis_length": 128}))
    result = export_model(net.eval(), tmp_path / "low.onnx")
    assert result.card["frame_spec"]["synthesis_length"] == 128 and result.card["frame_spec"]["format_version"] == 2
    model = load_model(tmp_path / "low.onnx", batch=1)
    assert model.spec == net.spec and model.spec.latency_samples(64) == 128
    x = (0.3 * synthetic_signal(net.spec, 120, channels=1, seed=4)).astype(np.float32)  # (1, N)
    # offline, as the exporter's int8 check and the quality benchmark run it
    offline = Separator(TorchSequence(net)).vocals(x[0])
    host = Host([Isolator(str(tmp_path / "low.onnx"), channels=1)], net.spec.sample_rate, 1, max_block=64)
    out = np.zeros((x.shape[1], 1), np.float32)
    for i in range(0, x.shape[1] - 63, 64):
        host.process(np.ascontiguousarray(x[0, i : i + 64, None]), out[i : i + 64])
    lat = host.latency_samples
    assert lat == net.spec.latency_samples(None) == 191  # blocks of any size: one hop less a sample more
    n = (x.shape[1] // 64) * 64 - lat
    assert np.abs(offline).max() > 1e-3
    # onnxruntime against PyTorch (within 1e-4 per mask value), weighted up at a frame's end by the synthesis
    np.testing.assert_allclose(out[lat : lat + n, 0], offline[:n], atol=3e-4)
    # an all-pass mask gives the mixture back, aligned: the delay the synthesis adds is taken off
    class AllPass:
        spec = net.spec

        def reset(self) -> None:
            pass

        def run_sequence(self, inp: np.ndarray) -> np.ndarray:
            return np.ones(inp.shape[:-1] + (net.spec.n_bins,), np.float32)

    ones = Separator(AllPass()).vocals(x[0])
    np.testing.assert_allclose(ones, x[0], atol=1e-5)  # to the last sample


def test_a_release_keeps_its_fp32_weights_for_training_to_resume_from(checkpoint, tmp_path):
    from deepiso.export.ship import keep_weights
    from deepiso.train.onnx_import import import_onnx

    for folder in ("fp32", "int8", "other"):
        (tmp_path / folder).mkdir()
    fp32 = export_checkpoint(checkpoint, tmp_path / "fp32" / "model.onnx", version="4.0.0")
    int8 = export_checkpoint(checkpoint, tmp_path / "int8" / "model.onnx", version="4.0.0", int8=True)
    models, releases = tmp_path / "models", tmp_path / "releases"
    with pytest.raises(ModelError, match="ships with its release's fp32 weights"):
        register(int8.step_path, "mine", "", models, releases_dir=releases)
    with pytest.raises(ModelError, match="is int8"):
        register(int8.step_path, "mine", "", models, weights=int8.step_path, releases_dir=releases)
    other = export_model(tiny_net(seed=5), tmp_path / "other" / "model.onnx", name=fp32.card["name"],
                         version="4.0.0")
    with pytest.raises(ModelError, match="not exported from the checkpoint"):
        keep_weights(int8.step_path, other.step_path, releases)
    assert not (models / "mine.onnx").exists() and not releases.exists()

    entry = register(int8.step_path, "mine", "", models, weights=fp32.step_path, releases_dir=releases)
    kept = releases / f"{fp32.card['name']}-4.0.0.fp32.onnx"
    assert entry["precision"] == "int8" and entry["release_weights"]["sha256"] == hashlib.sha256(
        kept.read_bytes()).hexdigest()
    net, _ = import_onnx(kept)  # what training starts from on a fresh clone: the checkpoint's weights, exactly
    state = load_checkpoint(checkpoint)[0].state_dict()
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    # an fp32 model is its own release weights
    assert register(fp32.step_path, "plain", "", models, releases_dir=releases)["release_weights"]["file"] == str(kept)
