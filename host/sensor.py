"""A simulated fingerprint sensor (seed E5): each finger is a fixed set of minutiae drawn from
a per-finger seed; each touch gives a noisy, partial sample of it — the finger placed turned
and shifted, every minutia a little off, some missed, some spurious ones seen."""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np

WIDTH, HEIGHT = 300, 400  # the sensor's window, pixels


def finger(seed: str) -> np.ndarray:
    """The true minutiae of the finger named ``seed`` (30-45 of them)."""
    rng = random.Random(hashlib.sha256(b"EVB-FINGER-1" + seed.encode()).digest())
    return np.array([(rng.uniform(20, WIDTH - 20), rng.uniform(20, HEIGHT - 20), rng.uniform(0, 2 * math.pi))
                     for _ in range(rng.randint(30, 45))])


def touch(true: np.ndarray, rng: random.Random | None = None) -> np.ndarray:
    """One sample of a finger on the sensor."""
    rng = rng or random.Random()
    turn, dx, dy = rng.uniform(-0.3, 0.3), rng.uniform(-25, 25), rng.uniform(-25, 25)
    cx, cy = WIDTH / 2, HEIGHT / 2
    seen = []
    for x, y, a in true:
        if rng.random() < 0.15:
            continue  # missed
        rx = cx + (x - cx) * math.cos(turn) - (y - cy) * math.sin(turn) + dx + rng.gauss(0, 3)
        ry = cy + (x - cx) * math.sin(turn) + (y - cy) * math.cos(turn) + dy + rng.gauss(0, 3)
        if 0 <= rx < WIDTH and 0 <= ry < HEIGHT:
            seen.append((rx, ry, (a + turn + rng.gauss(0, 0.12)) % (2 * math.pi)))
    for _ in range(rng.randint(0, 6)):  # spurious: dirt, scars
        seen.append((rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(0, 2 * math.pi)))
    return np.array(seen)
