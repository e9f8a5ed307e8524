"""Render one track: an artist's voices playing a generated song, then the album's production.

Synthesis is vectorised per note (wavetable lookup, FM, formant tables built by inverse FFT) and
per track (one FFT pass applies EQ, band limits and the synthetic-IR reverb); there is no
per-sample Python loop. Audio is made at ``synth_rate`` and resampled (soxr) to the album's rate.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy import fft as sfft

from artdb.core.synth.plan import _VOWELS, MODES, PROGRESSIONS

TABLE = 4096
_MASK = TABLE - 1


def midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=float) - 69.0) / 12.0)


def wavetable(amps: np.ndarray, phases: np.ndarray, n_harm: int) -> np.ndarray:
    """One period of the first ``n_harm`` harmonics, scaled to unit RMS."""
    k = max(1, min(n_harm, len(amps)))
    spec = np.zeros(TABLE // 2 + 1, dtype=complex)
    spec[1:k + 1] = amps[:k] * np.exp(1j * phases[:k])
    table = np.fft.irfft(spec, TABLE)
    rms = np.sqrt(np.mean(table**2))
    return (table / max(rms, 1e-12)).astype(np.float32)


def envelope(n: int, sr: int, dur: float, a: float, d: float, s: float, r: float) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sr
    env = np.where(t < a, t / max(a, 1e-4), s + (1 - s) * np.exp(-(t - a) / max(d, 1e-3)))
    if r > 0:
        env = env * np.clip(1.0 - (t - dur) / r, 0.0, 1.0)
    return env.astype(np.float32)


def phase(f0: float, n: int, sr: int, vib_rate: float, vib_depth: float, start: float = 0.0,
          vib_delay: float = 0.0) -> np.ndarray:
    """Cycles elapsed (float) for a note with vibrato; multiply by 2*pi for radians."""
    t = np.arange(n) / sr
    if vib_depth <= 0:
        return start + f0 * t
    depth = vib_depth * (np.clip(t / vib_delay, 0, 1) if vib_delay > 0 else 1.0)
    f = f0 * (1.0 + depth * np.sin(2 * np.pi * vib_rate * t))
    return start + np.cumsum(f) / sr


class Voice:
    """A pitched instrument of one artist (tables cached per harmonic count)."""

    def __init__(self, inst: dict, sr: int):
        self.p, self.sr = inst, sr
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def tables(self, f0: float):
        nh = int(0.45 * self.sr / f0)
        nh = min(nh, len(self.p["harm"]))
        if nh not in self._tables:
            k = np.arange(1, len(self.p["harm"]) + 1)
            bright = wavetable(self.p["harm"], self.p["phases"], nh)
            dull = wavetable(self.p["harm"] * np.exp(-self.p["damp"] * (k - 1)), self.p["phases"], nh)
            self._tables[nh] = (bright, dull)
        return self._tables[nh]

    def note(self, midi: float, dur: float, vel: float, rng) -> np.ndarray:
        p, sr = self.p, self.sr
        f0 = float(midi_hz(midi)) * (1.0 + rng.normal(0, p["detune"]))
        n = int((dur + p["release"]) * sr)
        t = np.arange(n, dtype=np.float32) / sr
        env = envelope(n, sr, dur, p["attack"], p["decay"], p["sustain"], p["release"])
        ph = phase(f0, n, sr, p["vib_rate"], p["vib_depth"], start=rng.random())
        if p["kind"] == "fm":
            index = p["index"] * (p["index_floor"] + (1 - p["index_floor"]) * np.exp(-t / p["index_tau"]))
            two_pi_ph = 2 * np.pi * ph
            y = np.sin(two_pi_ph + index * np.sin(p["ratio"] * two_pi_ph)).astype(np.float32)
        else:
            bright, dull = self.tables(f0)
            idx = (ph * TABLE).astype(np.int64) & _MASK
            mix = np.exp(-t / p["bright_tau"])
            y = dull[idx] + (bright[idx] - dull[idx]) * mix
        return (vel * env) * y


class Singer:
    """A formant voice: a glottal-like harmonic source shaped by vowel resonances (per note)."""

    def __init__(self, sp: dict, sr: int):
        self.p, self.sr = sp, sr
        self._phases = np.zeros(64)

    def note(self, midi: float, dur: float, vel: float, rng) -> np.ndarray:
        p, sr = self.p, self.sr
        f0 = float(midi_hz(midi))
        nh = max(1, min(63, int(0.45 * sr / f0)))
        k = np.arange(1, nh + 1)
        vowel = p["vowels"][int(rng.integers(len(p["vowels"])))]
        formants = np.array(_VOWELS[vowel]) * p["formant_scale"]
        gains = np.array([1.0, 0.6, 0.3])
        fk = k * f0
        shape = (gains[None, :] / (1.0 + ((fk[:, None] - formants[None, :]) / p["bandwidth"]) ** 2)).sum(1)
        amps = k ** (-p["tilt"]) * (0.05 + shape)
        table = wavetable(amps, self._phases, nh)
        n = int((dur + 0.08) * sr)
        env = envelope(n, sr, dur, 0.04, 0.3, 0.8, 0.08)
        ph = phase(f0, n, sr, p["vib_rate"], p["vib_depth"], start=rng.random(), vib_delay=0.25)
        y = table[(ph * TABLE).astype(np.int64) & _MASK]
        if p["breath"] > 0:
            y = y + p["breath"] * rng.standard_normal(n).astype(np.float32)
        return (vel * env) * y


def _bandpass_noise(rng, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    y = np.fft.irfft(spec, n)
    return y / max(np.abs(y).max(), 1e-9)


def drum_kit(kit: dict, sr: int, rng) -> dict[str, np.ndarray]:
    """Kick (swept sine), snare (tone + band noise), hat (high noise), rendered once per track."""
    n = int(0.5 * sr)
    t = np.arange(n) / sr
    f = kit["kick_f0"] + kit["kick_sweep"] * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / kit["kick_decay"])
    snare = (kit["snare_tone"] * np.sin(2 * np.pi * kit["snare_f"] * t) * np.exp(-t / 0.05)
             + _bandpass_noise(rng, n, sr, kit["snare_noise_lo"], 0.45 * sr)
             * np.exp(-t / kit["snare_decay"]))
    hat = (0.5 * _bandpass_noise(rng, n, sr, min(kit["hat_lo"], 0.4 * sr), 0.5 * sr)
           * np.exp(-t / kit["hat_decay"]))
    return {k: v.astype(np.float32) for k, v in (("kick", kick), ("snare", snare), ("hat", hat))}


def _add(buf: np.ndarray, start: int, y: np.ndarray) -> None:
    if start >= len(buf):
        return
    end = min(len(buf), start + len(y))
    buf[start:end] += y[: end - start]


def compose_and_play(artist: dict, seconds: float, sr: int, rng) -> np.ndarray:
    """The dry mix of one song by ``artist`` (melody, chords, bass, drums)."""
    n = int(round(seconds * sr))
    tempo = artist["tempo"] * np.exp(rng.normal(0, 0.03))
    step = 60.0 / tempo / 4.0
    bars = int(np.ceil(seconds / (16 * step))) + 1
    scale = np.array(MODES[artist["mode"]])
    root = 48 + (artist["root"] + artist.get("transpose", 0) + (2 if rng.random() < 0.1 else 0)) % 12
    prog = PROGRESSIONS[artist["progs"][int(rng.integers(len(artist["progs"])))]]
    swing = artist["swing"]

    def onset(bar: int, s: int) -> int:
        return int(((bar * 16 + s) * step + (swing * step if s % 2 else 0.0)) * sr)

    def degree_midi(deg: int, octave_shift: int = 0) -> int:
        return int(root + 12 * (deg // 7 + octave_shift) + scale[deg % 7])

    parts = {r: np.zeros(n + sr, dtype=np.float32) for r in ("lead", "bass", "chords", "drums")}
    lead = Singer(artist["singer"], sr) if artist["singer"] is not None else Voice(artist["lead"], sr)
    bass, chords = Voice(artist["bass"], sr), Voice(artist["chords"], sr)

    # arrangement: per 4-bar section, which parts play
    sections = [{"lead": rng.random() < 0.8, "drums": rng.random() < 0.85, "chords": rng.random() < 0.9}
                for _ in range(bars // 4 + 1)]
    sections[0]["chords"] = True

    # a two-bar motif (steps, degrees), repeated with variation
    motif = []
    deg = int(rng.integers(0, 5))
    for bar in range(2):
        for s in range(16):
            if rng.random() < artist["lead_rhythm"][s]:
                if rng.random() < artist["step_prob"]:
                    deg += int(rng.choice([-1, 1]))
                else:
                    deg += int(rng.choice([-4, -3, -2, 2, 3, 4]))
                deg = int(np.clip(deg, -3, 10))
                motif.append((bar * 16 + s, deg))
    lead_oct = artist["lead_octave"] - 4

    drum_samples = drum_kit(artist["kit"], sr, rng) if artist["drums"] else None
    pattern = {k: rng.random(16) < v for k, v in artist["pattern"].items()} if artist["drums"] else None

    for bar in range(bars):
        sec = sections[bar // 4]
        chord_deg = prog[bar % len(prog)]
        # chords
        if sec["chords"]:
            hits = artist["chord_hits"]
            for i, s in enumerate(hits):
                dur = ((hits[i + 1] if i + 1 < len(hits) else 16) - s) * step
                for voice_deg in (0, 2, 4):
                    m = degree_midi(chord_deg + voice_deg, 1)
                    _add(parts["chords"], onset(bar, s), chords.note(m, dur, 0.3, rng))
        # bass
        on = np.flatnonzero(artist["bass_rhythm"])
        for i, s in enumerate(on):
            dur = ((on[i + 1] if i + 1 < len(on) else 16) - s) * step * 0.9
            m = degree_midi(chord_deg + (4 if rng.random() < 0.15 else 0), -1)
            _add(parts["bass"], onset(bar, int(s)), bass.note(m, dur, 0.8, rng))
        # lead
        if sec["lead"]:
            base = bar % 2
            notes = [(s - base * 16, d) for s, d in motif if s // 16 == base]
            for i, (s, d) in enumerate(notes):
                if rng.random() < 0.15:
                    d += int(rng.choice([-1, 1]))
                nxt = notes[i + 1][0] if i + 1 < len(notes) else 16
                dur = max(1, nxt - s) * step * 0.95
                m = degree_midi(d + (chord_deg if rng.random() < 0.3 else 0) % 2, lead_oct)
                _add(parts["lead"], onset(bar, s), lead.note(m, dur, 0.6, rng))
        # drums
        if drum_samples is not None and sec["drums"]:
            for name, hits in pattern.items():
                fill = bar % 4 == 3 and name == "snare"
                for s in np.flatnonzero(hits | (fill & (rng.random(16) < 0.3))):
                    vel = 0.75 + 0.25 * rng.random()
                    _add(parts["drums"], onset(bar, int(s)), vel * drum_samples[name])

    mix = np.zeros(n, dtype=np.float32)
    for role, buf in parts.items():
        rms = np.sqrt(np.mean(buf[:n] ** 2))
        if rms > 0:
            mix += buf[:n] * (artist["levels"][role] * 0.1 / rms)
    return mix


def produce(x: np.ndarray, prod: dict, sr: int, rng) -> np.ndarray:
    """Album production: EQ tilt, band limits, reverb (one FFT pass), compression, saturation,
    noise floor and loudness."""
    n = len(x)
    ir_len = int(min(prod["reverb_rt60"], 3.0) * sr)
    t = np.arange(ir_len) / sr
    ir = rng.standard_normal(ir_len) * np.exp(-6.9 * t / prod["reverb_rt60"])
    ir[: int(0.01 * sr)] = 0  # pre-delay
    ir *= prod["reverb_wet"] / max(np.sqrt(np.sum(ir**2)), 1e-9)
    nfft = sfft.next_fast_len(n + ir_len, real=True)
    f = np.fft.rfftfreq(nfft, 1 / sr)
    gain = (np.maximum(f, 20.0) / 1000.0) ** (prod["tilt_db_oct"] / 6.02)
    gain /= np.sqrt(1 + (prod["low_cut"] / np.maximum(f, 1.0)) ** 4)
    gain /= np.sqrt(1 + (f / prod["high_cut"]) ** 8)
    spec = sfft.rfft(x, nfft)
    spec *= gain * (1.0 + sfft.rfft(ir, nfft))
    y = sfft.irfft(spec, nfft)[:n]

    # compression: frame RMS -> gain, interpolated to samples
    hop = 256
    frames = np.sqrt(np.mean(np.pad(y, (0, -n % hop)).reshape(-1, hop) ** 2, axis=1) + 1e-12)
    frames = np.convolve(frames, np.ones(8) / 8, mode="same")
    level = 20 * np.log10(frames / (np.sqrt(np.mean(y**2)) + 1e-12))
    g_db = -np.maximum(level - prod["comp_thresh_db"] - 0.0, 0) * (1 - 1 / prod["comp_ratio"])
    y = y * np.interp(np.arange(n), np.arange(len(frames)) * hop + hop / 2, 10 ** (g_db / 20))

    if prod["drive"] > 0.05:
        y = y / (np.abs(y).max() + 1e-9)
        y = np.tanh(prod["drive"] * y) / np.tanh(prod["drive"])
    y = y * (10 ** (prod["loudness_db"] / 20) / (np.sqrt(np.mean(y**2)) + 1e-12))
    y = y + 10 ** (prod["noise_db"] / 20) * rng.standard_normal(n)
    peak = np.abs(y).max()
    if peak > 0.98:
        y *= 0.98 / peak
    fade = min(n // 4, int(0.05 * sr))
    ramp = np.linspace(0, 1, fade)
    y[:fade] *= ramp
    y[n - fade:] *= ramp[::-1]
    return y.astype(np.float32)


def render_track(artist: dict, production: dict, seconds: float, synth_rate: int,
                 sample_rate: int, seed) -> np.ndarray:
    """The delivered mono signal (float32 in [-1, 1]) at ``sample_rate``."""
    rng = np.random.default_rng(seed)
    dry = compose_and_play(artist, seconds, synth_rate, rng)
    wet = produce(dry, production, synth_rate, rng)
    if sample_rate != synth_rate:
        wet = soxr.resample(wet, synth_rate, sample_rate, quality="HQ").astype(np.float32)
        np.clip(wet, -1.0, 1.0, out=wet)
    return wet
