"""Units as survey files write them.

Catalogues, image headers and spectra declare units in ``TUNIT``, ``BUNIT``, ``CUNIT`` or
ECSV / Parquet metadata, often in spellings the FITS standard and astropy do not know:
SDSS's ``nanomaggies``, upper-case units of older pipelines (``DEG``, ``RAD``, ``NM``),
plurals (``microns``, ``HOURS``) and Angstrom as ``A`` or ``ANGSTROMS``. Read as nothing, a
``RAD`` position would be taken for degrees, a ``nanomaggies`` flux for a magnitude and a
wavelength in nm for one in Angstrom; :func:`parse_unit` reads them for what they mean.
"""

from __future__ import annotations

import warnings
from typing import Any

from astropy import units as u

#: Spellings astropy does not read as meant, by their lower-case text, checked before astropy
#: itself: ``A`` is the ampere to astropy but the Angstrom in every spectrum file.
UNIT_SPELLINGS = {
    **dict.fromkeys(("a", "aa", "ang", "angs", "angstrom", "angstroms", "\u00e5", "\u212b"), "Angstrom"),
    **dict.fromkeys(("micron", "microns", "um"), "micron"),
    **dict.fromkeys(("nanomaggies", "nanomaggie", "nmgys", "nmgy"), "nmgy"),
    **dict.fromkeys(("maggies", "maggie", "mgy"), "mgy"),
    **dict.fromkeys(("microjy", "mujy", "ujy", "microjansky"), "uJy"),
    **dict.fromkeys(("njy", "nanojy", "nanojansky"), "nJy"),
    **dict.fromkeys(("jy", "jansky"), "Jy"),
    **dict.fromkeys(("deg", "degs", "degree", "degrees"), "deg"),
    **dict.fromkeys(("rad", "rads", "radian", "radians"), "rad"),
    **dict.fromkeys(("arcsec", "arcsecs", "arcsecond", "arcseconds"), "arcsec"),
    **dict.fromkeys(("arcmin", "arcmins", "arcminute", "arcminutes"), "arcmin"),
    **dict.fromkeys(("hour", "hours", "hr", "hrs"), "h"),
    **dict.fromkeys(("mag", "mags", "magnitude", "magnitudes"), "mag"),
    **dict.fromkeys(("abmag", "abmags", "mag_ab", "magab", "ab_mag", "mag(ab)", "ab mag"), "mag(AB)"),
    **dict.fromkeys(("stmag", "stmags", "mag_st", "magst", "st_mag", "mag(st)"), "mag(ST)"),
}


def parse_unit(unit: Any) -> u.UnitBase | None:
    """The astropy unit a file declares, or None when it declares none or nothing known.

    Parameters
    ----------
    unit : str, astropy unit or None
        Unit text as a file writes it (``TUNIT``, ``BUNIT``, ``CUNIT``, ECSV), in any case,
        optionally in brackets; an astropy unit is returned as it is (an unrecognised one is
        read as its text).

    Returns
    -------
    astropy.units.UnitBase or None
        :data:`UNIT_SPELLINGS` first, then astropy's reading of the text as given, in lower
        case, and in lower case without a plural ``s`` (``NM``, ``Kpcs``).
    """
    if unit is None:
        return None
    if isinstance(unit, u.UnitBase) and not isinstance(unit, u.UnrecognizedUnit):
        return unit
    # An unrecognised unit (astropy's reading of a FITS column's TUNIT) is read again as text.
    text = str(unit).strip().strip("[]").strip()
    if not text:
        return None
    spelling = UNIT_SPELLINGS.get(text.lower())
    if spelling is not None:
        return u.Unit(spelling)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        for candidate in dict.fromkeys((text, text.lower(), text.lower().removesuffix("s"))):
            try:
                parsed = u.Unit(candidate, parse_strict="silent")
            except (TypeError, ValueError):
                continue
            if not isinstance(parsed, u.UnrecognizedUnit):
                return parsed
    return None
