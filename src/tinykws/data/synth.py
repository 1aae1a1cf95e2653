"""The embedded default dataset: spoken words synthesized with espeak-ng, no download.

espeak-ng comes from the `espeakng-loader` wheel (libespeak-ng + voice data) and is driven
through ctypes. Diversity of voices matters more than volume (a model trained on this is
also judged on real speech), so every pseudo-speaker is a distinct voice configuration:
accent (en-us, en-gb, scottish, caribbean, ...) x voice variant (m1..m8, f1..f5 and ~40 named
variants) x base rate/pitch/intonation range, and every clip adds its own jitter, phrasing,
microphone-like filtering and equalisation, room, gain, position in the 1-s window, a noise
floor and often background noise.

Layout = Speech Commands: `OUT/<word>/<speaker>_nohash_0.wav` (16 kHz mono int16, exactly
1 s), `OUT/_background_noise_/*.wav` (synthesized noises), `OUT/validation_list.txt` and
`OUT/testing_list.txt`, which hold out whole voice *variants* (timbres never heard in
training), and `OUT/synth.json` (parameters and the voice of every speaker).
espeak is not thread-safe and keeps state between utterances, so every job (a fixed group of
voices, or one noise) runs in a fresh process, and its noise generator (seeded from the clock
by espeak) is re-seeded before every utterance: the output depends only on the seed, not on
the worker count, the output folder or the time.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from tinykws.data.audio import CLIP_SAMPLES, SAMPLE_RATE, moving_mean, save_wav
from tinykws.data.filters import butter_sos, peaking_sos
from tinykws.data.layout import BACKGROUND, GOOGLE12_WORDS, synth_manifest
from tinykws.errors import MAX_WORKERS, TinyKWSError, check_count, check_seed
from tinykws.progress import progress_bar
from tinykws.run import read_json
from tinykws.tuning import ignore_sigint

# The 25 non-keyword words of Speech Commands v0.02: the synthetic "unknown" class then
# matches the real one.
OTHER_WORDS = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
    "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip
DEFAULT_WORDS = tuple(GOOGLE12_WORDS) + OTHER_WORDS

# espeak voice files (lang/gmw/*) for English accents.
ACCENTS = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)  # fmt: skip
# Voice variants (voices/!v/*) that sound human; robotic/echo/whisper ones are left out.
FEMALE_VARIANTS = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda",
    "grandma", "linda", "shelby", "steph", "steph3", "zac",
)  # fmt: skip
MALE_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy", "Denis", "Diogo", "Gene",
    "Henrique", "Hugo", "Jacky", "Lee", "Mario", "Michael", "Mike", "Storm", "adam", "antonio",
    "benjamin", "boris", "david", "ed", "edward", "gustave", "ian", "iven2", "john", "klatt2",
    "klatt3", "marcelo", "max", "michel", "miguel", "norbert", "paul", "quincy", "rob",
    "robert", "sandro", "travis", "victor", "grandpa",
)  # fmt: skip
HELD_OUT_SHARE = 0.15  # of each gender's variants, for validation and again for testing
SPLIT_SHARE = 0.10  # of the speakers, for validation and again for testing
FEMALE_SHARE = 0.45  # chance that a speaker's voice is a female variant
WARP_RANGE = (0.86, 1.18)  # per-voice frequency scale (formants and pitch): deeper to child-like
EQ_BANDS = (0, 3)  # random peaking-EQ bands a clip (microphone/room colour), each +-EQ_DB
EQ_DB = 9.0
NOISE_CHANCE = 0.7  # share of clips recorded over a coloured background noise
NOISE_SNR_DB = (28.0, 55.0)  # loudest 100 ms of speech over the noise RMS (keeps speech > 20x)
BREATH_CHANCE = 0.5  # share of clips with envelope-following breath/turbulence noise
CLIP_CHANCE = 0.08  # share of clips driven into soft saturation (hot microphone input)
REVERB_CHANCE = 0.4  # share of clips given a small room's reverberation
PEAK_RANGE = (0.1, 0.95)  # of full scale, log-uniform: the 5-95 % range of real clips' peaks
# Words for background babble: none of them is a Speech Commands word.
BABBLE_WORDS = (
    "the", "and", "people", "water", "morning", "because", "number", "little", "market",
    "window", "table", "really", "probably", "tomorrow", "kitchen", "coffee", "paper",
    "monday", "weather", "problem", "maybe", "picture", "station", "garden", "music",
)  # fmt: skip

_ESPEAK_RATE = 22050  # Hz, espeak-ng's output
_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT AUDIO_OUTPUT_SYNCHRONOUS
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4  # espeak_PARAMETER
_VOLUME = 35  # of espeak's 0-200; its default (100) clips ~15 % of loud voices
_POS_CHARACTER, _CHARS_UTF8 = 1, 1


@dataclass(frozen=True)
class Voice:
    """One pseudo-speaker: an espeak voice configuration."""

    accent: str
    variant: str
    rate: int  # words per minute
    pitch: int  # 0..99, espeak's base pitch
    range: int  # 0..99, espeak's intonation range
    warp: float = 1.0  # vocal-tract/pitch scale by resampling: > 1 a smaller, higher voice

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def speaker_id(self) -> str:
        """8 hex digits, like the dataset's speaker ids."""
        key = f"{self.accent}|{self.variant}|{self.rate}|{self.pitch}|{self.range}|{self.warp:.3f}"
        return hashlib.sha1(key.encode()).hexdigest()[:8]


