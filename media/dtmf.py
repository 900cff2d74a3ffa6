"""Key tones (DTMF) for the agent's softphone keypad, sent into the call as audio."""

from __future__ import annotations

import numpy as np

LOW = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770, "B": 770,
       "7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941, "#": 941, "D": 941}  # fmt: skip
HIGH = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336, "0": 1336,
        "3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633, "C": 1633, "D": 1633}  # fmt: skip
TONE_S = 0.1
GAP_S = 0.06
AMPLITUDE = 6000


def valid_digits(digits: str) -> bool:
    return 0 < len(digits) <= 32 and all(d in LOW for d in digits.upper())


def dtmf_pcm(digits: str, rate: int) -> bytes:
    """16-bit mono PCM of the keys' dual tones, each 100 ms with a 60 ms gap."""
    t = np.arange(int(rate * TONE_S)) / rate
    gap = np.zeros(int(rate * GAP_S))
    parts = []
    for digit in digits.upper():
        if digit not in LOW:
            raise ValueError(f"not a key: {digit!r}")
        wave = np.sin(2 * np.pi * LOW[digit] * t) + np.sin(2 * np.pi * HIGH[digit] * t)
        parts += [wave * AMPLITUDE / 2, gap]
    return np.concatenate(parts).astype("<i2").tobytes()
