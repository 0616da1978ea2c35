"""The corpus decoded once: training items read from the cache are the items read from the files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from deepiso.train import datasets as ds
from deepiso.train import testing as T
from deepiso.train.pcm_cache import CacheError, PcmCache, build_cache, cache_folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A manifest corpus at 22.05 kHz whose files are all 16-bit FLAC, as ``deepiso corpus build`` writes them."""
    root = T.make_manifest_corpus(tmp_path_factory.mktemp("corpus"), seconds=1.5)
    lines = []
    for line in (root / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        path = root / rec["path"]
        if path.suffix == ".wav":
            audio, rate = sf.read(path, dtype="float32")
            path.unlink()
            path = path.with_suffix(".flac")
            sf.write(path, np.clip(audio, -1, 1), rate, subtype="PCM_16")
            rec["path"] = str(path.relative_to(root))
        lines.append(json.dumps(rec))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _items(files, rate, pcm=None, train=True):
    mixer = ds.SourceMixDataset(files, rate=rate, samples=rate, items=12, seed=4, train=train, loopback=0.2,
                                quiet=0.5, speed=0.5, pcm=pcm)
    return [mixer[i] for i in range(len(mixer))]


@pytest.mark.parametrize("rate, exact", [(22_050, True), (16_000, False)])
def test_items_from_the_cache_are_the_items_from_the_files(corpus, rate, exact):
    files = ds.manifest_sources(corpus)
    folder = build_cache([f.path for f in files], corpus, rate, 1)
    assert folder == cache_folder(corpus, rate, 1) and not folder.with_name(folder.name + ".part").exists()
    pcm = PcmCache(folder, corpus)
    for train in (True, False):
        split = [f for f in files if f.split == ("train" if train else "valid")]
        for a, b in zip(_items(split, rate, train=train), _items(split, rate, pcm, train=train), strict=True):
            for key in ("mixture", "vocals"):
                if exact:  # 16-bit files at the mixing rate: the same samples
                    assert np.array_equal(a[key].numpy(), b[key].numpy()), key
                else:  # resampled once into the cache: the same to within 16-bit rounding
                    np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-4)


def test_a_cache_that_does_not_fit_the_training_is_refused_with_the_reason(corpus, tmp_path):
    files = ds.manifest_sources(corpus)
    folder = build_cache([f.path for f in files[:-1]], corpus, 22_050, 1, tmp_path / "partial")
    pcm = PcmCache(folder, corpus)
    with pytest.raises(ds.DatasetError, match="not in the cache"):
        _items(files, 22_050, pcm)
    with pytest.raises(ds.DatasetError, match="holds 1 channel"):
        ds.SourceMixDataset(files[:-1], rate=16_000, samples=16_000, items=2, pcm=pcm)
    with pytest.raises(CacheError, match="no cache here"):
        PcmCache(tmp_path / "nowhere", corpus)
    (folder / "pcm16.bin").write_bytes(b"\0\0")  # cut short
    with pytest.raises(CacheError, match="build the cache again"):
        PcmCache(folder, corpus)


def test_the_cli_builds_the_cache_and_training_uses_it(corpus, tmp_path):
    run = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "corpus", "cache", str(corpus),
                          "--rate", "16000", "-o", str(tmp_path / "c")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "data.pcm_cache=" in run.stdout and (tmp_path / "c" / "pcm16.bin").stat().st_size > 0
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert index["rate"] == 16_000 and index["channels"] == 1 and len(index["files"]) == 8
    run = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "corpus", "cache", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no such corpus manifest" in run.stderr


def test_training_reads_the_cache_the_configuration_names(corpus):
    from deepiso.train.config import TrainConfig
    from deepiso.train.loop import ConfigError, build_datasets
    from deepiso.train.model import get_config

    spec, _ = get_config("tiny-test")
    build_cache([f.path for f in ds.manifest_sources(corpus)], corpus, spec.sample_rate, 1)
    cfg = TrainConfig.from_dict({"model": "tiny-test", "data": {"kind": "manifest", "root": str(corpus),
                                                                "pcm_cache": "auto", "channels": 1}})
    train, valid, summary = build_datasets(cfg, spec)
    assert train.pcm is not None and valid.pcm is train.pcm
    assert summary["pcm_cache"] == str(cache_folder(corpus, spec.sample_rate, 1))
    plain = TrainConfig.from_dict({"model": "tiny-test", "data": {"kind": "manifest", "root": str(corpus),
                                                                  "channels": 1}})
    # resampled to the model rate once, in the cache: the items to within 16-bit rounding
    np.testing.assert_allclose(train[3]["mixture"].numpy(), build_datasets(plain, spec)[0][3]["mixture"].numpy(),
                               atol=1e-4)
    with pytest.raises(ConfigError, match="needs data.kind 'manifest'"):
        build_datasets(TrainConfig.from_dict({"model": "tiny-test", "data": {"kind": "folder", "root": str(corpus),
                                                                             "pcm_cache": "auto"}}), spec)
