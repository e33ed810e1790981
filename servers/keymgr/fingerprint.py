"""Fingerprint templates and their matcher (seed E5), for the simulated sensor of
:mod:`host.sensor`: a print is a set of minutiae (x, y in pixels, direction in radians).

The matcher tries every pairing of a sample minutia with a template minutia as the alignment
(the rotation that turns one's direction into the other's, the translation that puts one on
the other), and scores the best: the share of minutiae that find a partner within a distance
and an angle. Numpy does a chunk of alignments' whole comparisons at once.
"""

from __future__ import annotations

import numpy as np

from apdu import fingerprint as codec
from apdu.fingerprint import MAX_MINUTIAE, PrintError

__all__ = ["MAX_MINUTIAE", "PrintError", "check_template", "decode", "dummy_template", "encode", "matches", "score"]

DISTANCE = 12.0  # pixels
ANGLE = 0.35  # radians
THRESHOLD = 0.40  # the score at or above which a sample matches (FAR/FRR: evb bench fingerprint)
DUPLICATE = 0.5  # pixels: two minutiae this close, turned alike, are one written twice
CHUNK_CELLS = 1 << 19  # minutia pairs the matcher compares at once: about 2 MB per array
_COS_ANGLE = float(np.cos(ANGLE))

encode = codec.encode  # the encoding is shared with the terminal: apdu.fingerprint


def decode(raw: bytes) -> np.ndarray:
    """The minutiae of an encoded print as an n x 3 array, for the matcher."""
    return np.array(codec.decode(raw), dtype=float)


def score(template: np.ndarray, sample: np.ndarray) -> float:
    """0..1: how much of the two prints agree under their best alignment.

    The alignments are tried a chunk at a time (at most ``CHUNK_CELLS`` minutia pairs at once),
    so the memory a match takes is bounded whatever the prints: all T x S alignments at once,
    each comparing S x T pairs, took 1.9 GB for two 80-minutia prints. Distances are compared
    squared and directions by the cosine of their difference: no square roots, no modulo."""
    t_x, t_y, t_a = (template[:, i].astype(np.float32) for i in range(3))
    s_xy, s_a = sample[:, :2].astype(np.float32), sample[:, 2].astype(np.float32)
    t_cos, t_sin = np.cos(t_a), np.sin(t_a)
    # every (template i, sample j) pairing as an alignment: rotate by t_a[i] - s_a[j] about
    # sample j, then move sample j onto template i
    rot_all = (t_a[:, None] - s_a[None, :]).reshape(-1)  # H
    ti_all = np.repeat(np.arange(len(template)), len(sample))
    sj_all = np.tile(np.arange(len(sample)), len(template))
    step = max(1, CHUNK_CELLS // (len(sample) * len(template)))
    best = 0
    for start in range(0, len(rot_all), step):
        rot, ti, sj = rot_all[start:start + step], ti_all[start:start + step], sj_all[start:start + step]
        cos, sin = np.cos(rot)[:, None], np.sin(rot)[:, None]
        rel_x = s_xy[None, :, 0] - s_xy[sj, 0][:, None]  # h x S
        rel_y = s_xy[None, :, 1] - s_xy[sj, 1][:, None]
        dx = (cos * rel_x - sin * rel_y + t_x[ti][:, None])[:, :, None] - t_x  # h x S x T
        dy = (sin * rel_x + cos * rel_y + t_y[ti][:, None])[:, :, None] - t_y
        turned = s_a[None, :] + rot[:, None]  # the sample's directions, aligned: h x S
        agree = np.cos(turned)[:, :, None] * t_cos + np.sin(turned)[:, :, None] * t_sin > _COS_ANGLE
        close = (dx * dx + dy * dy < DISTANCE * DISTANCE) & agree
        matched = np.minimum(close.any(axis=2).sum(axis=1), close.any(axis=1).sum(axis=1))
        best = max(best, int(matched.max()))
    return float(best / ((len(template) + len(sample)) / 2))


def check_template(template: np.ndarray) -> None:
    """A template worth keeping: no two minutiae at the same place and direction (within the
    encoding's rounding; real neighbours a few pixels apart stay). A template of duplicates is
    no finger, and the worst case of the matcher's work; its memory is bounded anyway."""
    xy, a = template[:, :2], template[:, 2]
    near = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1) < DUPLICATE
    turn = np.abs((a[:, None] - a[None, :] + np.pi) % (2 * np.pi) - np.pi) < ANGLE / 10
    if ((near & turn).sum() - len(template)) > 0:
        raise PrintError("the print repeats minutiae: touch the sensor again")


def dummy_template() -> np.ndarray:
    """A random template of the most minutiae a template may have: matched when a name has no
    finger, so such a refusal costs what the dearest real one costs."""
    rng = np.random.default_rng()
    return np.column_stack([rng.uniform(0, 300, MAX_MINUTIAE), rng.uniform(0, 400, MAX_MINUTIAE),
                            rng.uniform(0, 2 * np.pi, MAX_MINUTIAE)])


def matches(template: np.ndarray, sample: np.ndarray, threshold: float = THRESHOLD) -> bool:
    return score(template, sample) >= threshold