@dataclass
class SynthSummary:
    """What `synthesize` made."""

    out_dir: str
    words: list[str]
    per_word: int
    seed: int
    clips: int = 0
    cropped: int = 0  # clips still longer than 1 s at the fastest rate, cut to 1 s
    speakers: dict[str, int] = field(default_factory=dict)  # split -> speakers
    noise_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False  # an identical earlier run was found and kept

    def params(self) -> dict:
        return {"words": self.words, "per_word": self.per_word, "seed": self.seed, "version": _VERSION}


VOICES_PER_JOB = 4  # a fresh process costs ~0.1 s (pool refill), so group a few voices
_VERSION = 5  # bump when the synthesis changes, so old folders are not reused


# ------------------------------------------------------------------ espeak through ctypes

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """libespeak-ng from the espeakng-loader wheel, synthesizing into memory.

    One per process (espeak keeps global state and is not thread-safe): use `engine()`.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise TinyKWSError(
                "speech synthesis needs espeak-ng from PyPI: pip install 'tinykws[synth]'"
            ) from None
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate != _ESPEAK_RATE:
            raise TinyKWSError(f"espeak-ng failed to start (returned {rate}); reinstall espeakng-loader")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds a pointer to it
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        # espeak's noise (breathy variants f2/f3/f5/Alicia/adam/..., Klatt voices) comes from its
        # own generator, which espeak_Initialize seeds from time(NULL): say() re-seeds it every
        # utterance. Without it the same seed gave different clips from one run to the next.
        if not hasattr(lib, "espeak_ng_SetRandSeed"):
            raise TinyKWSError("reproducible synthesis needs espeak-ng >= 1.52: pip install -U espeakng-loader")
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.variants = {p.name for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir()}

    def _collect(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = keep going

    def say(self, text: str, voice: str, rate: int = 175, pitch: int = 50, range_: int = 50) -> np.ndarray:
        """Speak `text` with espeak voice `voice` ("en-us+f3"); int16 samples at 22050 Hz."""
        variant = voice.partition("+")[2]
        # espeak silently ignores an unknown variant, so check it ourselves
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0 or (variant and variant not in self.variants):
            raise TinyKWSError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(_PARAM_VOLUME, _VOLUME, 0)
        self._lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, int(range_), 0)
        # the noise depends on what is said and how only, not on the clock (espeak keeps other
        # state between utterances, so synthesize still runs each job in a fresh process)
        self._lib.espeak_ng_SetRandSeed(zlib.crc32(f"{text}|{voice}|{rate}|{pitch}|{range_}".encode()))
        self._chunks = []
        text_b = text.encode() + b"\0"
        err = self._lib.espeak_Synth(text_b, len(text_b), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if err != 0:
            raise TinyKWSError(f"espeak-ng could not synthesize {text!r} (error {err})")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


_ENGINE: Espeak | None = None


def engine() -> Espeak:
    """This process's espeak."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


# ------------------------------------------------------------------ voices and splits


