"""`deepiso train` end to end on tiny datasets of every layout: steps, validation, checkpoints, exact resume
after a kill, DDP through torchrun, and the configuration file."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from deepiso.realtime import cli
from deepiso.train import testing as T
from deepiso.train.checkpoint import load_checkpoint, read_checkpoint
from deepiso.train.config import ConfigError, TrainConfig
from deepiso.train.loop import train


def _config(tmp_path, data: dict, **extra) -> dict:
    cfg = {
        "model": "tiny-test",
        "data": {"segment_seconds": 0.25, "train_items": 8, "valid_items": 2, "channels": 2, "valid_fraction": 0.34,
                 **data},
        "augment": {"awgn_profiles": 1, "awgn_snr_db": [10.0], "remix": 0.5},
        "loss": {"magnitude": 0.5, "si_sdr": 0.01},
        "optim": {"batch_size": 4, "epochs": 1, "lr": 0.003},
        "out_dir": str(tmp_path / "run"),
        "progress": False,
        "threads": 1,
    }
    for k, v in extra.items():
        if isinstance(v, dict):
            cfg[k] = {**cfg.get(k, {}), **v}
        else:
            cfg[k] = v
    return cfg


LAYOUTS = ["folder", "musdb_stems", "musdb_wav", "medleydb", "sources", "manifest"]


def _dataset(layout, root):
    if layout == "folder":
        return {"kind": "folder", "root": str(T.make_folder_dataset(root, tracks=3))}
    if layout == "musdb_stems":  # every item costs two ffmpeg decodes: fewer, shorter tracks
        return {"kind": "musdb", "root": str(T.make_musdb_stems(root, train=2, test=0, seconds=0.5)),
                "train_items": 4}
    if layout == "musdb_wav":
        return {"kind": "musdb", "is_wav": True, "root": str(T.make_musdb_wav(root, train=3, test=0))}
    if layout == "medleydb":
        return {"kind": "medleydb", "root": str(T.make_medleydb(root, tracks=3))}
    if layout == "sources":
        v, b = T.make_source_folders(root)
        return {"kind": "sources", "voice_dirs": [str(v)], "background_dirs": [str(b)], "valid_fraction": 0.3}
    return {"kind": "manifest", "root": str(T.make_manifest_corpus(root))}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deepiso_train_on_each_layout(tmp_path, layout, capsys):
    cfg = _config(tmp_path, _dataset(layout, tmp_path / "data"))
    cfg["optim"]["batch_size"] = cfg["data"]["train_items"] // 2
    path = tmp_path / ("cfg.yaml" if layout.startswith("m") else "cfg.json")
    TrainConfig.from_dict(cfg).save(path)
    assert cli.main(["train", str(path)]) == 0
    run = tmp_path / "run"
    for name in ("best.pt", "last.pt", "config.json", "history.json", "loss.png", "train_config.json"):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir())
    model, info = load_checkpoint(run / "best.pt")
    assert info["metrics"]["epoch"] == 0 and np.isfinite(info["metrics"]["val_loss"])
    assert info["train_config"]["data"]["kind"] == cfg["data"]["kind"]
    assert json.loads((run / "config.json").read_text())["frame_spec"] == model.spec.to_dict()
    # run the same command with one more epoch: it resumes where it stopped
    assert cli.main(["train", str(path), "--set", "optim.epochs=2"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert history[1]["global_step"] == 4
    assert "resuming from" in capsys.readouterr().err


@pytest.mark.parametrize("carry_state", [0.0, 0.75])
def test_resume_after_kill_matches_uninterrupted(tmp_path, carry_state):
    # with augment.carry_state the LSTM state each row carries from step to step is part of what resumes
    data = _dataset("folder", tmp_path / "data")
    base = _config(tmp_path, {**data, "train_items": 32}, checkpoint_every=1, tensorboard=False,
                   optim={"epochs": 2}, augment={"carry_state": carry_state})
    # uninterrupted reference, in this process
    ref_cfg = TrainConfig.from_dict({**base, "out_dir": str(tmp_path / "ref")})
    ref = train(ref_cfg)
    assert ref["position"]["global_step"] == 16

    cfg_path = TrainConfig.from_dict(base).save(tmp_path / "cfg.json")
    proc = subprocess.Popen([sys.executable, "-m", "deepiso.train", str(cfg_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    last = tmp_path / "run" / "last.pt"
    killed_at = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            try:
                step = json.loads(read_checkpoint(last)["extra"]["position"])["global_step"]
            except Exception:  # replaced while we read it: try again
                step = 0
            if step >= 3:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert killed_at is not None and killed_at < 16, proc.stderr.read().decode()[-2000:]
    assert proc.returncode == -signal.SIGKILL

    saved_step = json.loads(read_checkpoint(last)["extra"]["position"])["global_step"]
    resumed = train(TrainConfig.load(cfg_path))
    assert resumed["position"]["global_step"] == 16
    assert resumed["steps"] == 16 - saved_step  # continued from the checkpoint, not from scratch
    a = read_checkpoint(tmp_path / "ref" / "last.pt")["state_dict"]
    b = read_checkpoint(last)["state_dict"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4)
    carried = read_checkpoint(last)["extra"].get("carry")
    if carry_state:  # (processes, h and c, layers, rows = 4 items x 2 channels x (clean + AWGN copy), hidden)
        assert carried is not None and carried.shape == (1, 2, 2, 16, 16) and carried.abs().amax() > 0
    else:
        assert carried is None
    ha = json.loads((tmp_path / "ref" / "history.json").read_text())
    hb = json.loads((tmp_path / "run" / "history.json").read_text())
    for x, y in zip(ha, hb, strict=True):
        assert abs(x["val_loss"] - y["val_loss"]) < 1e-4


def test_resume_takes_the_learning_rate_of_the_configuration(tmp_path):
    data = _dataset("folder", tmp_path / "data")
    base = TrainConfig.from_dict(_config(tmp_path, {**data, "train_items": 8}, tensorboard=False))
    train(base)
    longer = base.with_overrides(["optim.epochs=2", "optim.lr=0.0005"])
    result = train(longer)
    assert result["steps"] == 2  # resumed: only the second epoch ran
    opt = read_checkpoint(tmp_path / "run" / "last.pt")["extra"]["optimizer"]
    assert [g["lr"] for g in opt["param_groups"]] == [0.0005]


def test_a_phase_from_another_runs_weights_is_told_when_it_would_replay_that_runs_mixtures(tmp_path, capsys):
    data = _dataset("manifest", tmp_path / "data")
    base = TrainConfig.from_dict(_config(tmp_path, data, tensorboard=False))
    train(base)
    capsys.readouterr()
    first = str(tmp_path / "run" / "best.pt")
    again = base.with_overrides([f"out_dir={tmp_path / 'again'}", f"optim.init_from={first}"])
    train(again)
    err = capsys.readouterr().err
    assert "starting from the weights of" in err
    assert "was trained on the mixtures this run draws (seed 0, data.draw 0)" in err
    for change in ("data.draw=1", "seed=5", "data.train_items=4"):
        other = again.with_overrides([f"out_dir={tmp_path / change}", change])
        train(other)
        err = capsys.readouterr().err
        assert "starting from the weights of" in err and "its epochs come again" not in err, change


def test_a_checkpoint_that_predates_a_data_setting_drew_with_its_default():
    from deepiso.train.loop import same_draw

    cfg = TrainConfig.from_dict({"data": {"kind": "manifest", "root": "corpus"}})
    trained = {"seed": cfg.seed, "data": {k: v for k, v in dataclasses.asdict(cfg.data).items()
                                          if k not in ("draw", "speed", "speed_factor", "quiet")}}
    assert same_draw(cfg, trained)  # written before those settings existed: they were off
    for change in ("data.speed=0.5", "data.draw=1", "data.quiet=0.25", "seed=1"):
        assert not same_draw(cfg.with_overrides([change]), trained), change
    assert same_draw(cfg.with_overrides(["data.valid_items=8", "data.num_workers=2"]), trained)


def test_ddp_two_cpu_processes_with_torchrun(tmp_path):
    data = _dataset("folder", tmp_path / "data")
    cfg_path = TrainConfig.from_dict(_config(tmp_path, data, tensorboard=False, augment={"carry_state": 0.5})
                                     ).save(tmp_path / "cfg.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "deepiso.train", str(cfg_path)],
                         capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["position"]["global_step"] == 1  # 8 items / 2 ranks / batch 4
    _, info = load_checkpoint(tmp_path / "run" / "best.pt")
    assert info["train_config"]["world_size"] == 2
    assert np.isfinite(info["metrics"]["val_loss"])
    # each process's carried state is gathered into the resumable checkpoint: (processes, h and c, ...)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["extra"]["carry"].shape == (2, 2, 2, 16, 16)


def test_config_files_and_errors(tmp_path, capsys):
    cfg = TrainConfig.from_dict({"model": "seed", "optim": {"lr": 1e-4}, "augment": {"loopback": 0.2}})
    for name in ("c.json", "c.yaml"):
        assert TrainConfig.load(cfg.save(tmp_path / name)) == cfg
    assert cfg.with_overrides(["optim.batch_size=3", "data.snr_db=[0, 5]"]).optim.batch_size == 3
    with pytest.raises(ConfigError, match="unknown configuration field\\(s\\): optim.lrr"):
        TrainConfig.from_dict({"optim": {"lrr": 1}})
    with pytest.raises(ConfigError, match="optim.batch_size must be an integer"):
        TrainConfig.from_dict({"optim": {"batch_size": "big"}})
    with pytest.raises(ConfigError, match="unknown field"):
        cfg.with_overrides(["optim.nope=1"])
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        TrainConfig.load(tmp_path / "bad.yaml")
    # the command reports bad input with the file's name and exit status 2
    TrainConfig.from_dict({"model": "tiny-test", "data": {"kind": "folder", "root": str(tmp_path / "nodata")},
                           "out_dir": str(tmp_path / "run")}).save(tmp_path / "nodata.json")
    assert cli.main(["train", str(tmp_path / "nodata.json")]) == 2
    assert "nodata: no such dataset folder" in capsys.readouterr().err
    TrainConfig.from_dict({"model": "nope"}).save(tmp_path / "nomodel.json")
    assert cli.main(["train", str(tmp_path / "nomodel.json")]) == 2
    assert "unknown model configuration 'nope'" in capsys.readouterr().err


def test_validation_mixtures_never_loop_back(tmp_path):
    # Loopback is a training augmentation; a voice-only validation item would score the
    # mixture at a near-infinite SI-SDR and wreck the reported improvement.
    from deepiso.train.loop import build_datasets
    from deepiso.train.model import get_config

    data = {**_dataset("manifest", tmp_path), "valid_items": 40, "train_items": 40, "channels": 1}
    cfg = TrainConfig.from_dict(_config(tmp_path, data, augment={"loopback": 0.45}))
    train_ds, valid_ds, _ = build_datasets(cfg, get_config("tiny-test")[0])

    def kinds(dataset):
        out = set()
        for i in range(len(dataset)):
            item = dataset[i]
            voice, background = item["vocals"], item["mixture"] - item["vocals"]
            has_bg = background.abs().max() > 1e-7
            out.add(("voice" if voice.abs().max() > 0 else "") + ("+background" if has_bg else ""))
        return out
    assert "voice" not in kinds(valid_ds)  # no voice-only item: every validation mixture has a background
    assert "voice+background" in kinds(valid_ds)
    assert "voice" in kinds(train_ds)  # training does loop back


def test_source_weights_reweight_the_training_split_and_refuse_unknown_names(tmp_path):
    from deepiso.train.loop import build_datasets, resolve_model

    root = T.make_manifest_corpus(tmp_path / "corpus")
    base = TrainConfig.from_dict(_config(tmp_path, {"kind": "manifest", "root": str(root)}))
    spec, _ = resolve_model(base)
    plain, _, _ = build_datasets(base, spec)
    cfg = base.with_overrides(["data.source_weights.synthetic-voice=3"])
    assert cfg.data.source_weights == {"synthetic-voice": 3}
    weighted, valid, _ = build_datasets(cfg, spec)
    assert [f.weight for f in weighted.voices] == [3 * f.weight for f in plain.voices]
    assert [f.weight for f in weighted.backgrounds] == [f.weight for f in plain.backgrounds]
    assert all(f.weight == 1.0 for f in valid.voices)  # validation keeps the corpus's own weights
    with pytest.raises(ConfigError, match=r"unknown sources \['synthetic-vioce'\]; the corpus has"):
        build_datasets(base.with_overrides(["data.source_weights.synthetic-vioce=3"]), spec)
    with pytest.raises(ConfigError, match="source_weights.synthetic-voice must be a number >= 0"):
        build_datasets(base.with_overrides(["data.source_weights.synthetic-voice=-1"]), spec)


@pytest.mark.parametrize("name", ["default", "seed"])
def test_shipped_recipes_load_and_name_their_model(name):
    from deepiso.train.loop import resolve_model

    cfg = TrainConfig.load(T.__file__.replace("testing.py", f"configs/{name}.yaml"))
    assert cfg.model == name and cfg.data.kind == "manifest"
    spec, mcfg = resolve_model(cfg)
    assert mcfg.name == name
    if name == "default":  # the shipped model's recipe: causal, magnitude + SI-SDR, the norms on
        assert spec.causal and cfg.loss.si_sdr > 0 and cfg.loss.contrastive == 0 and mcfg.norm == "layer"


def test_validation_on_a_saved_benchmark_set_takes_each_item_once_and_whole(tmp_path):
    from deepiso.train import datasets as ds
    from deepiso.train.loop import build_datasets
    from deepiso.train.losses import si_sdr
    from deepiso.train.model import get_config

    spec = get_config("tiny-test")[0]
    bench = T.make_folder_dataset(tmp_path / "bench", tracks=3, seconds=1.5, rate=22_050)  # another rate: resampled
    data = {**_dataset("manifest", tmp_path / "corpus"), "channels": 1, "valid_set": str(bench)}
    cfg = TrainConfig.from_dict(_config(tmp_path, data))
    train_ds, valid_ds, summary = build_datasets(cfg, spec)
    assert len(valid_ds) == 3 and summary["valid_set"] == {"root": str(bench), "items": 3, "seconds": 1.5}
    tracks = ds.folder_tracks(bench)
    for i, track in enumerate(tracks):
        mix, voc = ds.read_segment(track, 0.0, int(1.5 * spec.sample_rate), spec.sample_rate, 1)
        np.testing.assert_array_equal(valid_ds[i]["mixture"].numpy(), mix)
        np.testing.assert_array_equal(valid_ds[i]["vocals"].numpy(), voc)
    plain, _, _ = build_datasets(TrainConfig.from_dict(_config(tmp_path, {**data, "valid_set": ""})), spec)
    assert [plain[i]["mixture"].shape for i in range(2)] == [train_ds[i]["mixture"].shape for i in range(2)]
    # a run validates on them: its validation's mixture SI-SDR (estimate minus improvement) is theirs
    cfg = TrainConfig.from_dict(_config(tmp_path, data, optim={"batch_size": 2}))
    train(cfg)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    mixture_db = float(np.mean([float(si_sdr(valid_ds[i]["mixture"], valid_ds[i]["vocals"])[0]) for i in range(3)]))
    assert abs((history[0]["val_si_sdr"] - history[0]["val_si_sdri"]) - mixture_db) < 0.2, (history, mixture_db)
    with pytest.raises(ds.DatasetError, match="no such dataset folder"):
        build_datasets(TrainConfig.from_dict(_config(tmp_path, {**data, "valid_set": str(tmp_path / "nope")})), spec)


def test_the_card_of_a_trained_model_lists_every_training_source_with_its_license_and_minutes(tmp_path):
    from deepiso.export import export_checkpoint

    data = _dataset("manifest", tmp_path / "data")
    cfg = TrainConfig.from_dict(_config(tmp_path, data, tensorboard=False))
    train(cfg)
    card = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "m.onnx").card
    sources = {s["name"]: s for s in card["training_data"]["sources"]}
    assert set(sources) == {"synthetic-voice", "synthetic-background"}
    records = [json.loads(line) for line in (tmp_path / "data" / "manifest.jsonl").read_text().splitlines()]
    for name, s in sources.items():  # the training split only; validation is named in the summary
        minutes = sum(r["duration"] for r in records if r["source"] == name and r["split"] == "train") / 60
        assert s["license"] == "CC0" and s["minutes"] == pytest.approx(minutes, abs=0.01)
    assert "validation sources: synthetic-background, synthetic-voice" in card["training_data"]["summary"]
