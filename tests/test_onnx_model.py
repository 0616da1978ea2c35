"""The engine's model loader: the shipped tiny model runs, and every bad file is refused with ModelError."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tracemalloc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deepiso.realtime import onnx_model
from deepiso.realtime.onnx_model import CARD_FORMAT_VERSION, CARD_KEY, ModelError, load_model, read_card

SHIPPED = onnx_model.MODELS_DIR / "tiny-test.onnx"
SHIPPED_SEQ = onnx_model.MODELS_DIR / "tiny-test.seq.onnx"


def inputs(model, frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((model.batch, frames, model.spec.input_size))).astype(np.float32)


def rewrite_card(src, dst, change) -> None:
    """Copy ``src`` to ``dst`` with its card passed through ``change(card) -> card`` (graph untouched)."""
    model = onnx.load(str(src))
    entry = next(p for p in model.metadata_props if p.key == CARD_KEY)
    entry.value = change(json.loads(entry.value))
    onnx.save(model, str(dst))


# ----------------------------------------------------------------------------- the shipped model


def test_shipped_tiny_test_loads_by_name_and_steps():
    model = load_model("tiny-test", batch=2)
    assert model.card["name"] == "tiny-test" and model.card["graph"] == "step"
    assert model.spec.to_dict() == model.card["frame_spec"]
    assert model.providers == ["CPUExecutionProvider"]  # no GPU here: CPU
    x = inputs(model, 3)
    y0 = model.step(x[:, 0])
    assert y0.shape == (2, model.spec.output_size) and y0.dtype == np.float32
    first = y0.copy()
    y1 = model.step(x[:, 0])
    assert y1 is y0  # the preallocated buffer, overwritten in place
    assert not np.array_equal(first, y1)  # same input, new state: the LSTM carries h/c
    model.reset()
    np.testing.assert_array_equal(model.step(x[:, 0]), first)


def test_step_accepts_the_awareness_ring_layout_and_rejects_wrong_sizes():
    model = load_model("tiny-test", batch=2)
    ring = inputs(model, 1)[:, 0].reshape(2, model.spec.context, model.spec.feature_size)
    flat = model.step(ring).copy()
    model.reset()
    np.testing.assert_array_equal(model.step(ring.reshape(2, -1)), flat)
    with pytest.raises(ValueError, match="input_size"):
        model.step(np.zeros((1, model.spec.input_size), np.float32))
    with pytest.raises(ValueError, match="batch"):
        load_model("tiny-test", batch=0)


def test_step_allocates_nothing_per_call():
    # A wide batch makes one output array (256 x 258 floats = 264 kB) dwarf the
    # few hundred bytes of Python objects a call creates and frees.
    model = load_model("tiny-test", batch=256)
    x = inputs(model, 1)[:, 0]
    for _ in range(50):
        model.step(x)
    out_bytes = model.batch * model.spec.output_size * 4
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(200):
            model.step(x)
        current, peak = tracemalloc.get_traced_memory()
        # the same measurement sees one output-sized numpy array made per call
        tracemalloc.reset_peak()
        base_copy, _ = tracemalloc.get_traced_memory()
        for _ in range(20):
            model.step(x).copy()
        _, peak_copy = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < out_bytes // 4, (peak - base, out_bytes)
    assert current - base < out_bytes // 4  # nothing kept per call either
    assert peak_copy - base_copy >= out_bytes


def test_sequence_graph_equals_steps_and_carries_state():
    model = load_model("tiny-test", batch=2)
    assert model.has_sequence_graph
    x = inputs(model, 120, seed=1)
    stepped = np.stack([model.step(x[:, t]).copy() for t in range(120)], axis=1)
    model.reset()
    first = model.run_sequence(x[:, :50])
    rest = model.run_sequence(x[:, 50:])
    np.testing.assert_allclose(np.concatenate([first, rest], axis=1), stepped, atol=1e-5, rtol=0)
    # after run_sequence, step continues from the same state
    model.reset()
    model.run_sequence(x[:, :60])
    np.testing.assert_allclose(model.step(x[:, 60]), stepped[:, 60], atol=1e-5, rtol=0)
    assert model.run_sequence(x[:, :0]).shape == (2, 0, model.spec.output_size)
    with pytest.raises(ValueError, match="run_sequence"):
        model.run_sequence(x[:1])


def test_without_sequence_file_run_sequence_steps(tmp_path):
    shutil.copyfile(SHIPPED, tmp_path / "tiny-test.onnx")  # step graph alone
    model = load_model(tmp_path / "tiny-test.onnx")
    assert not model.has_sequence_graph
    x = inputs(model, 40)
    y = model.run_sequence(x)
    model.reset()
    np.testing.assert_allclose(y, load_model("tiny-test").run_sequence(x), atol=1e-5, rtol=0)


def test_engine_loader_works_without_torch():
    code = f"""
import sys
sys.modules['torch'] = None
import numpy as np
from deepiso.realtime.onnx_model import load_model
m = load_model('tiny-test', batch=2)
x = np.full((2, 30, m.spec.input_size), 0.01, np.float32)
seq = m.run_sequence(x)
m.reset()
steps = np.stack([m.step(x[:, t]).copy() for t in range(30)], axis=1)
assert np.abs(seq - steps).max() < 1e-5
assert 'torch' not in sys.modules or sys.modules['torch'] is None
print('ok', m.card['name'], {CARD_FORMAT_VERSION})
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok tiny-test")


