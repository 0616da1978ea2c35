"""The onset benchmark: phases over a hop, lock-in counting, the 48 kHz round trip, one real run."""

import json

import numpy as np
import pytest

from benchmarks import onset


def test_phases_cover_one_hop_evenly():
    assert onset.phases_of(256, 4) == [0, 64, 128, 192]
    assert onset.phases_of(256, 1000) == list(range(256))  # at most one per sample
    assert onset.phases_of(64, 0) == [0]


class _Scores:
    """An engine whose onsets score as given, by phase."""

    def __init__(self, scores):
        self.scores = scores

    def onset(self, mixture, truth, phase, round_trip=False):
        return self.scores[phase]


def test_a_lock_in_is_an_onset_far_under_the_items_median():
    scores = {0: 5.0, 1: 5.2, 2: 0.1, 3: 4.9, 4: 1.5}
    row = onset.scan(_Scores(scores), None, None, list(scores), margin=3.0)
    assert row["median_db"] == 4.9 and row["min_db"] == 0.1
    assert row["lock_ins"] == 2 and row["lock_in_phases"] == [2, 4]
    assert onset.scan(_Scores(scores), None, None, list(scores), margin=5.0)["lock_ins"] == 0


def test_the_server_round_trip_keeps_length_and_signal():
    rate = 44100
    t = np.arange(rate) / rate
    x = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    y = onset.through_server_rate(x, rate)
    assert y.shape == x.shape and y.dtype == x.dtype
    err = y[2000:-2000] - x[2000:-2000]
    assert 10 * np.log10(np.mean(err ** 2) / np.mean(x ** 2)) < -40


def test_a_run_scores_the_demo_clip_and_set_items(tmp_path, tiny_saved_set):
    folder = tiny_saved_set
    out = tmp_path / "onset.json"
    assert onset.main(["--model", "tiny-test", "--phases", "2", "--set", str(folder), "--items", "2",
                       "--set-phases", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (system,) = result["systems"]
    rows = system["rows"]
    assert set(rows) == {"demo clip", "demo clip via 48 kHz", "set items"}
    assert rows["demo clip"]["onsets"] == 2 and len(rows["demo clip"]["si_sdri_db"]) == 2
    assert rows["set items"]["items"] == 2 and rows["set items"]["onsets"] == 4
    assert system["onsets"] == 8 and system["lock_ins"] == sum(r["lock_ins"] for r in rows.values())
    assert all(np.isfinite(s) for r in rows.values() if "si_sdri_db" in r for s in r["si_sdri_db"])


def test_bad_arguments_and_a_missing_set_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit):
        onset.main(["--phases", "0"])
    assert onset.main(["--model", "tiny-test", "--phases", "1", "--set", str(tmp_path / "nope"),
                       "--out", str(tmp_path / "o.json")]) == 2
    assert "no such evaluation set" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()
