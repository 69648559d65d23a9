"""Per-object quality flags stored in every stamp set's ``flags`` column.

The flags form a bitmask (``uint32``); a clean object has ``flags == 0``. Test a flag with
``(table["flags"] & Flags.EDGE) != 0``.
"""

from __future__ import annotations

import enum

import numpy as np


class Flags(enum.IntFlag):
    """Bits of the ``flags`` column.

    EDGE
        The stamp extends beyond the image in at least one band; the missing pixels are NaN.
    NAN_PIXELS
        At least one pixel of the stamp is NaN (outside the image or bad in the input).
    MISSING_BAND
        At least one band has no pixels at all for this object (no file, or off its footprint).
    MISSING_PHOTOMETRY
        At least one catalogue magnitude is missing (non-detection, sentinel or non-finite).
    SATURATED
        A pixel of the stamp's area, in at least one band, is at or above its image's
        saturation level (header ``SATURATE`` or ``SATLEVEL``, in the image's units before any
        background subtraction): the object, or a neighbour inside its stamp, is saturated.
        Images whose header gives no level (SDSS frames, for one) set nothing.
    """

    EDGE = 1
    NAN_PIXELS = 2
    MISSING_BAND = 4
    MISSING_PHOTOMETRY = 8
    SATURATED = 16


def describe(value: int) -> list[str]:
    """Names of the flags set in ``value``, e.g. ``["EDGE", "NAN_PIXELS"]``."""
    return [flag.name for flag in Flags if value & flag]


def flag_counts(flags, extra: dict[str, int] | None = None) -> dict[str, int]:
    """Objects with each flag set, by name, for an array of ``flags`` values; ``extra`` adds
    other bits by name (a prediction's missing-input bit)."""
    values = np.asarray(flags).astype(np.int64)
    bits = {flag.name: int(flag) for flag in Flags} | dict(extra or {})
    return {name: int(np.count_nonzero(values & bit)) for name, bit in bits.items()}