def test_read_card_of_shipped_model_names_its_sources_and_hash():
    card = read_card("tiny-test")
    assert card["format_version"] == CARD_FORMAT_VERSION
    assert card["training_data"]["sources"] == [] and "random" in card["training_data"]["summary"]
    assert card["sequence_graph"]["file"] == "tiny-test.seq.onnx"
    assert card["weights_sha256"] == onnx_model.read_onnx(SHIPPED).graph_sha256
    assert SHIPPED.stat().st_size + SHIPPED_SEQ.stat().st_size < 400_000


# ----------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"hello, this is a text file\n" * 20, "not an ONNX model"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200), "ONNX"),
    (bytes(range(256)) * 8, "ONNX"),
])
def test_non_onnx_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as err:
        load_model(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_truncated_file_is_refused(tmp_path, fraction):
    data = SHIPPED.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelError, match="truncated|not an ONNX|no graph|weights do not match"):
        load_model(path)


def test_missing_paths_and_unknown_names(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "absent.onnx")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ModelError, match="is a folder"):
        load_model(tmp_path / "dir.onnx")
    with pytest.raises(ModelError, match="neither a model file nor a shipped model.*tiny-test"):
        load_model("no-such-model")


def test_foreign_onnx_without_card_is_refused(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "foreign",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError, match="not a deepiso model"):
        load_model(path)


def test_tampered_weights_are_refused(tmp_path):
    model = onnx.load(str(SHIPPED))
    init = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    weights = numpy_helper.to_array(init).copy()
    weights.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    path = tmp_path / "tampered.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="weights do not match the model card"):
        load_model(path)


def test_newer_card_format_is_refused_with_both_versions(tmp_path):
    path = tmp_path / "newer.onnx"
    rewrite_card(SHIPPED, path, lambda c: json.dumps(dict(c, format_version=CARD_FORMAT_VERSION + 1)))
    with pytest.raises(ModelError, match=f"format_version {CARD_FORMAT_VERSION + 1} is newer.*"
                                         f"\\({CARD_FORMAT_VERSION}\\); upgrade deepiso"):
        load_model(path)


@pytest.mark.parametrize("change, message", [
    (lambda c: "{not json", "not valid JSON"),
    (lambda c: json.dumps([1, 2]), "must be a JSON object"),
    (lambda c: json.dumps({k: v for k, v in c.items() if k != "frame_spec"}), "no 'frame_spec'"),
    (lambda c: json.dumps({k: v for k, v in c.items() if k != "training_data"}), "no 'training_data'"),
    (lambda c: json.dumps(dict(c, frame_spec=dict(c["frame_spec"], hop=4096))), "frame_spec: hop 4096"),
    (lambda c: json.dumps(dict(c, output="ratio_mask")), "disagrees with its frame_spec"),
    (lambda c: json.dumps(dict(c, state={"layers": 2, "hidden": 99})), "state h has shape"),
    (lambda c: json.dumps(dict(c, state={"layers": 0, "hidden": 16})), "state.layers"),
    (lambda c: json.dumps(dict(c, frame_spec=dict(c["frame_spec"], past_frames=5))), "graph features"),
    (lambda c: json.dumps(dict(c, graph="sequence")), "is a sequence graph"),
    (lambda c: json.dumps(dict(c, weights_sha256="abc")), "not a sha256"),
    (lambda c: json.dumps(dict(c, format_version="1")), "wrong type"),
])
def test_bad_cards_are_refused(tmp_path, change, message):
    path = tmp_path / "card.onnx"
    rewrite_card(SHIPPED, path, change)
    with pytest.raises(ModelError, match=message):
        load_model(path)


def test_sequence_graph_of_another_model_is_refused(tmp_path):
    shutil.copyfile(SHIPPED, tmp_path / "tiny-test.onnx")
    shutil.copyfile(SHIPPED, tmp_path / "tiny-test.seq.onnx")  # a step graph posing as the sequence graph
    model = load_model(tmp_path / "tiny-test.onnx")
    with pytest.raises(ModelError, match="is a step graph"):
        model.run_sequence(inputs(model, 5))


def test_shipped_file_is_checked_against_the_registry(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    for path in (SHIPPED, SHIPPED_SEQ):
        shutil.copyfile(path, models / path.name)
    registry = json.loads(onnx_model.REGISTRY_FILE.read_text())
    (models / "registry.json").write_text(json.dumps(registry))
    monkeypatch.setattr(onnx_model, "MODELS_DIR", models)
    monkeypatch.setattr(onnx_model, "REGISTRY_FILE", models / "registry.json")
    assert load_model("tiny-test").card["name"] == "tiny-test"  # intact copy loads
    # Rewriting only the card keeps the weights hash valid: only the registry notices.
    rewrite_card(SHIPPED, models / "tiny-test.onnx", lambda c: json.dumps(dict(c, version="9.9.9")))
    with pytest.raises(ModelError, match="does not match the sha256 in registry.json"):
        load_model("tiny-test")
    entry = registry["models"]["tiny-test"]
    entry["sha256"] = hashlib.sha256((models / "tiny-test.onnx").read_bytes()).hexdigest()
    (models / "registry.json").write_text(json.dumps(registry))
    model = load_model("tiny-test")
    assert model.card["version"] == "9.9.9"
    (models / "tiny-test.seq.onnx").write_bytes(SHIPPED_SEQ.read_bytes()[:-10])
    with pytest.raises(ModelError, match="tiny-test.seq.onnx: shipped model file does not match"):
        model.run_sequence(inputs(model, 3))
    (models / "tiny-test.onnx").unlink()
    with pytest.raises(ModelError, match="shipped model 'tiny-test' is missing from the installation"):
        load_model("tiny-test")
