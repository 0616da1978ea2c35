"""Audio files: formats, rates, channels, and clear errors for files that cannot work."""

import struct
import subprocess

import numpy as np
import pytest
import soundfile as sf

from deepiso.realtime.audio_io import AudioFileError, audio_info, read_audio, write_audio


def _tone(n=4800, channels=2, rate=48_000):
    t = np.arange(n) / rate
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)], axis=1)
    return x[:, :channels].astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_write_then_read_round_trip(tmp_path, suffix):
    x = _tone()
    path = write_audio(tmp_path / f"a{suffix}", x, 48_000)
    y, rate = read_audio(path)
    assert rate == 48_000 and y.dtype == np.float32 and y.shape[1] == 2
    tol = {".wav": 0, ".flac": 1e-6, ".ogg": 0.05}[suffix]
    if suffix == ".ogg":  # lossy: compare energy, not samples
        assert abs(np.sqrt(np.mean(y ** 2)) - np.sqrt(np.mean(x ** 2))) < tol
    else:
        np.testing.assert_allclose(y, x, atol=tol)


def test_read_resamples_and_fixes_channels(tmp_path):
    x = _tone(48_000, 2)
    path = write_audio(tmp_path / "a.wav", x, 48_000)
    mono, rate = read_audio(path, sample_rate=16_000, channels=1)
    assert rate == 16_000 and mono.shape == (16_000, 1)
    np.testing.assert_allclose(np.sqrt(np.mean(mono[1000:-1000] ** 2)), np.sqrt(np.mean(x.mean(1) ** 2)), rtol=0.02)
    stereo, _ = read_audio(write_audio(tmp_path / "m.wav", x[:, :1], 48_000), channels=2)
    np.testing.assert_array_equal(stereo[:, 0], stereo[:, 1])


def test_ffmpeg_decodes_what_libsndfile_cannot(tmp_path):
    src = write_audio(tmp_path / "a.wav", _tone(48_000), 48_000)
    m4a = tmp_path / "a.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "aac", "-b:a", "128k", str(m4a)], check=True)
    y, rate = read_audio(m4a, sample_rate=44_100)
    assert rate == 44_100 and y.shape[1] == 2
    assert abs(y.shape[0] - 44_100) < 3000  # AAC adds priming samples
    assert audio_info(m4a)[:2] == (48_000, 2)


def _wav_header(channels=1, rate=16_000, data_bytes=3200, bits=16):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_bytes))


def test_missing_empty_and_directory_paths(tmp_path):
    with pytest.raises(AudioFileError, match="no such file"):
        read_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioFileError, match="file is empty"):
        read_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioFileError, match="is a directory"):
        read_audio(tmp_path)


def test_truncated_wav_names_the_file(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav_header(data_bytes=32_000) + b"\x00" * 1000)
    with pytest.raises(AudioFileError) as err:
        read_audio(path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)


def test_zero_channel_wav(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(_wav_header(channels=0) + b"\x00" * 3200)
    with pytest.raises(AudioFileError, match="zero channels"):
        read_audio(path)


def test_absurd_rate_wav(tmp_path):
    path = tmp_path / "fast.wav"
    path.write_bytes(_wav_header(rate=50_000_000) + b"\x00" * 3200)
    with pytest.raises(AudioFileError, match="outside"):
        read_audio(path)


def test_header_only_wav_has_no_samples(tmp_path):
    path = tmp_path / "none.wav"
    path.write_bytes(_wav_header(data_bytes=0))
    with pytest.raises(AudioFileError, match="no audio samples"):
        read_audio(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioFileError, match="noise.mp3"):
        read_audio(path)


def test_bad_requests(tmp_path):
    path = write_audio(tmp_path / "a.wav", _tone(), 48_000)
    with pytest.raises(AudioFileError, match="requested sample rate"):
        read_audio(path, sample_rate=10)
    with pytest.raises(AudioFileError, match="channel count"):
        read_audio(path, channels=0)
    with pytest.raises(AudioFileError, match="cannot make 4 channels"):
        read_audio(path, channels=4)


def test_write_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(AudioFileError, match="cannot write .mp3"):
        write_audio(tmp_path / "a.mp3", _tone(), 48_000)
    with pytest.raises(AudioFileError, match="NaN or Inf"):
        write_audio(tmp_path / "a.wav", np.full((10, 1), np.nan, np.float32), 48_000)
    with pytest.raises(AudioFileError, match="outside"):
        write_audio(tmp_path / "a.wav", _tone(), 0)
    with pytest.raises(AudioFileError, match="shape"):
        write_audio(tmp_path / "a.wav", np.zeros((2, 3, 4), np.float32), 48_000)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_flac_is_24_bit_and_clipped(tmp_path):
    x = np.array([[1.5], [-2.0], [0.5]], np.float32)
    path = write_audio(tmp_path / "a.flac", x, 48_000)
    assert sf.info(str(path)).subtype == "PCM_24"
    y, _ = read_audio(path)
    assert y.max() <= 1.0 and y.min() >= -1.0