def plan_voices(n: int, seed: int = 0) -> list[tuple[Voice, str]]:
    """`n` distinct voices, each with its split.

    Validation and testing voices use variants that training never uses (voice-disjoint),
    ~SPLIT_SHARE of the speakers each (at least one).
    """
    if n < 3:
        raise TinyKWSError("need at least 3 clips per word (one voice each for training, validation, testing)")
    rng = np.random.default_rng([seed, 101])
    held = {}
    for gender, variants in (("f", FEMALE_VARIANTS), ("m", MALE_VARIANTS)):
        v = list(rng.permutation(variants))
        k = max(1, round(HELD_OUT_SHARE * len(v)))
        held[gender] = {"validation": v[:k], "testing": v[k : 2 * k], "training": v[2 * k :]}
    n_val = n_test = max(1, round(SPLIT_SHARE * n))
    plan: list[tuple[Voice, str]] = []
    seen: set[str] = set()
    for split, count in (("training", n - n_val - n_test), ("validation", n_val), ("testing", n_test)):
        pools = {
            g: [(a, v) for v in held[g][split] for a in ACCENTS] for g in ("f", "m")
        }  # every accent x variant
        for g in pools:
            pools[g] = [pools[g][i] for i in rng.permutation(len(pools[g]))]
        used = {"f": 0, "m": 0}
        while count > 0:
            g = "f" if rng.random() < FEMALE_SHARE else "m"
            accent, variant = pools[g][used[g] % len(pools[g])]
            used[g] += 1
            voice = Voice(
                accent,
                variant,
                rate=int(rng.integers(130, 231)),
                pitch=int(rng.integers(20, 81)),
                range=int(rng.integers(20, 91)),
                warp=round(float(rng.uniform(*WARP_RANGE)), 3),
            )
            if voice.speaker_id in seen:
                continue
            seen.add(voice.speaker_id)
            plan.append((voice, split))
            count -= 1
    return plan


# ------------------------------------------------------------------ one clip


def render_word(word: str, voice: Voice, rng: np.random.Generator, espeak: Espeak | None = None) -> tuple[np.ndarray, bool]:
    """One 1-s clip of `word` in `voice`: `(int16 [16000], cropped)`.

    Per clip: rate/pitch/range jitter, phrasing (".", "!", "?"), the voice's frequency warp
    (+-2 % jitter), silence trimmed, sometimes breath noise following the speech envelope,
    a random microphone-like band (high-pass 40-300 Hz, low-pass 3.5-7.5 kHz), 0-3 random
    peaking-EQ bands and a spectral tilt, sometimes a small room's reverberation or soft
    saturation, a random position in the window, a pink-to-brown noise floor 50-76 dB below
    the peak, often a coloured background noise (NOISE_SNR_DB), and a peak level drawn
    log-uniformly from PEAK_RANGE. The floor's level and colour match the quiet frames of
    real Speech Commands clips in log-mel space (docs/benchmarks.md, "Generalisation to
    real speech").
    """
    espeak = espeak or engine()
    rate = int(np.clip(voice.rate + rng.integers(-20, 21), 80, 400))
    pitch = int(np.clip(voice.pitch + rng.integers(-8, 9), 0, 99))
    range_ = int(np.clip(voice.range + rng.integers(-10, 11), 0, 99))
    text = word + str(rng.choice(["", ".", "!", "?"]))
    # playing espeak's 22050 Hz output as if it were 22050*warp Hz scales every frequency
    down = int(round(441 * voice.warp * rng.uniform(0.98, 1.02)))
    max_len = CLIP_SAMPLES - 400  # leave >= 25 ms of room
    for _ in range(4):
        x = espeak.say(text, voice.name, rate, pitch, range_)
        x = _trim(resample_poly(x.astype(np.float64), 320, down))  # 22050*warp -> 16000 Hz
        if len(x) <= max_len:
            break
        rate = int(rate * 1.3)  # too long for the window: speak faster
    cropped = len(x) > max_len
    x = x[:max_len]
    if len(x) == 0:
        raise TinyKWSError(f"espeak-ng produced no sound for {word!r} with voice {voice.name}")
    if rng.random() < BREATH_CHANCE:
        x = x + _breath(x, rng)
    hp = butter_sos(2, rng.uniform(40, 300), "highpass")
    lp = butter_sos(2, rng.uniform(3500, 7500), "lowpass")
    x = _equalize(sosfilt(lp, sosfilt(hp, x)), rng)
    if rng.random() < REVERB_CHANCE:
        x = _reverb(x, rng)[:max_len]  # a cut reverb tail is not a cropped word
    if rng.random() < CLIP_CHANCE:  # soft saturation, 2-10x drive
        drive = rng.uniform(2.0, 10.0)
        x = np.tanh(drive * x / max(np.abs(x).max(), 1e-9))
    clip = np.zeros(CLIP_SAMPLES)
    start = int(rng.integers(0, CLIP_SAMPLES - len(x) + 1))
    clip[start : start + len(x)] = x
    loud = _loudest_rms(x)
    # a noise floor 50-76 dB below the peak: real recordings are never digital silence.
    # Pink to brown, as measured in real clips' quiet frames: a white floor (after the
    # featurizer's pre-emphasis) puts ~20 dB too much energy in the upper mel bands.
    floor = np.abs(x).max() * np.exp(rng.uniform(np.log(1.5e-4), np.log(3e-3)))
    clip += _colored_noise(CLIP_SAMPLES, rng) * floor
    if rng.random() < NOISE_CHANCE:
        clip += _colored_noise(CLIP_SAMPLES, rng, 0.0, 1.0) * loud * 10 ** (-rng.uniform(*NOISE_SNR_DB) / 20)
    peak = np.exp(rng.uniform(*np.log(PEAK_RANGE)))
    clip *= peak / max(np.abs(clip).max(), 1e-9)
    return _to_int16(clip), cropped


