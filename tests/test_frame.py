"""The frame contract: JSON round trip, derived sizes, latency and every validation error."""

import json

import pytest

from deepiso.realtime.frame import FORMAT_VERSION, FrameSpec, FrameSpecError


def test_json_round_trip_keeps_every_field():
    spec = FrameSpec(sample_rate=48_000, n_fft=2048, hop=512, window="sqrt_hann", past_frames=3,
                     future_frames=1, output="complex_mask")
    again = FrameSpec.from_json(spec.to_json())
    assert again == spec
    # the full synthesis is written in the first version's form, which every release reads
    assert json.loads(spec.to_json())["format_version"] == 1 and "synthesis_length" not in spec.to_dict()
    low = FrameSpec(n_fft=2048, hop=512, future_frames=1, synthesis_length=1024)
    assert FrameSpec.from_json(low.to_json()) == low and low.synthesis_span == 1024
    assert json.loads(low.to_json())["format_version"] == FORMAT_VERSION == 2
    assert FrameSpec.from_dict({**spec.to_dict(), "synthesis_length": 0}) == spec


def test_derived_sizes_follow_the_report_layout():
    spec = FrameSpec(n_fft=1024, hop=256, past_frames=2, future_frames=2)
    assert spec.n_bins == 513
    assert spec.feature_size == 1026  # real + imag doubled
    assert spec.context == 5
    assert spec.input_size == 5 * 1026
    assert spec.output_size == 1026
    assert FrameSpec(output="ratio_mask").output_size == 513
    assert not spec.causal and FrameSpec(future_frames=0).causal


def test_latency_in_samples_and_ms():
    spec = FrameSpec(sample_rate=48_000, n_fft=960, hop=480, future_frames=1)
    assert spec.latency_samples(480) == 480 + 480
    assert spec.latency_ms(480) == pytest.approx(20.0)
    with pytest.raises(FrameSpecError, match="block_size"):
        spec.latency_samples(0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"sample_rate": 100}, "sample_rate 100 Hz is outside"),
        ({"sample_rate": 10_000_000}, "outside"),
        ({"sample_rate": 44_100.0}, "sample_rate must be an integer"),
        ({"n_fft": 1023}, "n_fft must be an even number"),
        ({"n_fft": 8}, "n_fft must be an even number"),
        ({"hop": 0}, "hop must be >= 1"),
        ({"n_fft": 512, "hop": 1024}, "larger than n_fft"),
        ({"window": "kaiser"}, "unknown window"),
        ({"features": "magnitude"}, "unknown feature layout"),
        ({"output": "waveform"}, "unknown output kind"),
        ({"past_frames": -1}, "must be >= 0"),
        ({"past_frames": 70}, "more than the 64 supported"),
        ({"n_fft": 512, "hop": 512, "window": "hann"}, "does not overlap enough"),
        ({"past_frames": True}, "must be an integer"),
    ],
)
def test_impossible_settings_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(FrameSpecError, match=message):
        FrameSpec(**kwargs)


def test_rect_window_without_overlap_is_valid():
    FrameSpec(n_fft=512, hop=512, window="rect")


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"n_fft": 1024}', "no format_version"),
        ('{"format_version": 99, "n_fft": 1024}', "newer than this deepiso understands"),
        ('{"format_version": "1"}', "is not valid"),
        ('{"format_version": 1, "n_fft": 1024, "colour": "red"}', "unknown fields: colour"),
        ('{"format_version": 1, "hop": 4096}', "larger than n_fft"),
    ],
)
def test_bad_serialised_specs_are_refused(text, message):
    with pytest.raises(FrameSpecError, match=message):
        FrameSpec.from_json(text)
