"""Hold music, generated: a soft arpeggio of sine tones (no audio files to license or ship)."""

from __future__ import annotations

import functools

import numpy as np

NOTES_HZ = (261.63, 329.63, 392.00, 523.25, 392.00, 329.63)  # C major, up and down
NOTE_S = 0.45
VOLUME = 0.18


@functools.cache
def hold_music_pcm(sample_rate: int) -> bytes:
    """One loop (~2.7 s) of 16-bit mono PCM at `sample_rate`, with short fades per note."""
    samples_per_note = int(sample_rate * NOTE_S)
    t = np.arange(samples_per_note) / sample_rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.03)
    notes = [np.sin(2 * np.pi * hz * t) * fade for hz in NOTES_HZ]
    wave = np.concatenate(notes) * VOLUME * 32767
    return wave.astype("<i2").tobytes()
