"""The built-in demo data: virtual SD-1 against its oracle, its documented behaviour, the guitar, the files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from sd1job import cli
from sd1job.audio import decode_wav, estimate_latency
from sd1job.config import config_from_mapping
from sd1job.layout import SYNTH_INFO, riff_dry_key, riff_wet_key, synth_info_key
from sd1job.store import LocalStore
from sd1job.synth import capture, guitar, pedal
from sd1job.synth.score import Score

RATE = 44100
# The bounds the README states for the virtual pedal (its measured figures sit below them).
SOLVER_ESR_BOUND = 1e-9  # fast solver against the Newton-Raphson reference
ALIASING_BOUND_DB = -70.0  # a 2.8 kHz sine at 8x oversampling


def esr(output: np.ndarray, target: np.ndarray) -> float:
    return float(np.sum((output - target) ** 2) / np.sum(target**2))


def sine(freq: float, seconds: float, amplitude: float, rate: int = RATE) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


def harmonic_levels(y: np.ndarray, freq: float, count: int, rate: int = RATE) -> np.ndarray:
    """Amplitude of harmonics 1..count of a steady signal holding a whole number of cycles."""
    spectrum = np.abs(np.fft.rfft(y)) / len(y)
    bin_hz = rate / len(y)
    return np.array([spectrum[round(k * freq / bin_hz)] for k in range(1, count + 1)])


@pytest.fixture(scope="module")
def guitar_excerpt() -> np.ndarray:
    """0.3 s of hard picking (a power chord, then a bent note): real clipping material."""
    score = Score(np.random.default_rng(7), bpm=150).at(0.01)
    score.power(0, 3, 0.25, velocity=0.95).note(2, 7, 0.5, velocity=0.6, bend=1.0)
    return score.render(RATE, 0.3)


@pytest.mark.parametrize("drive", [0.5, 1.0])
def test_fast_solver_matches_newton_reference(guitar_excerpt: np.ndarray, drive: float) -> None:
    knobs = pedal.Knobs(drive=drive)
    fast = pedal.VirtualSD1(knobs).process(guitar_excerpt)
    reference = pedal.VirtualSD1(knobs, solver="reference").process(guitar_excerpt)
    assert esr(fast, reference) <= SOLVER_ESR_BOUND
    # and the material really drives the diodes: the clipping stage is far from linear
    stage = pedal.VirtualSD1(knobs)
    linear = stage.gain_leg_current(guitar_excerpt)[1] * stage.rf
    assert np.max(np.abs(linear)) > 3 * np.max(np.abs(stage.clipping_stage(guitar_excerpt)))


def test_chunked_processing_equals_one_pass() -> None:
    x = np.random.default_rng(1).standard_normal(pedal.CHUNK * 2 + 1000) * 0.05
    ped = pedal.VirtualSD1(pedal.Knobs(drive=1.0))
    current = ped.gain_leg_current(x)[1]
    np.testing.assert_allclose(ped.diode_voltage(current), ped._clip_chunk(current), rtol=0, atol=1e-12)


def test_sd1_diodes_make_even_harmonics_symmetric_ones_do_not() -> None:
    x = sine(200.0, 1.0, 0.1)
    steady = slice(RATE // 2, RATE)  # 100 whole cycles after the couplings settle
    sd1 = harmonic_levels(pedal.process(x, RATE)[steady], 200.0, 4)
    ts = harmonic_levels(pedal.process(x, RATE, circuit=pedal.TUBE_SCREAMER_CLIPPING)[steady], 200.0, 4)
    assert 20 * np.log10(sd1[1] / sd1[0]) > -30  # second harmonic present
    assert 20 * np.log10(ts[1] / ts[0]) < -90  # absent: only rounding
    assert 20 * np.log10(ts[2] / ts[0]) > -40  # while the odd ones are there


def test_gain_rises_with_drive(guitar_excerpt: np.ndarray) -> None:
    quiet = guitar_excerpt * 0.2
    rms = [np.sqrt(np.mean(pedal.process(quiet, RATE, pedal.Knobs(drive=d)) ** 2)) for d in (0.0, 0.5, 1.0)]
    assert 20 * np.log10(rms[1] / rms[0]) > 1.0
    assert 20 * np.log10(rms[2] / rms[1]) > 1.0
    assert pedal.high_frequency_gain(0.0) == pytest.approx(9.0, rel=0.01)
    assert pedal.high_frequency_gain(1.0) == pytest.approx(221.8, rel=0.01)


@pytest.mark.parametrize(("tone", "at_1k", "at_5k"), [(0.0, -8.0, -12.0), (0.5, -1.5, -4.2), (1.0, 4.6, 5.8)])
def test_tone_stage_matches_documented_response(tone: float, at_1k: float, at_5k: float) -> None:
    response = pedal.tone_response_db(tone, np.array([1000.0, 5000.0]))
    np.testing.assert_allclose(response, [at_1k, at_5k], atol=0.5)


def test_tone_knob_brightens_the_output() -> None:
    noise = np.random.default_rng(2).standard_normal(RATE // 2) * 0.01
    freqs = np.fft.rfftfreq(len(noise), 1 / RATE)
    balance = []
    for tone in (0.0, 0.5, 1.0):
        power = np.abs(np.fft.rfft(pedal.process(noise, RATE, pedal.Knobs(tone=tone)))) ** 2
        balance.append(power[freqs > 3000].sum() / power[(freqs > 50) & (freqs < 300)].sum())
    assert balance[0] < balance[1] < balance[2]
    assert balance[2] / balance[0] > 10  # over 10 dB of tilt across the knob (documented: 18 dB at 5 kHz)


def aliasing_db(oversample: int) -> float:
    """Energy below 20 kHz off the harmonics of a 2.8 kHz sine at noon, relative to the total."""
    x = sine(2800.0, 1.5, 0.1)
    y = pedal.VirtualSD1(oversample=oversample).process(x)[RATE // 2 : RATE // 2 + RATE]  # 1 s: 1 Hz bins
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.arange(len(power))
    harmonic = (freqs % 2800 <= 2) | (freqs % 2800 >= 2798)
    band = freqs < 20000
    return float(10 * np.log10(power[band & ~harmonic].sum() / power[band].sum()))


def test_aliasing_below_the_readme_bound_at_8x() -> None:
    assert aliasing_db(8) < ALIASING_BOUND_DB
    assert aliasing_db(1) > -40  # the measure does see aliasing when there is no oversampling


def test_knobs_are_checked() -> None:
    with pytest.raises(ValueError, match="drive"):
        pedal.Knobs(drive=1.5)


def test_strings_are_in_tune_and_at_di_level() -> None:
    note = guitar.render_pluck(
        guitar.Pluck(0.0, string=1, fret=0, velocity=0.6), guitar.Guitar(), RATE, np.random.default_rng(3)
    )
    segment = note[RATE // 4 : RATE // 4 + 4 * RATE // 2]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), 16 * len(segment)))
    freqs = np.fft.rfftfreq(16 * len(segment), 1 / RATE)
    near = (freqs > 100) & (freqs < 120)
    measured = freqs[near][np.argmax(spectrum[near])]
    assert abs(1200 * np.log2(measured / 110.0)) < 3
    assert 0.01 < np.max(np.abs(note)) < 0.2  # a picked note: tens of millivolts


def test_score_power_chords_and_damping() -> None:
    score = Score(np.random.default_rng(0), timing_jitter=0.0, velocity_jitter=0.0)
    score.power(2, 5, 1.0, ring=True)  # D string: fifth on G, octave on B (one fret up: major third G-B)
    midi = [score.guitar.tuning[p.string] + p.fret for p in score.plucks]
    assert [m - midi[0] for m in midi] == [0, 7, 12]
    score.note(2, 7, 1.0)
    assert score.plucks[0].stop == pytest.approx(score.plucks[-1].start)  # the new note damped the old one
    assert score.plucks[1].stop is None  # the other strings ring on


def small_config(tmp_path):  # type: ignore[no-untyped-def]
    return config_from_mapping({"store": str(tmp_path)})


def all_keys(config) -> list[str]:  # type: ignore[no-untyped-def]
    keys = [config.recordings.train.dry, config.recordings.train.wet]
    for riff in config.recordings.riffs:
        keys += [riff_dry_key(config.recordings.test_dir, riff), riff_wet_key(config.recordings.test_dir, riff)]
    return keys


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("demo")
    config = small_config(root)
    store = LocalStore(root)
    info = capture.write_demo_recordings(store, config, seconds=8, riff_seconds=1)
    return store, config, info


def test_demo_files_load_like_the_data_stage_reads_them(demo_store) -> None:  # type: ignore[no-untyped-def]
    store, config, info = demo_store
    rate = config.recordings.sample_rate
    peaks = []
    for dry_key, wet_key in zip(all_keys(config)[::2], all_keys(config)[1::2], strict=True):
        dry = decode_wav(store.read_bytes(dry_key), dry_key, expected_rate=rate)
        wet = decode_wav(store.read_bytes(wet_key), wet_key, expected_rate=rate)
        assert dry.subtype == wet.subtype == "PCM_24"
        assert len(dry.samples) == len(wet.samples)
        assert 0.02 < np.max(np.abs(dry.samples)) <= capture.DRY_PEAK_MAX
        peaks.append(float(np.max(np.abs(wet.samples))))
    assert max(peaks) == pytest.approx(capture.WET_PEAK, abs=1e-4)  # one gain: the loudest file at -3 dBFS
    train = decode_wav(store.read_bytes(config.recordings.train.dry), "dry", rate)
    assert train.seconds == pytest.approx(8.0)
    wet = decode_wav(store.read_bytes(config.recordings.train.wet), "wet", rate)
    assert estimate_latency(train.samples, wet.samples)[0] == 0  # the pedal adds no delay
    recorded = json.loads(store.read_text(SYNTH_INFO))
    assert recorded == info
    assert recorded["settings"]["knobs"] == {"drive": 0.5, "tone": 0.5, "level": 0.5}
    assert [s["name"] for s in recorded["train_sections"]][-1] == "validation repeat"


def test_demo_is_deterministic_and_seeded(demo_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store, config, _ = demo_store
    again = LocalStore(tmp_path / "again")
    capture.write_demo_recordings(again, config, seconds=8, riff_seconds=1)
    for key in [*all_keys(config), SYNTH_INFO]:
        assert again.read_bytes(key) == store.read_bytes(key), key
    other = LocalStore(tmp_path / "other")
    capture.write_demo_recordings(other, config, seconds=8, riff_seconds=1, seed=26)
    assert other.read_bytes(config.recordings.train.dry) != store.read_bytes(config.recordings.train.dry)


def test_validation_phrase_is_repeated_exactly() -> None:
    dry, sections = capture.training_dry(10.0, RATE, seed=5)
    spans = {s["name"]: s for s in sections}
    first, last = spans["validation"], spans["validation repeat"]
    a = dry[round(first["start"] * RATE) :][: round(first["seconds"] * RATE)]
    b = dry[round(last["start"] * RATE) :][: round(last["seconds"] * RATE)]
    assert len(dry) == 10 * RATE and np.array_equal(a, b) and np.max(np.abs(a)) > 0.01


def test_existing_recordings_are_skipped_refused_or_forced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = small_config(tmp_path)
    store = LocalStore(tmp_path)
    capture.write_demo_recordings(store, config, seconds=2, riff_seconds=0.5)
    stamp = (tmp_path / config.recordings.train.wet).stat().st_mtime_ns
    capture.write_demo_recordings(store, config, seconds=2, riff_seconds=0.5)  # same settings: nothing to do
    assert (tmp_path / config.recordings.train.wet).stat().st_mtime_ns == stamp
    with pytest.raises(capture.SynthError, match=r"other settings.*--force"):
        capture.write_demo_recordings(store, config, seconds=2, riff_seconds=0.5, seed=3)
    info = capture.write_demo_recordings(store, config, seconds=2, riff_seconds=0.5, seed=3, force=True)
    assert info["settings"]["seed"] == 3

    mine = LocalStore(tmp_path / "mine")
    mine.write_bytes(config.recordings.train.dry, b"my own recording")
    with pytest.raises(capture.SynthError, match="not written by synth"):
        capture.write_demo_recordings(mine, config, seconds=2, riff_seconds=0.5)
    assert mine.read_bytes(config.recordings.train.dry) == b"my own recording"


def test_synth_command(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "store"
    args = ["synth", "--store", str(store), "--seconds", "2", "--riff-seconds", "0.5", "--drive", "1", "-q"]
    assert cli.main(args) == 0
    info = json.loads((store / SYNTH_INFO).read_text())
    assert info["settings"]["knobs"]["drive"] == 1.0
    assert info["settings"]["seconds"] == 2.0
    assert cli.main(["synth", "--store", str(store), "--seconds", "1", "-q"]) == cli.EXIT_USER_ERROR
    assert "--seconds must be at least" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["synth", "--tone", "2"])


def test_synth_writes_each_recording_set_at_its_drive(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "store"
    sets = {
        name: {"train": {"dry": f"sets/{name}/dry.wav", "wet": f"sets/{name}/wet.wav"}, "test_dir": f"sets/{name}/test"}
        for name in ("Low", "High")
    }
    sets["Low"]["demo_drive"], sets["High"]["demo_drive"] = 0.2, 0.8
    config_file = tmp_path / "sets.yaml"
    config_file.write_text(yaml.safe_dump({"store": str(store), "recordings": {"sets": sets, "riffs": ["battery"]}}))
    base = ["synth", "--config", str(config_file), "--seconds", "2", "--riff-seconds", "0.5", "-q"]
    assert cli.main([*base, "--set", "Low"]) == 0  # one set, at its demo_drive
    assert not (store / synth_info_key("High")).exists()
    assert cli.main(base) == 0  # every set: Low already there (skipped), High at its demo_drive
    for name, drive in (("Low", 0.2), ("High", 0.8)):
        info = json.loads((store / synth_info_key(name)).read_text())
        assert info["settings"]["knobs"]["drive"] == drive
        assert sorted(info["files"]) == sorted(
            [
                f"sets/{name}/dry.wav",
                f"sets/{name}/wet.wav",
                *(f"sets/{name}/test/{d}" for d in ("Dry/d_battery.wav", "Wet/w_battery.wav")),
            ]
        )
    assert not (store / SYNTH_INFO).exists()  # the default recordings were not written
    rate = 44100
    low, high = (decode_wav((store / f"sets/{n}/wet.wav").read_bytes(), n, rate).samples for n in ("Low", "High"))
    dry = decode_wav((store / "sets/Low/dry.wav").read_bytes(), "dry", rate).samples
    assert np.array_equal(dry, decode_wav((store / "sets/High/dry.wav").read_bytes(), "dry", rate).samples)
    assert not np.allclose(low, high, atol=1e-3)  # the same guitar through the pedal at two drives
    assert cli.main([*base, "--set", "Low", "--drive", "0.9"]) == cli.EXIT_USER_ERROR  # --drive wins: not these
    assert "other settings exist" in capsys.readouterr().err
    assert cli.main([*base, "--set", "Mid"]) == cli.EXIT_USER_ERROR
    assert "recordings.sets has no set 'Mid' (High, Low)" in capsys.readouterr().err