def _loudest_rms(x: np.ndarray, window: int = 1600) -> float:
    """RMS of the loudest 100-ms window of `x`."""
    if len(x) <= window:
        return float(np.sqrt(np.mean(x**2)))
    return float(np.sqrt(max(moving_mean(x**2, window).max(), 0.0)))



def _equalize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0-3 random peaking-EQ bands (150 Hz-6 kHz, +-EQ_DB, Q 0.7-3) and a spectral tilt:
    the colouring of a cheap microphone, a phone or a room."""
    for _ in range(int(rng.integers(EQ_BANDS[0], EQ_BANDS[1] + 1))):
        f0 = np.exp(rng.uniform(np.log(150), np.log(6000)))
        x = sosfilt(peaking_sos(f0, rng.uniform(-EQ_DB, EQ_DB), rng.uniform(0.7, 3.0)), x)
    tilt = rng.uniform(-0.6, 0.6)  # first-order pre/de-emphasis: y[n] = x[n] - a x[n-1]
    return x - tilt * np.concatenate([[0.0], x[:-1]])



def _colored_noise(n: int, rng: np.random.Generator, lo: float = 0.5, hi: float = 1.0) -> np.ndarray:
    """Unit-RMS noise with a random spectral slope: amplitude ~ f^-s, s uniform in [lo, hi]
    (0 white, 0.5 pink, 1 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    f[0] = f[1]
    x = np.fft.irfft(spec / f ** rng.uniform(lo, hi), n)
    x = sosfilt(butter_sos(1, rng.uniform(30, 200), "highpass"), x)
    return x / max(np.sqrt(np.mean(x**2)), 1e-12)


def _breath(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turbulence noise that follows the speech envelope (breathy voice, air on the mic),
    high-passed at 1-3 kHz, 14-30 dB below the speech."""
    env = np.sqrt(np.maximum(moving_mean(np.pad(x**2, (160, 159)), 320), 0.0))  # centred 20 ms
    hp = butter_sos(2, rng.uniform(1000, 3000), "highpass")
    noise = sosfilt(hp, rng.standard_normal(len(x)))
    noise /= max(np.sqrt(np.mean(noise**2)), 1e-12)
    return noise * env * 10 ** (-rng.uniform(14, 30) / 20)


def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response: direct sound + exponentially decaying
    noise (RT60 0.1-0.5 s) mixed 10-50 % wet; the output keeps the tail."""
    rt60 = rng.uniform(0.1, 0.5)  # s
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail *= rng.uniform(0.1, 0.5) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0  # the direct path
    return fftconvolve(x, tail)


def _trim(x: np.ndarray, threshold: float = 0.02, margin: int = 160) -> np.ndarray:
    """Cut leading/trailing silence: keep from the first to the last sample above
    `threshold` x peak, plus `margin` samples (10 ms) each side."""
    if len(x) == 0:
        return x
    loud = np.flatnonzero(np.abs(x) > threshold * np.abs(x).max())
    if len(loud) == 0:
        return x[:0]
    return x[max(loud[0] - margin, 0) : loud[-1] + margin]


def _to_int16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16, clipped."""
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


# ------------------------------------------------------------------ background noise

NOISE_KINDS = ("white", "pink", "brown", "hum", "fan", "babble", "clatter")


def make_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A synthesized background noise, int16 at 16 kHz, RMS ~0.003-0.01 like the dataset's."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        f[0] = f[1]
        x = np.fft.irfft(spec / (np.sqrt(f) if kind == "pink" else np.maximum(f, 20.0)), n)
    elif kind == "hum":
        f0 = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 8))
        x = x + 0.05 * rng.standard_normal(n)
    elif kind == "fan":  # band-limited noise with a slow swell and a blade tone
        sos = butter(2, [rng.uniform(80, 200), rng.uniform(1500, 4000)], "bandpass", fs=SAMPLE_RATE, output="sos")
        swell = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
        x = sosfilt(sos, rng.standard_normal(n)) * swell + 0.2 * np.sin(2 * np.pi * rng.uniform(90, 180) * t)
    elif kind == "clatter":  # sparse knocks ringing at random resonances, over a low hiss
        x = 0.05 * rng.standard_normal(n)
        for at in rng.integers(0, n - 4000, size=int(seconds * 3)):
            freq, decay = rng.uniform(800, 5000), rng.uniform(0.01, 0.08)
            tt = np.arange(4000) / SAMPLE_RATE
            x[at : at + 4000] += rng.uniform(0.5, 3) * np.sin(2 * np.pi * freq * tt) * np.exp(-tt / decay)
    elif kind == "babble":
        x = _babble(n, rng)
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    x = np.asarray(x, dtype=np.float64)
    x = x + 0.02 * np.sqrt(np.mean(x**2)) * rng.standard_normal(n)  # never digital silence
    x *= np.exp(rng.uniform(np.log(0.003), np.log(0.01))) / max(np.sqrt(np.mean(x**2)), 1e-12)
    return _to_int16(x)


def _babble(n: int, rng: np.random.Generator, streams: int = 6) -> np.ndarray:
    """Several voices talking over each other, far away (non-keyword words only)."""
    espeak = engine()
    out = np.zeros(n)
    variants = FEMALE_VARIANTS + MALE_VARIANTS
    for _ in range(streams):
        voice = f"{rng.choice(ACCENTS)}+{rng.choice(variants)}"
        pos = int(rng.integers(0, SAMPLE_RATE))
        while pos < n:
            words = " ".join(rng.choice(BABBLE_WORDS, size=int(rng.integers(2, 6))))
            x = espeak.say(words, voice, int(rng.integers(140, 220)), int(rng.integers(20, 80)), 60)
            x = resample_poly(x.astype(np.float64), 320, 441) * rng.uniform(0.3, 1.0)
            end = min(pos + len(x), n)
            out[pos:end] += x[: end - pos]
            pos = end + int(rng.integers(0, SAMPLE_RATE // 2))
    lp = butter(2, 3000, "lowpass", fs=SAMPLE_RATE, output="sos")  # distance muffles
    return sosfilt(lp, out)


# ------------------------------------------------------------------ the whole dataset


def _speakers_job(job: tuple) -> tuple[str, int, int]:
    """Synthesize every word for a fixed group of voices into `tmp`; returns
    ("speakers", clips, cropped). Groups never depend on the worker count."""
    tmp, voices, words, seed = job
    cropped = 0
    for index, voice in voices:
        for word in words:
            rng = np.random.default_rng([seed, 1, index, zlib.crc32(word.encode())])
            clip, was_cropped = render_word(word, voice, rng)
            cropped += was_cropped
            save_wav(Path(tmp) / word / f"{voice.speaker_id}_nohash_0.wav", clip)
    return "speakers", len(voices) * len(words), cropped


def _noise_job(job: tuple) -> tuple[str, int, int]:
    tmp, kind, index, seconds, seed = job
    rng = np.random.default_rng([seed, 2, index])
    save_wav(Path(tmp) / BACKGROUND / f"{kind}.wav", make_noise(kind, seconds, rng))
    return kind, 0, 0


def _run_job(job: tuple) -> tuple[str, int, int]:
    return _speakers_job(job[1:]) if job[0] == "speakers" else _noise_job(job[1:])


MAX_PER_WORD = 100_000  # voices a word: espeak-ng variants are drawn, 100k is already absurd
MAX_NOISE_SECONDS = 3600.0  # one hour of noise a file (230 MB as float32); beyond is a typo


def check_noise_seconds(seconds: float, least: float) -> None:
    """Refuse a noise length that is negative, NaN, Inf or huge (`-1` gave `negative
    dimensions`, `nan` a conversion error, `1e12` a 114 PiB allocation)."""
    if not least <= seconds <= MAX_NOISE_SECONDS:  # NaN fails both comparisons
        raise TinyKWSError(f"--noise-seconds must be in [{least:g}, {MAX_NOISE_SECONDS:g}], not {seconds}")


def synthesize(
    out_dir: Path | str,
    words: tuple[str, ...] | list[str] = DEFAULT_WORDS,
    per_word: int = 50,
    seed: int = 0,
    workers: int | None = None,
    noise_seconds: float = 30.0,
) -> SynthSummary:
    """Make the synthetic Speech Commands-layout dataset in `out_dir`; deterministic for `seed`.

    `per_word` = number of voices = clips per word (each voice says each word once).
    Re-running with the same parameters on a finished folder does nothing. The folder is
    built beside `out_dir` and renamed into place, so it is never left half-made.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    check_seed(seed)
    check_noise_seconds(noise_seconds, 1.0)
    if per_word > MAX_PER_WORD:  # too few: plan_voices says why 3 are needed
        raise TinyKWSError(f"--per-word must be at most {MAX_PER_WORD:,}, not {per_word}")
    check_count(workers, "--workers", 1, MAX_WORKERS)
    words = [w.strip().lower() for w in words if w.strip()]
    if len(set(words)) != len(words) or not words:
        raise TinyKWSError("--words must be distinct, non-empty words")
    bad = [w for w in words if not w.replace("'", "").isalpha() or w.startswith("_")]
    if bad:
        raise TinyKWSError(f"words must be letters only: {', '.join(bad)}")
    summary = SynthSummary(out_dir=str(out_dir), words=words, per_word=per_word, seed=seed)
    manifest = synth_manifest(out_dir)
    if manifest.is_file():
        old = read_json(manifest, f"delete {out_dir} and synthesize again")
        if not isinstance(old, dict) or not isinstance(old.get("summary"), dict):
            raise TinyKWSError(f"{manifest} is not a synth record; delete {out_dir} and synthesize again")
        if old.get("params") == summary.params():
            return SynthSummary(**{**old["summary"], "reused": True})
    if out_dir.exists() and any(out_dir.iterdir()) and not manifest.is_file():
        raise TinyKWSError(f"{out_dir} exists and is not a tinykws synth folder; choose another --out")

    plan = plan_voices(per_word, seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.synth-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for w in words:
        (tmp / w).mkdir(parents=True)
    (tmp / BACKGROUND).mkdir()
    jobs = [("noise", str(tmp), kind, i, noise_seconds * (2 / 3 if kind == "babble" else 1), seed)
            for i, kind in enumerate(NOISE_KINDS)]  # fmt: skip
    numbered = list(enumerate(v for v, _ in plan))
    jobs += [("speakers", str(tmp), numbered[i : i + VOICES_PER_JOB], words, seed)
             for i in range(0, len(numbered), VOICES_PER_JOB)]  # fmt: skip
    jobs.sort(key=lambda j: j[0] != "noise")  # babble is the longest job: start it first
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    try:
        with progress_bar() as bar:
            task = bar.add_task("synthesizing", total=len(jobs))
            # espeak carries state from one utterance to the next (its output for a word
            # depends on what it said before), so every job (a fixed group of voices) runs
            # in a fresh process: a clip then depends only on the seed, never on which
            # worker did what before it.
            # forkserver: cheap forks of a clean process with this module already imported.
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload([__name__])
            results = []
            with ctx.Pool(workers, ignore_sigint, maxtasksperchild=1) as pool:
                for r in pool.imap_unordered(_run_job, jobs):
                    results.append(r)
                    bar.advance(task)
        summary.clips = sum(r[1] for r in results)
        summary.cropped = sum(r[2] for r in results)
        summary.noise_files = sorted(f"{BACKGROUND}/{k}.wav" for k in NOISE_KINDS)
        split_of = {v.speaker_id: s for v, s in plan}
        for split in ("validation", "testing"):
            lines = sorted(f"{w}/{sid}_nohash_0.wav" for w in words for sid, s in split_of.items() if s == split)
            (tmp / f"{split}_list.txt").write_text("".join(line + "\n" for line in lines))
        summary.speakers = {s: sum(1 for v in split_of.values() if v == s) for s in ("training", "validation", "testing")}
        summary.seconds = round(time.perf_counter() - t0, 2)
        voices = [{"speaker": v.speaker_id, "split": s, **asdict(v)} for v, s in plan]
        synth_manifest(tmp).write_text(
            json.dumps({"params": summary.params(), "summary": asdict(summary), "voices": voices}, indent=1)
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)  # an earlier synth folder with other parameters
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
