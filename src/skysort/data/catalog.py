"""Reading and writing source catalogues, with survey column names mapped to skysort's.

skysort works with one set of *standard column names*, whatever survey a catalogue comes from:

``id``
    Object identifier (kept in the catalogue's own type; a running row number ``0..N-1``
    when the catalogue has none).
``ra``, ``dec``
    ICRS right ascension (0..360, a catalogue's -180..180 wrapped) and declination in degrees,
    converted from the unit a column declares (also as older pipelines spell it: ``RAD``,
    ``HOURS`` for right ascension). A row whose declination is beyond -90..90 has no position
    (both masked, with a warning), as ``skysort predict`` treats it.
``x``, ``y`` (optional)
    Pixel position in the image of the mapping's ``reference_band``, 0-based (the centre of
    the first pixel is 0.0, as in numpy; FITS and SExtractor count from 1).
``label`` (optional)
    Class as a lower-case string (``star``, ``galaxy``, ``qso``, ...); masked where unknown.
``mag_<band>``, ``magerr_<band>``
    AB magnitude and its 1-sigma error in ``<band>``. Missing values (non-detections,
    sentinel numbers such as 99 or -9999, NaN, inf) are *masked*; the error of a masked
    magnitude is masked too. Band names keep the survey's spelling and are case-sensitive
    (KiDS ``Z`` is VISTA Z, SDSS ``z`` is SDSS z).

Every other column passes through unchanged, after the standard columns. A pass-through
column whose name collides with a standard name gets the suffix ``_orig``.

Column mappings
---------------
A :class:`ColumnMapping` says which survey column holds which standard quantity. It comes
from a preset shipped with skysort (:func:`preset_names`: ``kids``, ``sdss``,
``sdss-specphot``), from a YAML file with the same schema, or from a compact string.

YAML schema (every key optional)::

    name: mysurvey              # default: the file name without extension
    description: free text
    id: objID                   # column names; leave out what the catalogue lacks
    ra: RA                      # degrees
    dec: DEC                    # degrees
    x: X_IMAGE                  # pixel columns, counted from pixel_origin
    y: Y_IMAGE
    pixel_origin: 1             # 0 (numpy) or 1 (FITS, SExtractor); default 0
    reference_band: r           # band of the image that x/y refer to
    label: CLASS                # class column; values are lower-cased
    labels: {3: galaxy, 6: star}  # optional translation of raw class values
    mag: "MAG_{band}"           # template with {band}, or a mapping band -> column
    magerr: "MAGERR_{band}"     # same; leave out when there are no errors
    bands: [u, g, r]            # bands in order
    sentinels: [99, -99]        # magnitudes/errors equal to these are missing
    ab_offsets: {u: -0.04}      # added to the magnitudes to put them on the AB system
    flux_unit: nJy              # mag/magerr name flux and flux-error columns in this unit
    options:                    # named choices for from_preset(name, option=value)
      kind:
        default: psf
        choices:
          psf: {mag: "psfMag_{band}", magerr: "psfMagErr_{band}"}
          model: {mag: "modelMag_{band}", magerr: "modelMagErr_{band}"}

When ``sentinels`` is left out, :data:`DEFAULT_SENTINELS` apply (no real magnitude is that
bright or faint); write ``sentinels: []`` to mask only non-finite values.

The compact string form, for the command line, has the same keys as ``key=value`` pairs
separated by commas (all but ``options`` and ``description``); lists are separated by spaces,
and ``labels`` and ``ab_offsets`` are space-separated ``key:value`` pairs::

    id=objID,ra=RA,dec=DEC,mag=MAG_{band},magerr=MAGERR_{band},bands=u g r,sentinels=99 -99
    label=class,labels=GALAXY:galaxy STAR:star QSO:qso,ab_offsets=u:-0.04 z:0.02

Every column a mapping names must be in the catalogue; a name is matched exactly, else
case-insensitively (CasJobs exports sometimes change case). ``NAME[k]`` names element ``k``
(0-based) of a vector column, as SDSS's FITS products hold the five bands in one column; in a
template ``{index}`` is the band's place in ``bands``: ``mag=PSFMAG[{index}],bands=u g r i z``. A quantity the mapping leaves
out (say ``id``) is taken from a column already bearing its standard name, if there is one,
else (``id`` and a ``ra``/``dec`` pair) from the survey names looked for without a mapping
(below); an ``id`` found nowhere becomes the row number.

Reading without a mapping
-------------------------
``read_catalog(path)`` with no mapping accepts a catalogue in standard names and otherwise
looks, case-insensitively and in this order of preference, for ``id``: id, objid, obj_id,
objectid, object_id, source_id, coadd_object_id (SDSS, Rubin, HSC, Gaia, DES);
``ra``/``dec`` as a pair: ra/dec, raj2000/decj2000, raj2000/dej2000, ra_j2000/dec_j2000,
ra_icrs/de_icrs, radeg/dedeg, ra_deg/dec_deg, _raj2000/_dej2000, alpha/delta,
alpha_j2000/delta_j2000, alphawin_j2000/deltawin_j2000, ramean/decmean, coord_ra/coord_dec
(VizieR, SExtractor, Pan-STARRS and Rubin names), else the first of these names found for each;
``x``/``y``: x, y (0-based); ``label``: label, class. Magnitudes are
found only under the standard names ``mag_<band>`` and ``magerr_<band>`` (lower-case
prefix), because survey names such as ``MAG_AUTO`` do not say which band they are in.

File formats
------------
Chosen by extension: FITS (``.fits``, ``.fit``, ``.fts``, optionally ``.gz``, and read also
``.bz2`` or ``.xz``; the first table HDU is read), VOTable (``.vot``, ``.votable``, ``.xml``; the first table, read only),
Parquet (``.parquet``, ``.pq``, or a folder of them: :func:`parquet_folder_files`), CSV (``.csv``, ``.ecsv``) and
tab-separated text (``.tsv``, read only: VizieR's download, with its units and dashes lines
under the header, :func:`text_layout`), IPAC tables (``.tbl``, ``.ipac``, read only: IRSA's
format, with its units and nulls) and SExtractor catalogues (``.cat``, ``.ldac``, read only:
FITS_LDAC, its ``LDAC_OBJECTS`` table, or ASCII_HEAD); text is read also compressed, ``.gz``, ``.bz2`` or ``.xz``,
as archives such as Gaia's distribute it. Written
``.csv`` files are comma-separated ECSV: a ``#`` header with units and metadata above a
plain CSV body, so that metadata and masks survive a round trip. Masked values are stored
as NaN or ``TNULL`` in FITS (masked booleans cannot be represented in FITS and lose their
mask), nulls in Parquet and empty fields in CSV.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import yaml
from astropy import units as u
from astropy.table import Column, MaskedColumn, Table
from astropy.utils.exceptions import AstropyUserWarning, AstropyWarning

from .._io import atomic_path
from ..errors import InputError, report_problem
from ..provenance import provenance_record
from .units import parse_unit

__all__ = [
    "DEFAULT_SENTINELS",
    "STANDARD_COLUMNS",
    "ColumnMapping",
    "catalog_bands",
    "catalog_metadata",
    "photometry_arrays",
    "preset_names",
    "read_catalog",
    "read_unique_catalogs",
    "resolve_mapping",
    "standardise_catalog",
    "write_catalog",
]

#: Scalar standard columns, in the order they lead a catalogue read by :func:`read_catalog`.
STANDARD_COLUMNS = ("id", "ra", "dec", "x", "y", "label")

#: Sentinels assumed when a mapping does not list its own (or when there is no mapping).
DEFAULT_SENTINELS = (99.0, -99.0, 999.0, -999.0, 9999.0, -9999.0)

# Case-insensitive candidates for automatic detection, most preferred first.
_AUTO_NAMES = {
    # SDSS and Pan-STARRS objID, Rubin objectId, HSC object_id, Gaia and AllWISE source_id, DES.
    "id": ("id", "objid", "obj_id", "objectid", "object_id", "source_id", "coadd_object_id"),
    "x": ("x",),
    "y": ("y",),
    "label": ("label", "class"),
}
# Sky positions are found in pairs, so that ra and dec come from the same system and epoch
# (a VizieR table holds RA_ICRS / DE_ICRS at Gaia's epoch beside its computed _RAJ2000 / _DEJ2000).
_AUTO_POSITIONS = (
    ("ra", "dec"), ("raj2000", "decj2000"), ("raj2000", "dej2000"), ("ra_j2000", "dec_j2000"), ("ra_icrs", "de_icrs"),
    ("radeg", "dedeg"), ("ra_deg", "dec_deg"), ("_raj2000", "_dej2000"), ("alpha", "delta"),
    ("alpha_j2000", "delta_j2000"), ("alphawin_j2000", "deltawin_j2000"), ("ramean", "decmean"), ("coord_ra", "coord_dec"),
)

_FITS_SUFFIXES = (".fits", ".fit", ".fts")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".ecsv")
#: Tab-separated text, as VizieR's "Tab-Separated-Values" download (``asu.tsv``) and
#: spreadsheets' tab-delimited export; read (also compressed), never written.
_TSV_SUFFIXES = (".tsv",)
#: SExtractor's catalogues: FITS_LDAC (its objects in the LDAC_OBJECTS table, the same in a
#: ``.ldac`` file) or ASCII_HEAD (``#   1 NUMBER  Running object number  [unit]`` header lines).
_SEXTRACTOR_SUFFIXES = (".cat", ".ldac")
#: VOTable, what TAP services (Gaia, ESO, CADC) and TOPCAT hand over; read whole, never written.
_VOTABLE_SUFFIXES = (".vot", ".votable", ".xml")
#: IPAC tables, what IRSA's services (AllWISE, 2MASS, Spitzer, ZTF) hand over; read whole (also
#: compressed), never written.
_IPAC_SUFFIXES = (".tbl", ".ipac")
#: Formats read, never written (a catalogue written by skysort keeps its metadata and masks in
#: FITS, Parquet or ECSV).
_READ_ONLY_FORMATS = {"votable": "VOTable", "tsv": "TSV", "ipac": "an IPAC table", "sextractor": "a SExtractor catalogue"}
#: Compressions a CSV catalogue is read in (written CSV is never compressed).
_CSV_COMPRESSIONS = (".gz", ".bz2", ".xz")
_KNOWN_EXTENSIONS = (".fits, .fit, .fts (optionally .gz, .bz2, .xz), .parquet, .pq, .csv, .ecsv, .tsv, .tbl, .ipac (optionally .gz, "
                     ".bz2, .xz), .vot, .votable, .xml (VOTable), .cat, .ldac (SExtractor)")

# FITS header keyword holding skysort's metadata (provenance, mapping, bands) as JSON.
_FITS_META_KEY = "SKYSORT"
# Parquet schema-metadata key holding the same JSON.
_PARQUET_META_KEY = b"skysort"

_PRESET_PACKAGE = "skysort"
_PRESET_DIR = ("presets", "catalogs")

_YAML_KEYS = (
    "name", "description", "id", "ra", "dec", "x", "y", "pixel_origin", "reference_band",
    "label", "labels", "mag", "magerr", "bands", "sentinels", "ab_offsets", "options", "flux_unit",
)
# Keys the compact string form accepts; "options" needs YAML's nesting ("labels" and
# "ab_offsets" are written as space-separated key:value pairs).
_STRING_KEYS = tuple(k for k in _YAML_KEYS if k not in ("options", "description"))


# --------------------------------------------------------------------------------------
# Column mappings
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ColumnMapping:
    """How a survey's column names translate into skysort's standard names.

    Parameters
    ----------
    name : str
        Short name recorded in ``table.meta["mapping"]`` (a preset name, or ``custom``).
    id, ra, dec, x, y, label : str or None
        Survey column holding each standard quantity, or None when the catalogue lacks it.
        ``ra``/``dec`` are in degrees; ``x``/``y`` are pixel positions counted from
        ``pixel_origin`` in the image of ``reference_band``.
    mag, magerr : str or dict of str to (str or tuple of str) or None
        Magnitude (AB) and error columns: a template containing ``{band}`` or an explicit
        ``{band: column}`` dictionary, where a band may name several columns, the first of them
        the catalogue holds being read (KiDS DR4 has ``MAG_GAAP_i``; DR5 observed i twice, and
        catalogues naming the passes ``MAG_GAAP_i1`` / ``MAG_GAAP_i2`` have no ``MAG_GAAP_i``).
        ``magerr`` may be None (no errors in the catalogue).
    bands : tuple of str
        Bands in order. Empty means "whatever the caller asks for" (templates only).
    sentinels : tuple of float or None
        Magnitude and error values meaning "missing"; None means :data:`DEFAULT_SENTINELS`.
        Non-finite values are always missing.
    pixel_origin : {0, 1}
        Pixel index of the first pixel's centre in the ``x``/``y`` columns.
    reference_band : str or None
        Band whose image the ``x``/``y`` positions refer to.
    ab_offsets : dict of str to float
        Per band, the offset [mag] added to the catalogue's magnitudes to put them on the AB
        system (SDSS: u_AB = u - 0.04, z_AB = z + 0.02); bands left out are AB already.
    flux_unit : str or None
        When given, the ``mag`` / ``magerr`` columns hold fluxes and flux errors in this unit
        (nJy, uJy, Jy, nanomaggy, ...), as Rubin and HSC object tables do; they are turned into
        AB magnitudes (:func:`fluxes_to_magnitudes`). Only the mapping's own ``sentinels``
        apply to fluxes (the default magnitude sentinels are real fluxes).
    labels : dict of str to str
        Translation of raw class values (as strings, compared case-insensitively) into
        skysort class names before lower-casing, e.g. ``{"3": "galaxy", "6": "star"}``.
    description : str
        Free text for people.
    options : dict of str to str
        Preset options this mapping was built with (recorded in the metadata).
    auto : bool
        True for the mapping :func:`read_catalog` uses when given none: columns are then
        looked up by the rules in the module docstring instead of by name.
    """

    name: str = "custom"
    id: str | None = None
    ra: str | None = None
    dec: str | None = None
    x: str | None = None
    y: str | None = None
    label: str | None = None
    mag: str | dict[str, str | tuple[str, ...]] | None = None
    magerr: str | dict[str, str | tuple[str, ...]] | None = None
    bands: tuple[str, ...] = ()
    sentinels: tuple[float, ...] | None = None
    pixel_origin: int = 0
    reference_band: str | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    ab_offsets: dict[str, float] = dataclasses.field(default_factory=dict)
    flux_unit: str | None = None
    description: str = ""
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    auto: bool = False

    # ---- construction -----------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | os.PathLike = "column mapping",
                  default_name: str = "custom") -> ColumnMapping:
        """Build a mapping from a dictionary with the YAML schema's keys.

        ``options`` are not resolved here; see :meth:`from_preset`. Problems raise
        :class:`~skysort.errors.InputError` naming ``where``.
        """
        if not isinstance(data, Mapping):
            raise InputError(where, "a column mapping must be a set of key: value pairs")
        unknown = [k for k in data if k not in _YAML_KEYS]
        if unknown:
            raise InputError(where, f"unknown key {unknown[0]!r} in column mapping "
                                    f"(allowed: {', '.join(_YAML_KEYS)})")
        kwargs: dict[str, Any] = {"name": str(data.get("name") or default_name)}
        for key in ("id", "ra", "dec", "x", "y", "label", "reference_band"):
            value = data.get(key)
            if value is not None:
                if not isinstance(value, (str, int)) or isinstance(value, bool):
                    raise InputError(where, f"{key} must be a column name, not {value!r}")
                kwargs[key] = str(value)
        for key in ("mag", "magerr"):
            value = data.get(key)
            if value is None:
                continue
            if isinstance(value, Mapping):
                kwargs[key] = {str(b): _column_choice(c, where, key, b) for b, c in value.items()}
            elif isinstance(value, str):
                kwargs[key] = value
            else:
                raise InputError(where, f"{key} must be a template with {{band}} or a "
                                        f"band: column mapping, not {value!r}")
        if data.get("bands") is not None:
            kwargs["bands"] = _as_band_tuple(data["bands"], where)
        elif isinstance(kwargs.get("mag"), dict):
            kwargs["bands"] = tuple(kwargs["mag"])
        if data.get("sentinels") is not None:
            kwargs["sentinels"] = _as_float_tuple(data["sentinels"], where, "sentinels")
        if data.get("pixel_origin") is not None:
            try:
                kwargs["pixel_origin"] = int(data["pixel_origin"])
            except (TypeError, ValueError):
                raise InputError(where, f"pixel_origin must be 0 or 1, "
                                        f"not {data['pixel_origin']!r}") from None
        if data.get("labels"):
            if not isinstance(data["labels"], Mapping):
                raise InputError(where, "labels must map raw class values to class names")
            kwargs["labels"] = {str(k): str(v) for k, v in data["labels"].items()}
        if data.get("ab_offsets"):
            offsets = data["ab_offsets"]
            if not isinstance(offsets, Mapping):
                raise InputError(where, "ab_offsets must map bands to offsets in mag")
            try:
                kwargs["ab_offsets"] = {str(b): float(v) for b, v in offsets.items()}
            except (TypeError, ValueError):
                raise InputError(where, f"ab_offsets must be numbers in mag, not {dict(offsets)!r}") from None
            if not all(np.isfinite(v) for v in kwargs["ab_offsets"].values()):
                raise InputError(where, "ab_offsets must be finite")
        if data.get("flux_unit") is not None:
            kwargs["flux_unit"] = str(data["flux_unit"]).strip()
            maggies_per_unit(kwargs["flux_unit"], where)  # a unit that is no flux density is refused here
        if data.get("description"):
            kwargs["description"] = str(data["description"])
        return cls._checked(where, **kwargs)

    @classmethod
    def _checked(cls, where: str | os.PathLike, **kwargs: Any) -> ColumnMapping:
        """Construct and validate, turning inconsistencies into one-line InputErrors."""
        mapping = cls(**kwargs)
        problem = mapping._problem()
        if problem:
            raise InputError(where, problem)
        return mapping

    def _problem(self) -> str | None:
        if (self.ra is None) != (self.dec is None):
            return "a column mapping needs both ra and dec, or neither"
        if (self.x is None) != (self.y is None):
            return "a column mapping needs both x and y, or neither"
        if self.pixel_origin not in (0, 1):
            return f"pixel_origin must be 0 or 1, not {self.pixel_origin!r}"
        for key in ("mag", "magerr"):
            value = getattr(self, key)
            if isinstance(value, str) and "{band}" not in value and "{index}" not in value and len(self.bands) > 1:
                return f"{key} template {value!r} lacks {{band}} (or {{index}}, the band's place in bands)"
            if isinstance(value, str) and "{index}" in value and not self.bands:
                return f"{key} template {value!r} has {{index}}, the band's place in bands, but the mapping gives no bands"
            if isinstance(value, dict) and self.bands:
                missing = [b for b in self.bands if b not in value]
                if missing:
                    return f"{key} names no column for band(s) {' '.join(missing)}"
        if self.magerr is not None and self.mag is None:
            return "a column mapping with magerr needs mag too"
        if self.bands and self.mag is None:
            return "a column mapping with bands needs mag"
        if len(set(self.bands)) != len(self.bands):
            return f"bands repeat: {' '.join(self.bands)}"
        if self.flux_unit and self.mag is None:
            return "flux_unit says what the mag columns hold: give mag (the flux columns) too"
        if self.flux_unit and self.ab_offsets:
            return "ab_offsets correct catalogue magnitudes; fluxes in a physical unit are AB already"
        return None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ColumnMapping:
        """Read a mapping from a YAML file (schema in the module docstring).

        Options in the file are resolved to their defaults.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "column mapping file not found")
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(path, f"cannot read column mapping: {_first_line(exc)}") from None
        return _resolve_options(data, path, default_name=path.stem, chosen={})

    @classmethod
    def from_preset(cls, name: str, **options: Any) -> ColumnMapping:
        """A mapping shipped with skysort, e.g. ``from_preset("sdss", kind="model")``.

        Parameters
        ----------
        name : str
            One of :func:`preset_names`.
        **options
            The preset's declared options (``sdss``: ``kind`` = ``psf``, ``model`` or
            ``cmodel``), or any mapping field to override (e.g. ``bands=("g", "r")``).
        """
        text = _preset_text(name)
        where = f"catalogue preset {name!r}"
        data = yaml.safe_load(text)
        return _resolve_options(data, where, default_name=name, chosen=options)

    @classmethod
    def from_string(cls, spec: str) -> ColumnMapping:
        """Parse the compact command-line form, e.g. ``"id=objID,ra=RA,dec=DEC,bands=g r"``.

        Keys are those of the YAML schema except ``options`` and ``description``; ``bands``
        and ``sentinels`` are space-separated lists, ``labels`` and ``ab_offsets``
        space-separated ``key:value`` pairs (``labels=GALAXY:galaxy STAR:star QSO:qso``,
        ``ab_offsets=u:-0.04 z:0.02``).
        """
        where = "column mapping"
        data: dict[str, Any] = {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not key:
                raise InputError(where, f"expected key=value, got {item!r} in {spec!r}")
            if key not in _STRING_KEYS:
                raise InputError(where, f"unknown key {key!r} in {spec!r} "
                                        f"(allowed: {', '.join(_STRING_KEYS)})")
            if key in data:
                raise InputError(where, f"key {key!r} given twice in {spec!r}")
            if not value:
                raise InputError(where, f"key {key!r} has no value in {spec!r} (leave the key out instead)")
            if key in ("bands", "sentinels"):
                data[key] = value.split()
            elif key in ("labels", "ab_offsets"):
                pairs = [pair.rpartition(":") for pair in value.split()]
                if any(not sep or not raw or not given for raw, sep, given in pairs):
                    raise InputError(where, f"{key} takes space-separated key:value pairs (e.g. "
                                            f"{'GALAXY:galaxy STAR:star' if key == 'labels' else 'u:-0.04 z:0.02'}), "
                                            f"got {value!r}")
                data[key] = {raw: given for raw, _, given in pairs}
            else:
                data[key] = value
        if not data:
            raise InputError(where, "empty column mapping")
        return cls.from_dict(data, where)

    @classmethod
    def automatic(cls) -> ColumnMapping:
        """The mapping used when none is given (detection rules in the module docstring)."""
        return cls(name="auto", auto=True)

    # ---- use --------------------------------------------------------------------------

    def describe(self) -> str:
        """``name`` plus the chosen options, e.g. ``"sdss (kind=model)"``."""
        if not self.options:
            return self.name
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.name} ({opts})"

    def effective_sentinels(self) -> tuple[float, ...]:
        """The sentinel values in force: the mapping's own, else :data:`DEFAULT_SENTINELS`
        (none for fluxes: 99 nJy is a flux)."""
        if self.sentinels is None:
            return () if self.flux_unit else DEFAULT_SENTINELS
        return self.sentinels

    def mag_column(self, band: str) -> str | tuple[str, ...] | None:
        """Survey column of the magnitude in ``band`` (None if the mapping has none; a tuple
        of alternatives, the first present being read)."""
        return _band_column(self.mag, band, self.bands)

    def magerr_column(self, band: str) -> str | tuple[str, ...] | None:
        """Survey column of the magnitude error in ``band`` (as :meth:`mag_column`)."""
        return _band_column(self.magerr, band, self.bands)


def _column_choice(value: Any, where: str | os.PathLike, key: str, band: str) -> str | tuple[str, ...]:
    """A band's column in a ``{band: column}`` mapping: one name, or a non-empty list of
    alternatives (as a tuple)."""
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise InputError(where, f"{key} of band {band} must list column names, not {list(value)!r}")
        return tuple(value) if len(value) > 1 else value[0]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise InputError(where, f"{key} of band {band} must be a column name or a list of them, not {value!r}")


def _band_column(spec: str | dict[str, str | tuple[str, ...]] | None, band: str,
                 bands: Sequence[str]) -> str | tuple[str, ...] | None:
    """The column ``spec`` names for ``band``: a template's ``{band}`` replaced by the band and
    ``{index}`` by its 0-based place in ``bands`` (for vector columns, ``PSFMAG[{index}]``)."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        return spec.get(band)
    column = spec.replace("{band}", band)
    if "{index}" in column and band in bands:
        column = column.replace("{index}", str(list(bands).index(band)))
    return column


def _resolve_options(data: Any, where: str | os.PathLike, default_name: str,
                     chosen: Mapping[str, Any]) -> ColumnMapping:
    """Apply a YAML document's ``options`` (the chosen or default choices) and overrides."""
    if not isinstance(data, Mapping):
        raise InputError(where, "a column mapping must be a set of key: value pairs")
    data = dict(data)
    declared = data.pop("options", None) or {}
    if not isinstance(declared, Mapping):
        raise InputError(where, "options must map option names to {default, choices}")
    field_names = {f.name for f in dataclasses.fields(ColumnMapping)} - {"options", "auto"}
    chosen = dict(chosen)
    picked: dict[str, str] = {}
    for opt_name, spec in declared.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("choices"), Mapping):
            raise InputError(where, f"option {opt_name!r} needs a choices mapping")
        if opt_name in field_names:
            raise InputError(where, f"option {opt_name!r} clashes with a mapping key")
        choices = {str(k): v for k, v in spec["choices"].items()}
        value = str(chosen.pop(opt_name, spec.get("default", next(iter(choices)))))
        if value not in choices:
            raise InputError(where, f"{opt_name}={value!r} is not one of "
                                    f"{', '.join(choices)}")
        overrides = choices[value] or {}
        if not isinstance(overrides, Mapping):
            raise InputError(where, f"choice {opt_name}={value} must be key: value pairs")
        data.update(overrides)
        picked[opt_name] = value
    unknown = [k for k in chosen if k not in field_names]
    if unknown:
        known = ", ".join(list(declared) + sorted(field_names))
        raise InputError(where, f"unknown option {unknown[0]!r} (known: {known})")
    data.update(chosen)
    mapping = ColumnMapping.from_dict(data, where, default_name=default_name)
    return dataclasses.replace(mapping, options=picked)


def _preset_root():
    root = resources.files(_PRESET_PACKAGE)
    for part in _PRESET_DIR:
        root = root / part
    return root


def preset_names() -> list[str]:
    """Names of the catalogue presets shipped with skysort, sorted."""
    return sorted(p.name[: -len(".yaml")] for p in _preset_root().iterdir()
                  if p.name.endswith(".yaml"))


def _preset_text(name: str) -> str:
    resource = _preset_root() / f"{name}.yaml"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not resource.is_file():
        raise InputError(f"catalogue preset {name!r}",
                         f"unknown preset (known: {', '.join(preset_names())})")
    return resource.read_text(encoding="utf-8")


def resolve_mapping(spec: ColumnMapping | str | os.PathLike | None) -> ColumnMapping:
    """Turn what a user gave into a :class:`ColumnMapping`.

    Parameters
    ----------
    spec : ColumnMapping, str, path or None
        None gives the automatic mapping; a string containing ``=`` is parsed by
        :meth:`ColumnMapping.from_string`; a path ending in ``.yaml``/``.yml`` is read by
        :meth:`ColumnMapping.from_yaml`; any other string is a preset name, optionally with
        options after a colon (``"sdss:kind=model"``).
    """
    if spec is None:
        return ColumnMapping.automatic()
    if isinstance(spec, ColumnMapping):
        return spec
    if isinstance(spec, os.PathLike) or str(spec).lower().endswith((".yaml", ".yml")):
        return ColumnMapping.from_yaml(spec)
    text = str(spec).strip()
    name, colon, opts = text.partition(":")
    if colon and "=" not in name:  # a compact string's colons are in its labels and ab_offsets
        options: dict[str, str] = {}
        for item in opts.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise InputError(f"catalogue preset {name!r}",
                                 f"expected option=value after ':', got {item!r}")
            options[key.strip()] = value.strip()
        return ColumnMapping.from_preset(name.strip(), **options)
    if "=" in text:
        return ColumnMapping.from_string(text)
    return ColumnMapping.from_preset(text)


def _as_band_tuple(value: Any, where: str | os.PathLike) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, Sequence) or not all(isinstance(b, (str, int)) for b in value):
        raise InputError(where, f"bands must be a list of band names, not {value!r}")
    bands = tuple(str(b) for b in value)
    if len(set(bands)) != len(bands):
        raise InputError(where, f"bands repeat: {' '.join(bands)}")
    return bands


def _as_float_tuple(value: Any, where: str | os.PathLike, key: str) -> tuple[float, ...]:
    if isinstance(value, (str, int, float)):
        value = str(value).replace(",", " ").split()
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(where, f"{key} must be a list of numbers, not {value!r}") from None


# --------------------------------------------------------------------------------------
# Low-level readers and writers
# --------------------------------------------------------------------------------------


def _unknown_format(path: Path) -> InputError:
    if path.is_dir() and _is_hats_folder(path):
        return InputError(path, "is a HATS catalogue, which only skysort predict reads; give a catalogue file or a folder "
                                "of Parquet files here")
    if path.is_dir():
        return InputError(path, f"is a folder without Parquet files, not a catalogue ({_KNOWN_EXTENSIONS}, a folder of "
                                "Parquet files or a HATS catalogue)")
    suffix = "".join(path.suffixes) or "(no extension)"
    if path.suffix.lower() in (".h5", ".hdf5") and path.is_file():
        # A stamp set given where a catalogue is wanted, or a file that is not HDF5 at all.
        import h5py

        what = "a stamp set: give it with --data" if h5py.is_hdf5(path) else "not a readable HDF5 file"
        return InputError(path, f"not a catalogue ({what})")
    return InputError(path, f"unknown catalogue format {suffix!r} (expected {_KNOWN_EXTENSIONS})")


def parquet_folder_files(path: str | os.PathLike) -> list[Path]:
    """The Parquet files of a folder catalogue, as Dask, Spark or a survey's data butler write
    one: every ``*.parquet`` / ``*.pq`` file beneath it, in path order, leaving out those
    under a name that starts with ``_`` or ``.`` (writers' bookkeeping, such as ``_metadata``
    or an unfinished prediction's ``_shards``). Empty when ``path`` is not such a folder."""
    path = Path(path)
    if not path.is_dir() or _is_hats_folder(path):
        return []
    files = [f for f in path.rglob("*") if f.name.lower().endswith(_PARQUET_SUFFIXES) and f.is_file()]
    return sorted(f for f in files if not any(part.startswith(("_", ".")) for part in f.relative_to(path).parts))


def _is_hats_folder(path: Path) -> bool:
    """A HATS catalogue or collection: its Parquet files are not one table (a collection's
    margin catalogues repeat rows), so only ``skysort predict`` reads it, through LSDB."""
    return any((path / name).is_file() for name in ("hats.properties", "properties", "collection.properties"))


def _format_of(path: Path) -> str | None:
    """``fits``, ``parquet``, ``csv``, ``tsv``, ``ipac``, ``votable`` or ``sextractor`` from the
    file name (``parquet`` for a folder of Parquet files, :func:`parquet_folder_files`; a ``.cat``
    file is FITS or SExtractor's ASCII by its first bytes), None when unknown."""
    if path.is_dir():
        return "parquet" if parquet_folder_files(path) else None
    name = path.name.lower()
    compression = next((suffix for suffix in _CSV_COMPRESSIONS if name.endswith(suffix)), None)
    if compression:
        name = name[: -len(compression)]
        if name.endswith(_FITS_SUFFIXES):  # astropy reads all three compressions, and writes gzip
            return "fits"
        return _text_format_of(name)
    if name.endswith(_FITS_SUFFIXES) or name.endswith(".ldac"):
        return "fits"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_VOTABLE_SUFFIXES):
        return "votable"
    if name.endswith(".cat"):  # SExtractor writes either FITS_LDAC or ASCII_HEAD under this name
        return "fits" if _starts_with(path, b"SIMPLE  =") else "sextractor"
    return _text_format_of(name)


def _starts_with(path: Path, signature: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(signature)) == signature
    except OSError:
        return False


def fits_table_hdu(hdul: Any, path: str | os.PathLike) -> int:
    """Index of the catalogue's table in an open FITS file: SExtractor's ``LDAC_OBJECTS`` in a
    FITS_LDAC catalogue (its first table, ``LDAC_IMHEAD``, holds the image header), else the
    first table holding rows (the first table when none does). When other tables hold rows too,
    a warning names the one read.

    Raises
    ------
    InputError
        The file holds no table, or several ``LDAC_OBJECTS`` tables with rows (SExtractor run
        on a multi-extension image writes one per chip; reading the first would lose the others).
    """
    from astropy.io import fits

    tables = [i for i, hdu in enumerate(hdul) if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))]
    if not tables:
        raise InputError(path, "no table HDU")

    def rows(index: int) -> int:
        return int(hdul[index].header.get("NAXIS2", 0))

    ldac = [i for i in tables if hdul[i].name == "LDAC_OBJECTS"]
    if ldac:
        filled = [i for i in ldac if rows(i)]
        if len(filled) > 1:
            raise InputError(path, f"a FITS_LDAC catalogue of {len(ldac)} chips (LDAC_OBJECTS in HDUs "
                                   f"{', '.join(map(str, ldac))}): skysort reads one catalogue table per file; join the "
                                   "chips' tables into one (e.g. astropy.table.vstack, with a chip column if NUMBER "
                                   "repeats) or give one file per chip")
        return filled[0] if filled else ldac[0]
    filled = [i for i in tables if rows(i)]
    if len(filled) > 1:
        def name(index: int) -> str:
            return f"HDU {index}" + (f" ({hdul[index].name})" if hdul[index].name else "")

        report_problem(None, path, f"{len(filled)} tables hold rows; the catalogue is read from the first, {name(filled[0])}, "
                                   f"{rows(filled[0]):,} rows (not {', '.join(name(i) for i in filled[1:])})")
    return filled[0] if filled else tables[0]


def _text_format_of(name: str) -> str | None:
    """``csv``, ``tsv`` or ``ipac`` from a (lower-case, uncompressed) file name, else None."""
    for suffixes, fmt in ((_CSV_SUFFIXES, "csv"), (_TSV_SUFFIXES, "tsv"), (_IPAC_SUFFIXES, "ipac")):
        if name.endswith(suffixes):
            return fmt
    return None


def open_csv_bytes(path: str | os.PathLike) -> IO[bytes]:
    """A CSV catalogue opened for reading bytes, decompressed as its name says (``.gz``,
    ``.bz2``, ``.xz``). A Python file object streams: the file is never held whole."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        import bz2

        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        import lzma

        return lzma.open(path, "rb")
    return open(path, "rb")


def _is_ecsv(path: Path) -> bool:
    """Whether a ``.csv``/``.ecsv`` file is ECSV (its first line is ECSV's signature)."""
    compressed = Path(path).name.lower().endswith(_CSV_COMPRESSIONS)
    try:
        with open_csv_bytes(path) as fh:
            return fh.read(7) == b"# %ECSV"
    except Exception as exc:  # noqa: BLE001 - BadGzipFile, bz2's OSError, LZMAError, EOFError: all the file's fault
        if not compressed:
            raise
        raise InputError(path, f"cannot read as {Path(path).suffix[1:]}-compressed CSV: {_first_line(exc)}") from None


def missing_ids(ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Whether each id is missing: masked (``mask``, or the array's own mask), NaN, None / NA, or
    blank text. ``ids`` holds numbers or decoded text."""
    data = np.asarray(np.ma.getdata(ids))
    missing = np.ma.getmaskarray(ids).copy() if mask is None else np.asarray(mask, bool).copy()
    if data.dtype.kind == "f":
        missing |= ~np.isfinite(data)
    elif data.dtype.kind in "SUO":
        if data.dtype.kind == "O":
            import pandas as pd

            missing |= np.asarray(pd.isna(data), dtype=bool)
        text = data.astype(str)
        missing |= (np.char.str_len(text) == 0) | np.char.isspace(text)
    return missing


class TextLayout(NamedTuple):
    """Where the columns and rows of a plain delimited text catalogue (CSV or TSV) are.

    Attributes
    ----------
    names : list of str
        Column names, stripped of surrounding blanks.
    delimiter : str
        ``","`` or ``"\\t"``.
    skip_rows : int
        Lines before the first data row (comments, the header, VizieR's units and dashes lines).
    units : dict
        Column name -> unit text from a units line under the header (VizieR's ``deg``,
        ``mag``; sexagesimal ``h:m:s`` too, which the readers recognise by the cells), or empty.
    lines_under_header : int
        Lines between the header and the first row that are not blank (the dashes line, and
        a units line with at least one unit).
    """

    names: list[str]
    delimiter: str
    skip_rows: int
    units: dict[str, str]
    lines_under_header: int = 0


def _is_rule_line(cells: Sequence[str]) -> bool:
    """Whether a line's cells are only dashes, as VizieR's rule under its header and units (a
    column's width of them; a row of single-dash placeholders for missing values is data)."""
    cells = [cell.strip() for cell in cells]
    return all(set(cell) <= {"-"} for cell in cells) and any(len(cell) >= 3 for cell in cells)


def text_layout(path: str | os.PathLike) -> TextLayout:
    """The :class:`TextLayout` of a plain CSV (comma-separated) or TSV (tab-separated) file.

    Blank lines and comment lines (first character ``#``) before the header are skipped: SDSS
    SkyServer's CSV output, for one, begins with a ``#Table1`` line, and VizieR's TSV with the
    query and a description of every column. VizieR's tab-separated download puts a units line and a line of dashes between the header and the
    rows; when one of the two lines under a TSV header is such a dashes line, the lines up to
    it are skipped and a line between gives the columns' units.

    Raises
    ------
    InputError
        A file without a header line, or one whose header is separated by other characters
        than the file name says (:func:`check_separator`).
    """
    import csv
    import itertools

    delimiter = "\t" if _format_of(Path(path)) == "tsv" else ","
    number, line, following_lines = -1, "", []
    with io.TextIOWrapper(open_csv_bytes(path), encoding="utf-8-sig", errors="replace", newline="") as fh:
        # Blank and comment lines before the header are skipped; the two lines after it are kept.
        for number, line in enumerate(fh):
            if line.strip() and not line.lstrip().startswith("#"):
                following_lines = list(itertools.islice(fh, 2))
                break
        else:
            number = -1
    header = next(csv.reader([line], delimiter=delimiter), None) if number >= 0 else None
    if not header or not any(name.strip() for name in header):
        raise InputError(path, f"cannot read as {text_format_name(delimiter)}: no header line")
    if len(header) == 1:
        check_separator(path, header[0], delimiter)
    names = [name.strip() for name in header]
    following = list(csv.reader(following_lines, delimiter=delimiter))
    # Only VizieR's tab-separated text has these lines; in CSV a line of dashes is data.
    rule = next((k for k, cells in enumerate(following) if _is_rule_line(cells)), None) if delimiter == "\t" else None
    if rule is None:
        return TextLayout(names, delimiter, number + 1, {})
    units = dict(zip(names, (cell.strip() for cell in following[0]))) if rule == 1 else {}
    units = {name: unit for name, unit in units.items() if unit}
    return TextLayout(names, delimiter, number + 2 + rule, units, 1 + bool(units))


def text_format_name(delimiter: str) -> str:
    """``TSV`` or ``CSV``, the name of delimited text by its ``delimiter``, for messages."""
    return "TSV" if delimiter == "\t" else "CSV"


def check_separator(path: str | os.PathLike, header: str, delimiter: str = ",") -> None:
    """Refuse a CSV (``delimiter`` ``,``) or TSV (tab) file whose ``header`` line holds no
    ``delimiter`` but other separators: spreadsheet programs in many locales write semicolons,
    and tab- or space-separated tables are named .csv too. Read with the wrong separator such
    a file is one column, which would fail later as a missing position or magnitude column."""
    header = header.strip("\r\n")
    if delimiter in header or not header.strip():
        return
    if delimiter == "\t":
        if "," in header:
            raise InputError(path, "the header line is separated by commas, not tabs: name the file .csv")
        return  # a one-column table
    header = header.strip()
    if "\t" in header:
        raise InputError(path, "the header line is separated by tabs, not commas: name the file .tsv (tab-separated), "
                               "or save the table as comma-separated CSV")
    for separator, name in ((";", "semicolons"), ("|", "vertical bars"), (" ", "spaces")):
        if separator in header:
            raise InputError(path, f"the header line is separated by {name}, not commas: save the table as "
                                   "comma-separated CSV (with '.' as the decimal point)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_raw(path: Path) -> tuple[Table, dict[str, Any]]:
    """Read the file as it is; also return skysort metadata it carries (may be empty)."""
    fmt = _format_of(path)
    if fmt is None:
        raise _unknown_format(path)
    if not path.exists():
        raise InputError(path, "catalogue file not found")
    if not path.is_file() and not path.is_dir():
        raise InputError(path, "not a file")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, "catalogue file is empty")
    try:
        with warnings.catch_warnings():
            # Survey files often carry units astropy cannot parse (nanomaggies, "mag(AB)");
            # those columns are still usable, so the warnings are only noise.
            warnings.simplefilter("ignore", u.UnitsWarning)
            if path.is_file():
                _check_content(path, fmt)
            if fmt == "fits":
                table = _read_fits(path)
                meta = _json_or_empty(table.meta.get(_FITS_META_KEY))
            elif fmt == "sextractor":
                table, meta = Table.read(path, format="ascii.sextractor"), {}
            elif fmt == "parquet":
                table, meta = _read_parquet(path)
            elif fmt == "votable":
                # The first table; VOTable's own warnings (non-standard units, ucds) are noise here.
                warnings.simplefilter("ignore", AstropyWarning)
                table = Table.read(path, format="votable")
                meta = _json_or_empty(table.meta.get(_FITS_META_KEY))
            elif fmt == "ipac":
                # Its nulls are masked and its units read (unknown ones are noise, as above).
                table, meta = Table.read(path, format="ascii.ipac"), {}
            else:
                is_ecsv = fmt == "csv" and _is_ecsv(path)
                table = Table.read(path, format="ascii.ecsv") if is_ecsv else _read_delimited(path)
                meta = dict(table.meta) if is_ecsv else {}
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure is the file's problem
        raise InputError(path, f"cannot read as {fmt.upper()}: {_first_line(exc)}") from None
    return table, meta


def _read_fits(path: Path) -> Table:
    """The catalogue table of a FITS file (:func:`fits_table_hdu`).

    Raises
    ------
    InputError
        A file cut short (an interrupted download) or with a damaged header where its table
        should be, said so: astropy only warns, then fails on the short data or finds no table.
    """
    from astropy.io import fits

    failure: BaseException | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        try:
            with fits.open(path, memmap=False) as hdul:
                table = Table.read(hdul, format="fits", hdu=fits_table_hdu(hdul, path))
        except Exception as exc:  # noqa: BLE001 - reported below, after the warnings are known
            failure = exc
    truncated = next((w for w in caught if "truncated" in str(w.message)), None)
    damaged = truncated or next((w for w in caught if "Error validating header" in str(w.message)), None)
    if truncated is not None or (failure is not None and damaged is not None):
        lines = [line.strip() for line in str(damaged.message).splitlines() if line.strip()]  # type: ignore[union-attr]
        # astropy's header message leads with a note on its zero-based numbering; the cause follows.
        detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error validating header") else lines[0]
        raise InputError(path, f"the FITS file is truncated or damaged ({detail}): download or copy it again")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if failure is not None:
        raise failure
    return table


#: First bytes of file formats, to say what a file is when its extension says otherwise.
_SIGNATURES = (
    (b"SIMPLE  =", "fits", "a FITS file"), (b"PAR1", "parquet", "a Parquet file"), (b"\x89HDF", "hdf5", "an HDF5 file"),
    (b"\x1f\x8b", "gz", "gzip-compressed"), (b"BZh", "bz2", "bzip2-compressed"), (b"\xfd7zXZ\x00", "xz", "xz-compressed"),
    (b"# %ECSV", "ecsv", "an ECSV table"),
)


def _check_content(path: Path, fmt: str) -> None:
    """Refuse a file whose first bytes show another format than its name says (a Parquet file
    named .fits, a FITS file named .csv, a compressed file without its compression's suffix),
    or an HTML page (what a failed download saves), naming what it is: the reader for the
    name's format would fail on it with a message about bytes, or misread it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return  # the reader reports it
    kind, what = next(((k, w) for signature, k, w in _SIGNATURES if head.startswith(signature)), (None, None))
    lead = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lead.startswith((b"<!doctype html", b"<html")):
        raise InputError(path, f"cannot read as {fmt.upper()}: the file is an HTML page, not a catalogue (what a failed "
                               "download or an archive's error page saves): download the table again")
    if kind is None:
        return
    name = path.name.lower()
    compression = next((c[1:] for c in _CSV_COMPRESSIONS if name.endswith(c)), None)
    if kind == compression or kind == fmt or (fmt == "fits" and kind in ("gz", "bz2", "xz")) \
            or (kind == "ecsv" and fmt == "csv"):
        return
    if kind in ("gz", "bz2", "xz"):
        problem = f"the file is {what}, but its name does not end in .{kind}: add .{kind} to the name"
    else:
        problem = f"the file is {what}, not {_FORMAT_NAMES.get(fmt, fmt.upper())}: give it the extension of its format"
    raise InputError(path, f"cannot read as {fmt.upper()}: {problem}")


_FORMAT_NAMES = {"fits": "FITS", "parquet": "Parquet", "csv": "CSV", "tsv": "TSV", "ipac": "an IPAC table",
                 "votable": "VOTable", "sextractor": "a SExtractor catalogue"}


def _read_delimited(path: Path) -> Table:
    """A plain CSV or TSV file as a Table (:func:`text_layout`: comments, VizieR's units and
    dashes lines), with the units of a units line that astropy knows."""
    layout = text_layout(path)
    # astropy counts the lines from the header on without comment and blank lines; the first
    # data row follows the header and layout.lines_under_header such lines.
    table = Table.read(path, format="ascii.tab" if layout.delimiter == "\t" else "ascii.csv",
                       comment=r"\ufeff?\s*#", data_start=1 + layout.lines_under_header)  # after a byte-order mark too
    # The byte-order mark spreadsheet programs write is not part of the first name, and the
    # tab reader keeps blanks around names.
    for name, clean in zip(table.colnames, layout.names):
        if name != clean and name.lstrip("\ufeff").strip() == clean:
            table.rename_column(name, clean)
    for name, unit in layout.units.items():
        parsed = parse_unit(unit)
        if name in table.colnames and parsed is not None:
            table[name].unit = parsed
    return table


def _json_or_empty(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _astropy_parquet_header(schema: Any) -> dict[str, Any]:
    """The table header astropy writes into a Parquet file's metadata (``table_meta_yaml``:
    columns' units, serialized columns), empty for files from other writers."""
    text = (schema.metadata or {}).get(b"table_meta_yaml")
    if not text:
        return {}
    from astropy.table.meta import get_header_from_yaml

    try:
        return get_header_from_yaml(text.decode("utf-8").splitlines())
    except Exception:  # noqa: BLE001 - unreadable metadata declares nothing
        return {}


def parquet_mask_columns(schema: Any) -> dict[str, str]:
    """Column name -> name of the boolean column holding its mask, for masked columns that
    astropy wrote to Parquet (``Table.write``): their masked cells hold ordinary numbers,
    and the mask is a separate ``<name>.mask`` column, not Parquet nulls."""
    serialized = (_astropy_parquet_header(schema).get("meta") or {}).get("__serialized_columns__") or {}
    masks = {}
    for name, parts in serialized.items():
        if isinstance(parts, Mapping) and isinstance(parts.get("mask"), Mapping) and isinstance(parts.get("data"), Mapping):
            data, mask = parts["data"].get("name"), parts["mask"].get("name")
            if data in schema.names and mask in schema.names:
                masks[data] = mask
    return masks


def arrow_to_numpy(column: Any) -> np.ndarray:
    """An Arrow array or chunked array as numpy with its nulls masked: integers, booleans and
    text keep their type (pyarrow's own conversion turns integers with nulls into floats and
    text nulls into None)."""
    import pyarrow as pa

    if not column.null_count:
        return column.to_numpy(zero_copy_only=False)
    mask = column.is_null().to_numpy(zero_copy_only=False)
    kind = column.type
    if pa.types.is_null(kind):
        return np.ma.MaskedArray(np.zeros(len(column)), mask=mask)
    fill = "" if pa.types.is_string(kind) or pa.types.is_large_string(kind) else (False if pa.types.is_boolean(kind) else 0)
    return np.ma.MaskedArray(column.fill_null(pa.scalar(fill, kind)).to_numpy(zero_copy_only=False), mask=mask)


def masks_as_nulls(arrow: Any, masks: Mapping[str, str] | None = None) -> Any:
    """A pyarrow table with the masks astropy wrote beside its columns turned into nulls, and
    the mask columns left out. ``masks`` (column -> its mask column) defaults to the table's
    own metadata (:func:`parquet_mask_columns`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    masks = parquet_mask_columns(arrow.schema) if masks is None else masks
    for data, mask in masks.items():
        column = arrow.column(data)
        nulled = pc.if_else(pc.fill_null(arrow.column(mask), False), pa.scalar(None, column.type), column)
        arrow = arrow.set_column(arrow.schema.get_field_index(data), arrow.schema.field(data), nulled)
        arrow = arrow.remove_column(arrow.schema.get_field_index(mask))
    return arrow


def parquet_units(schema: Any) -> dict[str, Any]:
    """Column units a Parquet file declares: in skysort's metadata, or where astropy writes
    them (``table_meta_yaml``); none for files from other writers."""
    header = _astropy_parquet_header(schema)
    units = {column["name"]: column.get("unit") for column in header.get("datatype", [])
             if isinstance(column, Mapping) and "name" in column}
    carried = (schema.metadata or {}).get(_PARQUET_META_KEY)
    ours = _json_or_empty(carried.decode("utf-8", "replace") if carried else None).get("units")
    if isinstance(ours, dict):
        units.update(ours)
    return units


def _read_parquet_folder(path: Path):
    """The Parquet files of a folder catalogue as one pyarrow table (the first file's metadata;
    types promoted where files differ, e.g. int32 and int64)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_folder_files(path)
    tables = []
    for file in files:
        try:
            tables.append(masks_as_nulls(pq.read_table(file)))
        except Exception as exc:  # noqa: BLE001 - a reader failure is that file's problem
            raise InputError(file, f"cannot read as PARQUET: {_first_line(exc)}") from None
        check_same_columns(file, tables[0].column_names, tables[-1].column_names, files[0],
                           first_schema=tables[0].schema, schema=tables[-1].schema)
    return pa.concat_tables(tables, promote_options="permissive").replace_schema_metadata(tables[0].schema.metadata)


def check_same_columns(file: Path, first: Sequence[str], names: Sequence[str], first_file: Path,
                       needed: Sequence[str] | None = None, *, first_schema: Any = None, schema: Any = None) -> None:
    """Refuse a file of a folder catalogue that lacks columns of its first file (all of them, or
    only ``needed``), or, given both files' pyarrow schemas, holds one of them as text where the
    first file holds numbers (or the reverse): one catalogue has one set of columns, and an id
    column of integers in one file and text in the next has no common type. Widths may differ
    (int32 and int64): they are widened."""
    checked = needed if needed is not None else first
    missing = [name for name in checked if name not in names]
    if missing:
        raise InputError(file, f"lacks column(s) {', '.join(missing)} of {first_file.name}, the folder's first file: "
                               "its files must hold the same columns")
    if first_schema is None or schema is None:
        return
    differing = [f"{name} ({schema.field(name).type} here, {first_schema.field(name).type} there)" for name in checked
                 if name in first_schema.names and _arrow_kind(schema.field(name).type) != _arrow_kind(first_schema.field(name).type)]
    if differing:
        raise InputError(file, f"holds column(s) {', '.join(differing)} of another kind than {first_file.name}, the folder's "
                               "first file: its files must hold each column as numbers in all or as text in all")


def _arrow_kind(kind: Any) -> str:
    """``"text"``, ``"number"``, ``"bool"`` or the type's name: what must agree between files."""
    import pyarrow as pa

    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
            or pa.types.is_large_binary(kind) or pa.types.is_dictionary(kind):
        return "text"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    return "bool" if pa.types.is_boolean(kind) else str(kind)


def _read_parquet(path: Path) -> tuple[Table, dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.is_dir():
        arrow = _read_parquet_folder(path)
    else:
        arrow = masks_as_nulls(pq.read_table(path))
    carried = (arrow.schema.metadata or {}).get(_PARQUET_META_KEY)
    meta = _json_or_empty(carried.decode("utf-8", "replace") if carried else None)
    meta.pop("units", None)
    units = parquet_units(arrow.schema)
    table = Table()
    for name, chunked in zip(arrow.column_names, arrow.columns):
        arr = chunked.combine_chunks()
        mask = arr.is_null().to_numpy(zero_copy_only=False)
        kind = arr.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            data = np.array(arr.fill_null("").to_pylist(), dtype=str)
        elif pa.types.is_floating(kind):
            data = arr.fill_null(math.nan).to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(kind):
            data = arr.fill_null(0).to_numpy(zero_copy_only=False)
        elif pa.types.is_boolean(kind):
            data = arr.fill_null(False).to_numpy(zero_copy_only=False)
        else:
            data = arr.to_numpy(zero_copy_only=False)
        unit = units.get(name)
        if mask.any():
            table[name] = MaskedColumn(data, mask=mask, unit=unit)
        else:
            table[name] = Column(data, unit=unit)
    return table, meta


def _json_safe(value: Any) -> Any:
    """``value`` reduced to what JSON (and ECSV's YAML header) can hold."""
    return json.loads(json.dumps(value, default=str))


def _write_parquet(table: Table, tmp: Path, meta: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays, units = [], {}
    for name in table.colnames:
        col = table[name]
        if col.ndim > 1:
            raise ValueError(f"column {name!r} is multidimensional; Parquet output needs scalars")
        mask = np.ma.getmaskarray(col)
        data = np.asarray(np.ma.getdata(col))
        if data.dtype.byteorder == (">" if sys.byteorder == "little" else "<"):
            # Columns read from FITS are big-endian; Arrow takes native byte order only.
            data = data.astype(data.dtype.newbyteorder("="))
        if data.dtype.kind == "O":
            arrays.append(pa.array([None if m else v for v, m in zip(data.tolist(), mask)]))
        else:
            arrays.append(pa.array(data, mask=mask if mask.any() else None))
        if col.unit is not None:
            units[name] = col.unit.to_string()
    arrow = pa.Table.from_arrays(arrays, names=list(table.colnames))
    meta = dict(meta, units=units)
    widths = astropy_text_widths(text_column_lengths(arrow))
    arrow = arrow.replace_schema_metadata({_PARQUET_META_KEY: json.dumps(meta).encode(), **widths})
    pq.write_table(arrow, tmp)


def text_column_lengths(arrow: Any, lengths: dict[str, int | None] | None = None) -> dict[str, int | None]:
    """The longest value (characters) of each text column of a pyarrow table, None for a column
    holding nulls; ``lengths`` (from other tables of the same schema) are combined in."""
    import pyarrow.compute as pc

    lengths = dict(lengths or {})
    for name in text_columns(arrow.schema):
        column = arrow.column(name)
        if name in lengths and lengths[name] is None:
            continue
        if column.null_count:
            lengths[name] = None
            continue
        longest = pc.max(pc.utf8_length(column)).as_py() if len(column) else 0
        lengths[name] = max(lengths.get(name) or 0, longest or 0, 1)
    return lengths


def text_columns(schema: Any) -> list[str]:
    """Names of the text (string) fields of a pyarrow schema."""
    import pyarrow as pa

    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def astropy_text_widths(lengths: Mapping[str, int | None]) -> dict[bytes, bytes]:
    """Parquet schema metadata giving astropy's reader the width of each text column
    (``table::len::NAME``), as astropy's own writer records it: without it ``Table.read`` warns
    once per text column. Columns with nulls are left out: astropy would read a null as the
    text ``'None'`` cut to that width, where without the key it fails on the null instead."""
    return {f"table::len::{name}".encode(): str(width).encode() for name, width in lengths.items() if width is not None}


def _write_fits(table: Table, tmp: Path, meta: dict[str, Any], gzipped: bool) -> None:
    from astropy.io import fits

    plain = table.copy(copy_data=False)
    # Only the JSON card carries metadata: nested values (provenance) cannot be FITS cards.
    plain.meta.clear()
    for name in plain.colnames:
        column = plain[name]
        if column.dtype.kind == "b" and np.ma.getmaskarray(column).any():
            # astropy writes a masked logical as its stored value (a missing True reads back
            # True); as a small integer the gaps are TNULL cells, read back masked.
            plain[name] = MaskedColumn(np.ma.getdata(column).astype(np.int16), mask=np.ma.getmaskarray(column),
                                       unit=column.unit, description=column.description)
    hdu = fits.table_to_hdu(plain)
    hdu.header[_FITS_META_KEY] = (json.dumps(meta), "skysort metadata (JSON)")
    hdul = fits.HDUList([fits.PrimaryHDU(), hdu])
    if gzipped:
        # astropy picks compression from the file name, and the temporary name ends in .tmp.
        buffer = io.BytesIO()
        hdul.writeto(buffer)
        with gzip.open(tmp, "wb") as fh:
            fh.write(buffer.getvalue())
    else:
        hdul.writeto(tmp, overwrite=True)


def _write_ecsv(table: Table, tmp: Path, meta: dict[str, Any]) -> None:
    out = table.copy(copy_data=False)
    out.meta.clear()
    out.meta.update(meta)
    out.write(tmp, format="ascii.ecsv", delimiter=",", overwrite=True)


# --------------------------------------------------------------------------------------
# Public reading and writing
# --------------------------------------------------------------------------------------


def _warn_repeated_ids(ids: Column, path: str | os.PathLike, name: str) -> None:
    """Warn when ids repeat (a multi-epoch catalogue, or a merge gone wrong): every row is still
    read and classified, but the outputs' ``id`` column no longer tells those rows apart."""
    present = ids.data[~ids.mask] if isinstance(ids, MaskedColumn) else ids.data
    values, counts = np.unique(np.asarray(present), return_counts=True)
    repeated = values[counts > 1]
    if len(repeated):
        shown = ", ".join(str(v) for v in repeated[:3]) + (", ..." if len(repeated) > 3 else "")
        what = "1 id" if len(repeated) == 1 else f"{len(repeated):,} ids"
        # 64-bit survey ids (SDSS objID ~1.2e18) written as floating-point numbers keep only
        # about 16 digits, so neighbouring objects collapse onto one id.
        rounded = (np.issubdtype(values.dtype, np.floating) and np.nanmax(np.abs(values)) > 2.0**53)
        hint = (f"; the ids are floating-point numbers beyond 2**53, which keep only about 16 digits: the file lost "
                "them when it was written, so read the ids from a copy that stores them as integers") if rounded else ""
        report_problem(None, path, f"{what} of column {name!r} {'occurs' if len(repeated) == 1 else 'occur'} more than once ({shown}; "
                                   f"{int(counts[counts > 1].sum()):,} rows); each row is classified, but the "
                                   f"outputs' id column does not tell those rows apart: match results by row order{hint}")


def read_catalog(path: str | os.PathLike,
                 mapping: ColumnMapping | str | os.PathLike | None = None,
                 bands: Sequence[str] | str | None = None,
                 require_positions: bool = True) -> Table:
    """Read a catalogue and translate it into skysort's standard columns.

    Parameters
    ----------
    path : str or os.PathLike
        FITS, Parquet or CSV file (format from the extension; see the module docstring).
    mapping : ColumnMapping, str or None
        Column mapping, or a preset name / YAML path / compact string (see
        :func:`resolve_mapping`). None detects standard and common names automatically.
    bands : sequence of str, str or None
        Bands to translate into ``mag_<band>``/``magerr_<band>``, in this order (a string
        is split on spaces or commas). None takes the mapping's bands, or, without a
        mapping, every ``mag_<band>`` column present. Mapped magnitude columns of bands not
        asked for pass through unchanged.
    require_positions : bool
        Whether a catalogue without ``ra``/``dec`` or ``x``/``y`` is an error (a table that
        only accompanies stamps, e.g. for ``skysort import``, needs none).

    Returns
    -------
    astropy.table.Table
        ``id``, ``ra``, ``dec`` [deg], ``x``, ``y`` [pix, 0-based], ``label``,
        ``mag_<band>``, ``magerr_<band>`` [AB mag] (those present, in this order), then every
        other column. Magnitudes and errors are float :class:`~astropy.table.MaskedColumn`
        with sentinels and non-finite values masked. ``table.meta`` holds ``source_file``,
        ``mapping`` (its name and options), ``bands``, ``reference_band`` when the mapping
        has one, and, when the file was written by skysort, ``source_provenance`` (its
        provenance record) and ``source_meta`` (its other metadata, e.g. a prediction
        file's model and prior).

    Raises
    ------
    skysort.errors.InputError
        Missing, empty, unreadable or unknown-format file; a catalogue without rows; mapped
        columns missing; neither ``ra``/``dec`` nor ``x``/``y`` positions.
    """
    path = Path(path)
    cmap = resolve_mapping(mapping)
    raw, carried = _read_raw(path)
    return _standardise(raw, carried, path, cmap, bands, require_positions)


def standardise_catalog(table: Table, mapping: ColumnMapping | str | os.PathLike | None = None,
                        bands: Sequence[str] | str | None = None, require_positions: bool = True) -> Table:
    """Translate a table already in memory into skysort's standard columns, as
    :func:`read_catalog` does for a file.

    Parameters
    ----------
    table : astropy.table.Table
        The catalogue as read (e.g. ``Table.read("kids.fits")``); it is not modified.
        ``table.meta["source_file"]``, when present, names it in messages.
    mapping, bands, require_positions
        As for :func:`read_catalog`.

    Returns
    -------
    astropy.table.Table
        As :func:`read_catalog` returns.
    """
    source = table.meta.get("source_file", "catalogue")
    return _standardise(table, {}, source, resolve_mapping(mapping), bands, require_positions)


def _standardise(raw: Table, carried: Mapping[str, Any], path: str | os.PathLike, cmap: ColumnMapping,
                 bands: Sequence[str] | str | None, require_positions: bool) -> Table:
    """The column translation of :func:`read_catalog`, on a table as read from ``path``."""
    if len(raw) == 0:
        raise InputError(path, "catalogue has no rows")
    requested = None if bands is None else _as_band_tuple(bands, "bands")
    sources, band_list = _locate_columns(raw, cmap, requested, path, require_positions)
    elements = {name: element_reference(name) for name in sources.values() if name is not None and name not in raw.colnames}
    consumed: set[str] = set()
    if elements:
        raw = raw.copy(copy_data=False)
        for name, (base, _) in elements.items():  # type: ignore[misc]
            raw[name] = MaskedColumn(column_element(raw[base], name, path), unit=raw[base].unit)
            consumed.add(base)

    out = Table()
    if sources.get("id") is not None:
        out["id"] = raw[sources["id"]].copy()
        consumed.add(sources["id"])
        _warn_repeated_ids(out["id"], path, sources["id"])
    else:
        out["id"] = Column(np.arange(len(raw), dtype=np.int64))
    out["id"].description = "object identifier"
    for key, unit, desc in (("ra", u.deg, "right ascension (ICRS)"),
                            ("dec", u.deg, "declination (ICRS)")):
        if sources.get(key) is not None:
            scale = degrees_per_unit(raw[sources[key]].unit, sources[key], path, key)
            out[key] = _float_column(raw[sources[key]], unit, desc, path, key, scale)
            consumed.add(sources[key])
    if "ra" in out.colnames and "dec" in out.colnames:
        _sky_positions(out["ra"], out["dec"], path)
    for key in ("x", "y"):
        if sources.get(key) is not None:
            image = f"the {cmap.reference_band} image" if cmap.reference_band else "image"
            col = _float_column(raw[sources[key]], u.pix, f"0-based pixel {key} in {image}", path)
            if cmap.pixel_origin and getattr(cmap, key) is not None:
                col -= cmap.pixel_origin
            out[key] = col
            consumed.add(sources[key])
    if sources.get("label") is not None:
        out["label"] = _normalise_labels(raw[sources["label"]], cmap.labels)
        consumed.add(sources["label"])

    sentinels = np.array(cmap.effective_sentinels(), dtype=np.float64)
    for band in band_list:
        mag_name = sources[f"mag_{band}"]
        err_name = sources.get(f"magerr_{band}")
        if cmap.flux_unit:
            mag, err = _magnitudes_from_fluxes(raw, mag_name, err_name, cmap.flux_unit, sentinels, path)
            note = f" (Pogson, from flux column {mag_name} [{cmap.flux_unit}]; NaN where the flux is not positive)"
        else:
            offset = cmap.ab_offsets.get(band, 0.0)
            check_magnitude_unit(raw[mag_name].unit, mag_name, path, offset)
            mag = _masked_magnitudes(raw[mag_name], sentinels, path)
            if offset:
                mag = MaskedColumn(mag.data + offset, mask=mag.mask)
            note = f" (column {mag_name}{f', catalogue value {offset:+g} mag' if offset else ''})"
            err = _masked_magnitudes(raw[err_name], sentinels, path) if err_name is not None else None
        out[f"mag_{band}"] = MaskedColumn(mag, unit=u.mag, description=f"AB magnitude, band {band}{note}")
        consumed.add(mag_name)
        if err_name is not None:
            err.mask |= mag.mask
            out[f"magerr_{band}"] = MaskedColumn(err, unit=u.mag,
                                                 description=f"AB magnitude error, band {band}")
            consumed.add(err_name)

    for name in raw.colnames:
        if name in consumed:
            continue
        target = name
        while target in out.colnames:
            target = f"{target}_orig"
        out[target] = raw[name]

    out.meta["source_file"] = str(path)
    out.meta["mapping"] = cmap.describe()
    out.meta["bands"] = list(band_list)
    applied = {b: cmap.ab_offsets[b] for b in band_list if cmap.ab_offsets.get(b)}
    if applied:
        out.meta["ab_offsets"] = applied
    if sources.get("x") is not None and cmap.reference_band:
        out.meta["reference_band"] = cmap.reference_band
    if isinstance(carried.get("provenance"), dict):
        out.meta["source_provenance"] = carried["provenance"]
    stored = {k: v for k, v in carried.items() if k not in ("provenance", "units")}
    if stored:
        out.meta["source_meta"] = stored
    return out


def read_unique_catalogs(paths: Sequence[str | os.PathLike], mapping: ColumnMapping | str | os.PathLike | None = None,
                         match_arcsec: float = 0.5) -> Table:
    """Read several catalogues with one mapping and keep one row per object.

    Rows are the same object when their positions fall in the same cell of ``match_arcsec``
    [arcsec] on the sky; identifiers are not compared, because some public copies of survey
    tables rounded them. The first row of each object is kept, in file order.

    Parameters
    ----------
    paths : sequence of path-like
        Catalogues with ``ra``/``dec`` (after the mapping).
    mapping : ColumnMapping, str or None
        As for :func:`read_catalog`.
    match_arcsec : float
        Matching cell [arcsec].

    Returns
    -------
    astropy.table.Table
        As :func:`read_catalog`, with ``meta["source_files"]``.
    """
    from astropy.table import vstack

    tables = [read_catalog(p, mapping=mapping, require_positions=False) for p in paths]
    table = vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    ra = np.asarray(table["ra"], float)
    dec = np.asarray(table["dec"], float)
    cell = match_arcsec / 3600.0
    key = np.round(ra * np.cos(np.radians(dec)) / cell).astype(np.int64) * 10_000_000_000 + np.round(dec / cell).astype(np.int64)
    _, first = np.unique(key, return_index=True)
    unique = table[np.sort(first)]
    unique.meta["source_files"] = [str(p) for p in paths]
    return unique


def _auto_position_pair(by_lower: Mapping[str, list[str]]) -> tuple[str, str] | None:
    """The first ra/dec pair of :data:`_AUTO_POSITIONS` among the columns (lower-case name ->
    names), None when there is none."""
    return next(((by_lower[ra][0], by_lower[dec][0]) for ra, dec in _AUTO_POSITIONS if ra in by_lower and dec in by_lower),
                None)


def _locate_columns(raw: Table, cmap: ColumnMapping, requested: tuple[str, ...] | None,
                    path: Path, require_positions: bool = True) -> tuple[dict[str, str | None], tuple[str, ...]]:
    """Source column for every standard column, and the bands to read."""
    names = list(raw.colnames)
    by_lower: dict[str, list[str]] = {}
    for n in names:
        by_lower.setdefault(n.lower(), []).append(n)

    def find(wanted: str) -> str | None:
        if wanted in names:
            return wanted
        hits = by_lower.get(wanted.lower(), [])
        if len(hits) == 1:
            return hits[0]
        element = element_reference(wanted)
        base = find(element[0]) if element is not None else None
        return f"{base}[{element[1]}]" if base is not None else None

    sources: dict[str, str | None] = {}
    if cmap.auto:
        for key, candidates in _AUTO_NAMES.items():
            sources[key] = next((hits[0] for c in candidates
                                 if (hits := by_lower.get(c))), None)
        if sources["x"] is None or sources["y"] is None:
            sources["x"] = sources["y"] = None
        pair = _auto_position_pair(by_lower)
        if pair is None:  # no matching pair: the first name found for each (RAJ2000 beside dec)
            pair = tuple(next((by_lower[names[k]][0] for names in _AUTO_POSITIONS if names[k] in by_lower), None)
                         for k in (0, 1))
            if None in pair:
                pair = (None, None)
        sources["ra"], sources["dec"] = pair
        present = [n[len("mag_"):] for n in names if n.startswith("mag_")]
        band_list = requested if requested is not None else tuple(present)
        missing = [f"mag_{b}" for b in band_list if b not in present]
        if missing:
            raise InputError(path, f"no column {', '.join(missing)} (magnitude columns "
                                   f"present: {', '.join('mag_' + b for b in present) or 'none'})")
        for band in band_list:
            sources[f"mag_{band}"] = f"mag_{band}"
            if f"magerr_{band}" in names:
                sources[f"magerr_{band}"] = f"magerr_{band}"
        if require_positions and sources["ra"] is None and sources["x"] is None:
            raise InputError(path, "no position columns: found neither ra/dec nor x/y "
                                   "(give a column mapping)")
        return sources, band_list

    if requested is None:
        band_list = cmap.bands
    else:
        band_list = requested
        known = cmap.bands or (tuple(cmap.mag) if isinstance(cmap.mag, dict) else ())
        unknown = [b for b in band_list if known and b not in known]
        if unknown:
            raise InputError(path, f"band(s) {' '.join(unknown)} not in column mapping "
                                   f"{cmap.describe()} (bands: {' '.join(known)})")
    if band_list and cmap.mag is None:
        raise InputError(path, f"column mapping {cmap.describe()} names no magnitude columns")
    # A quantity the mapping leaves open comes from a column already bearing its standard
    # name; otherwise that column would be renamed *_orig and, for id, replaced by row numbers.
    for group in (("id",), ("ra", "dec"), ("x", "y"), ("label",)):
        if all(getattr(cmap, key) is None and key in names for key in group):
            sources.update({key: key for key in group})
    # Failing that, the survey names found without a mapping: a mapping that names only the
    # magnitudes still carries the objects' ids and positions to the output.
    if cmap.id is None and "id" not in sources:
        found = next((hits[0] for name in _AUTO_NAMES["id"] if (hits := by_lower.get(name))), None)
        if found is not None:
            sources["id"] = found
    if cmap.ra is None and cmap.x is None and "ra" not in sources and "x" not in sources:
        pair = _auto_position_pair(by_lower)
        if pair is not None:
            sources["ra"], sources["dec"] = pair
    if (require_positions and cmap.ra is None and cmap.x is None
            and "ra" not in sources and "x" not in sources):
        raise InputError(path, f"no position columns: column mapping {cmap.describe()} names "
                               "neither ra/dec nor x/y, and there are no ra/dec or x/y columns")

    wanted: dict[str, str | tuple[str, ...]] = {}
    for key in STANDARD_COLUMNS:
        column = getattr(cmap, key)
        if column is not None:
            wanted[key] = column
    for band in band_list:
        wanted[f"mag_{band}"] = cmap.mag_column(band)  # type: ignore[assignment]
        err = cmap.magerr_column(band)
        if err is not None:
            wanted[f"magerr_{band}"] = err
    missing = []
    for key, column in wanted.items():
        choices = column if isinstance(column, tuple) else (column,)
        found = next((hit for choice in choices if (hit := find(choice)) is not None), None)
        if found is None:
            missing.append(" or ".join(choices))
        sources[key] = found
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)} named by column "
                               f"mapping {cmap.describe()}")
    return sources, tuple(band_list)


def degrees_per_unit(unit: Any, column: str, path: str | os.PathLike, key: str | None = None) -> float:
    """Degrees per unit of a sky-position column declared in ``unit`` (1 when it declares none).

    Catalogues in radians or arcseconds are converted, not read as degrees; a right ascension
    (``key`` ``"ra"``) in hours of time (a ``HOURS`` or ``h`` unit) is read as hour angle,
    15 degrees an hour. Any other unit that is not an angle (pixels, magnitudes; hours for a
    declination, or when ``key`` is not given) is :class:`InputError`.
    """
    parsed = parse_unit(unit)
    if parsed is None:
        return 1.0
    if key == "ra" and parsed.is_equivalent(u.h):
        return float(parsed.to(u.h)) * 15.0
    try:
        return float(parsed.to(u.deg))
    except (u.UnitsError, TypeError, ValueError):
        raise InputError(path, f"column {column!r} is in {parsed}, not an angle: sky positions are read in degrees "
                               "(or any angle unit the file declares)") from None


def maggies_per_unit(unit: Any, where: str | os.PathLike) -> float:
    """Maggies (the flux of an AB magnitude 0 source, 3631 Jy) per unit of a flux column
    (``unit``: nJy, uJy, Jy, nanomaggy, ... as text or astropy unit); InputError otherwise."""
    parsed = parse_unit(unit)
    if parsed is not None and not isinstance(parsed, u.FunctionUnitBase):
        for target, scale in ((u.mgy, 1.0), (u.Jy, 1.0 / 3631.0)):
            try:
                return float(parsed.to(target)) * scale
            except u.UnitsError:
                continue
    raise InputError(where, f"flux_unit {unit!r} is not a flux density astropy knows (nJy, uJy, Jy, nanomaggy)")


def fluxes_to_magnitudes(flux: np.ndarray, flux_err: np.ndarray | None, maggies_per_flux: float,
                         softening: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """AB magnitudes and errors [mag] of fluxes ``flux`` (and errors ``flux_err``) given in a
    unit worth ``maggies_per_flux`` maggies.

    Pogson magnitudes ``-2.5 log10(f)`` (f in maggies) by default, NaN where the flux is not
    positive (a non-detection, as KiDS catalogues write it); with ``softening`` ``b``
    [maggies], asinh magnitudes (Lupton, Gunn & Szalay 1999, as SDSS catalogues write them),
    finite for every finite flux. Errors: ``1.0857 sigma / f`` and ``1.0857 sigma /
    hypot(f, 2b)`` respectively.
    """
    factor = 2.5 / np.log(10.0)
    f = np.asarray(flux, np.float64) * maggies_per_flux
    sigma = None if flux_err is None else np.abs(np.asarray(flux_err, np.float64)) * maggies_per_flux
    with np.errstate(divide="ignore", invalid="ignore"):
        if softening:
            mag = -factor * (np.arcsinh(f / (2.0 * softening)) + np.log(softening))
            err = None if sigma is None else factor * sigma / np.hypot(f, 2.0 * softening)
        else:
            positive = np.isfinite(f) & (f > 0)
            mag = np.where(positive, -2.5 * np.log10(np.where(positive, f, 1.0)), np.nan)
            err = None if sigma is None else np.where(positive, factor * sigma / np.where(positive, f, 1.0), np.nan)
    return mag, err


def check_magnitude_unit(unit: Any, column: str, path: str | os.PathLike, ab_offset: float | None = None) -> None:
    """Refuse a magnitude column whose declared unit is a flux density (nJy, nanomaggy, ...),
    or magnitudes on another system than AB, unless the mapping gives the band's non-zero
    ``ab_offset`` [mag] to AB: ST (``mag(ST)``), instrumental (``mag(ct)``) and Vega magnitudes
    (a unit such as ``VEGAMAG`` or ``mag(Vega)``, which astropy does not know; checked only when
    the caller gives ``ab_offset``, None meaning it does not know the offsets).

    A unit of ``AB`` alone, which astropy reads as the AB flux unit, is how some catalogues
    mark AB magnitudes, and is accepted.
    """
    text = str(unit).strip() if unit is not None else ""
    if ab_offset is not None and not ab_offset and "vega" in text.lower():
        raise InputError(path, f"column {column!r} holds Vega magnitudes ({text}), and skysort reads AB magnitudes: give "
                               "the band's Vega-to-AB offset in the column mapping (ab_offsets)")
    if text == "AB":
        return
    parsed = parse_unit(unit)
    if (isinstance(parsed, u.MagUnit) and parsed.physical_unit not in (u.dimensionless_unscaled, u.AB, u.mgy)
            and not ab_offset):
        raise InputError(path, f"column {column!r} holds {parsed} magnitudes, not AB magnitudes: convert them to AB, or "
                               "give the band's offset to AB in the column mapping (ab_offsets)")
    if parsed is None or isinstance(parsed, u.FunctionUnitBase):
        return  # mag, mag(AB), dex and the like
    if any(parsed.is_equivalent(flux) for flux in (u.Jy, u.mgy, u.erg / u.s / u.cm**2 / u.Hz)):
        raise InputError(path, f"column {column!r} holds fluxes ({parsed}), not magnitudes: give magnitudes, or say "
                               f"so in the column mapping (flux_unit={parsed})")


#: Text that marks an empty numeric cell: pyarrow's CSV defaults (what ``predict`` streams a CSV
#: with), so that ``null`` or ``N/A`` is a missing value in every command, not only in some.
NULL_TEXT = frozenset(['', '#N/A', '#N/A N/A', '#NA', '-1.#IND', '-1.#QNAN', '-NaN', '-nan', '1.#IND', '1.#QNAN', 'N/A',
                       'NA', 'NULL', 'NaN', 'n/a', 'nan', 'null'])


_ELEMENT = re.compile(r"^(.*\S)\[(\d+)\]$")


def element_reference(name: str) -> tuple[str, int] | None:
    """``(column, index)`` when ``name`` names one element of a vector column, as ``PSFMAG[2]``
    (0-based: SDSS's FITS products hold the five bands' magnitudes in one column, u to z);
    None for any other name."""
    found = _ELEMENT.match(name)
    return (found.group(1), int(found.group(2))) if found else None


def _values_per_row(data: np.ndarray) -> int | None:
    """How many values each row of a vector column holds (a FITS array column, a Parquet list
    column read as objects; the first row's count for lists), None for a column of scalars."""
    if data.ndim > 1:
        return int(np.prod(data.shape[1:]))
    if data.dtype.kind == "O":
        first = next((v for v in data[:1000] if v is not None), None)
        if first is not None and not isinstance(first, (str, bytes)) and np.ndim(first) > 0:
            return int(np.size(first))
    return None


def column_element(values: Any, name: str, path: str | os.PathLike) -> np.ndarray:
    """Element of each row that ``name`` (``COLUMN[k]``, :func:`element_reference`) refers to,
    from the vector column's ``values``: a masked array, masked where the row or its list is
    missing.

    Raises
    ------
    InputError
        The column holds one value per row, or fewer than ``k + 1``.
    """
    base, index = element_reference(name)  # type: ignore[misc]
    data = np.ma.getdata(values)
    rows_missing = np.ma.getmaskarray(values)
    count = _values_per_row(data)
    if count is None:
        raise InputError(path, f"column {base!r} holds one value per row, so {name!r} names nothing: give the column itself")
    if data.ndim > 1:
        flat = np.asarray(values).reshape(len(data), -1)
        mask = np.ma.getmaskarray(values).reshape(len(data), -1) if np.ma.isMaskedArray(values) else None
        if index >= flat.shape[1]:
            raise InputError(path, f"column {base!r} holds {count} values per row, so {name!r} is beyond them (0-based)")
        return np.ma.masked_array(flat[:, index], mask=None if mask is None else mask[:, index])
    cells = [None if m or v is None or np.ndim(v) == 0 else v for v, m in zip(data, np.broadcast_to(rows_missing, len(data)))]
    short = next((len(v) for v in cells if v is not None and len(v) <= index), None)
    if short is not None:
        raise InputError(path, f"column {base!r} holds {short} values in a row, so {name!r} is beyond them (0-based)")
    picked = [v[index] if v is not None else None for v in cells]
    mask = np.array([v is None for v in picked], dtype=bool)
    dtype = object if any(isinstance(v, (str, bytes)) for v in picked) else np.float64
    return np.ma.masked_array(np.array([np.nan if v is None else v for v in picked], dtype=dtype), mask=mask)


def as_float(col: Any, what: str, path: str | os.PathLike, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(values, missing)``: a column (``name``, else its own) as float64, its masked cells and
    :data:`NULL_TEXT` cells missing (astropy reads a CSV column holding ``null`` as text).
    A vector column (several values per row) is refused, pointing to its elements."""
    name = name if name is not None else col.name
    data = np.ma.getdata(col)
    missing = np.ma.getmaskarray(col)
    count = _values_per_row(data)
    if count is not None:
        raise InputError(path, f"{what} {name!r} holds {count} values per row, not one number: name one of them, "
                               f"{name}[0] to {name}[{count - 1}] (0-based; in a mapping template {name}[{{index}}] is "
                               "the band's place in bands)")
    try:
        return np.asarray(data, dtype=np.float64), missing
    except (TypeError, ValueError):
        pass
    if data.dtype.kind not in "SUO":
        raise InputError(path, f"{what} {name!r} is not numeric")
    text, empty = _text_cells(data)
    missing = missing | empty
    try:
        values = np.where(missing, "nan", text).astype(np.float64)
    except ValueError:
        bad = next(v for v, m in zip(text.tolist(), missing.tolist()) if not m and not _parses_as_float(v))
        raise InputError(path, f"{what} {name!r} is not numeric (holds {bad!r}){not_numeric_hint(bad, name)}") from None
    return values, missing


_SEXAGESIMAL_PARTS = r"\s*([+-]?)(\d{1,3})[ :hd°]\s*(\d{1,2})[ :m']\s*(\d{1,2}(?:\.\d*)?)\s*[s\"]?\s*"
_SEXAGESIMAL = re.compile(f"^{_SEXAGESIMAL_PARTS}$")


def is_sexagesimal(value: Any) -> bool:
    """Whether ``value`` is an angle written as three sexagesimal fields (``10 23 45.6``,
    ``-05:04:03``, ``12h34m56.7s``), as VizieR's default text output writes positions."""
    return bool(_SEXAGESIMAL.match(str(value).strip().strip("'\"")))


def not_numeric_hint(value: str, column: str) -> str:
    """``": ..."`` advice on why ``value`` stands in ``column``, which must hold numbers: a
    sexagesimal angle, or the column's own name or a line of dashes (a second table's header
    in the same file, as VizieR writes several tables one after another), else empty."""
    value = str(value).strip()
    if value == column.strip() or _is_rule_line([value]):
        return ": a second header line among the rows (the file holds more than one table): save each table in its own file"
    if is_sexagesimal(value):
        return ": sexagesimal text; give decimal numbers"
    return ""


def position_degrees(col: Any, key: str, path: str | os.PathLike, name: str | None = None,
                     degrees_per_unit: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(values, missing)`` of a ``ra`` or ``dec`` column (``key``) in degrees, float64: numbers
    times ``degrees_per_unit`` (the column's declared unit, :func:`degrees_per_unit`), or
    sexagesimal text (VizieR's default text output) read as hours, minutes, seconds of right
    ascension or degrees, arcminutes, arcseconds of declination.

    Raises
    ------
    InputError
        Text that is neither numbers nor sexagesimal angles (naming the column and a value).
    """
    try:
        values, missing = as_float(col, "column", path, name)
        return values * degrees_per_unit, missing
    except InputError:
        data = np.ma.getdata(col)
        if data.dtype.kind not in "SUO":
            raise
    import pandas as pd

    name = name if name is not None else col.name
    cells, empty = _text_cells(data)
    text = pd.Series(cells)
    missing = np.ma.getmaskarray(col) | empty
    parts = text.str.extract(f"^{_SEXAGESIMAL_PARTS}$")
    angles = parts[1].notna().to_numpy()
    numbers = pd.to_numeric(text, errors="coerce").notna().to_numpy() & ~missing
    unparsed = ~angles & ~numbers & ~missing
    if unparsed.any():
        bad = text[unparsed].iloc[0]
        raise InputError(path, f"column {name!r} is neither numbers nor sexagesimal angles (holds {bad!r})"
                               f"{not_numeric_hint(bad, name) if not is_sexagesimal(bad) else ''}")
    if numbers.any():
        # Which unit the numbers are in (degrees, or hours as the angles beside them) is a guess.
        raise InputError(path, f"column {name!r} mixes decimal numbers ({text[numbers].iloc[0]!r}) and sexagesimal "
                               f"angles ({text[angles].iloc[0]!r}): give one or the other")
    whole, minutes, seconds = (parts[k].astype(float).to_numpy() for k in (1, 2, 3))
    if np.any((minutes >= 60) | (seconds >= 60)):
        bad = text[(minutes >= 60) | (seconds >= 60)].iloc[0]
        raise InputError(path, f"column {name!r} holds a sexagesimal angle with 60 or more minutes or seconds ({bad!r})")
    sign = np.where(parts[0].to_numpy() == "-", -1.0, 1.0)
    values = sign * (whole + minutes / 60 + seconds / 3600) * (15.0 if key == "ra" else 1.0)
    return np.where(missing, np.nan, values), missing


#: Rounding [deg] allowed beyond a pole in positions converted from other units (pi/2 rad).
_POLE_TOLERANCE_DEG = 1e-9


def _sky_positions(ra: MaskedColumn, dec: MaskedColumn, path: str | os.PathLike) -> None:
    """Put ``ra`` and ``dec`` [deg] (float64 columns, changed in place) on the sky as ``skysort
    predict`` does: every finite right ascension in 0..360 (catalogues centred on RA 0 write
    -180..180, and an object must have one RA whichever file it comes from), and a row whose
    declination is beyond -90..90 (a placeholder such as -999, or another unit) masked in both,
    as a NaN position is, with one warning giving their number and an example."""
    ra_values, dec_values = np.ma.getdata(ra), np.ma.getdata(dec)  # views: written in place, masks kept
    present_ra = ~np.ma.getmaskarray(ra) & np.isfinite(ra_values)
    wrapped = np.where(present_ra, np.mod(np.where(present_ra, ra_values, 0.0), 360.0), ra_values)
    # A tiny negative RA wraps to 360.0 itself in floating point.
    ra_values[:] = np.where(present_ra & (wrapped >= 360.0), 0.0, wrapped)
    present = ~np.ma.getmaskarray(dec) & np.isfinite(dec_values)
    off = present & (np.abs(np.where(present, dec_values, 0.0)) > 90.0 + _POLE_TOLERANCE_DEG)
    example = dec_values[np.flatnonzero(off)[0]] if off.any() else None
    dec_values[:] = np.where(present & ~off, np.clip(dec_values, -90.0, 90.0), dec_values)
    if example is None:
        return
    for column, values in ((ra, ra_values), (dec, dec_values)):
        values[off] = np.nan
        column.mask = np.ma.getmaskarray(column) | off
    report_problem(None, path, f"{off.sum():,} of {len(dec):,} rows have a declination beyond -90..90 degrees "
                               f"(e.g. {example:g}): they are read as rows without a sky position")


def _text_cells(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Text cells stripped of blanks, and which are empty: :data:`NULL_TEXT`, or a null (None,
    NA) of an object column (Parquet text with nulls)."""
    empty = np.zeros(len(data), bool)
    if data.dtype.kind == "O":
        import pandas as pd

        empty = np.asarray(pd.isna(data), dtype=bool)
        data = np.where(empty, "", data)
    text = np.char.strip(np.asarray(data).astype(str))
    return text, empty | np.isin(text, list(NULL_TEXT))


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _float_column(col: Column, unit: u.UnitBase, description: str,
                  path: Path, key: str | None = None, degrees_per_unit: float = 1.0) -> MaskedColumn:
    """Positions as float64 (float32 loses milliarcseconds at large RA); non-finite masked;
    sky positions (``key`` ra or dec) in degrees, also from sexagesimal text
    (:func:`position_degrees`)."""
    values, missing = (position_degrees(col, key, path, degrees_per_unit=degrees_per_unit) if key in ("ra", "dec")
                       else as_float(col, "column", path))
    mask = missing | ~np.isfinite(values)
    return MaskedColumn(np.where(mask, np.nan, values), mask=mask, unit=unit,
                        description=description)


def check_flux_unit(declared: Any, column: str, flux_unit: str, path: str | os.PathLike) -> None:
    """Refuse a flux column whose own declared unit contradicts the mapping's ``flux_unit``
    (a magnitude, or another flux unit): which one is meant would be a guess."""
    parsed = parse_unit(declared)
    if parsed is None:
        return
    if not isinstance(parsed, u.FunctionUnitBase):
        try:
            if np.isclose(maggies_per_unit(parsed, path), maggies_per_unit(flux_unit, path), rtol=1e-9, atol=0):
                return
        except InputError:
            pass
    raise InputError(path, f"column {column!r} is in {parsed}, but the column mapping's flux_unit says {flux_unit}")


def _magnitudes_from_fluxes(raw: Table, flux_name: str, err_name: str | None, flux_unit: str, sentinels: np.ndarray,
                            path: Path) -> tuple[MaskedColumn, MaskedColumn | None]:
    """Pogson AB magnitudes and errors of a flux column and its error column (masked where the
    flux is missing, a sentinel or not positive)."""
    scale = maggies_per_unit(flux_unit, path)
    for name in (flux_name, err_name):
        if name is not None:
            check_flux_unit(raw[name].unit, name, flux_unit, path)
    flux = _masked_magnitudes(raw[flux_name], sentinels, path)
    err = _masked_magnitudes(raw[err_name], sentinels, path) if err_name is not None else None
    mag, magerr = fluxes_to_magnitudes(flux.filled(np.nan), None if err is None else err.filled(np.nan), scale)
    mask = ~np.isfinite(mag)
    return (MaskedColumn(np.where(mask, np.nan, mag), mask=mask),
            None if magerr is None else MaskedColumn(np.where(mask, np.nan, magerr), mask=mask | ~np.isfinite(magerr)))


def _masked_magnitudes(col: Column, sentinels: np.ndarray, path: Path) -> MaskedColumn:
    """Float magnitudes (or errors) with sentinels and non-finite values masked."""
    values = np.asarray(np.ma.getdata(col))
    mask = np.ma.getmaskarray(col)
    if values.dtype.kind != "f" or values.ndim > 1:  # as_float converts text and refuses vector columns
        values, mask = as_float(col, "magnitude column", path)
    mask = mask | ~np.isfinite(values)
    if sentinels.size:
        mask |= np.isin(values, sentinels.astype(values.dtype))
    # Masked slots hold NaN so that code reading .data by mistake cannot see a sentinel.
    values = np.where(mask, np.nan, values).astype(values.dtype)
    return MaskedColumn(values, mask=mask)


def _normalise_labels(col: Column, translation: Mapping[str, str]) -> MaskedColumn:
    """Lower-case class names; empty, ``nan`` and masked values become masked."""
    raw_mask = np.ma.getmaskarray(col)
    table = {k.strip().lower(): v for k, v in translation.items()}
    out, mask = [], raw_mask.copy()
    for i, value in enumerate(np.asarray(col).tolist()):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        key = text.lower()
        text = table.get(key, text).strip().lower()
        if mask[i] or text in ("", "nan", "none", "null", "--"):
            mask[i] = True
            text = ""
        out.append(text)
    width = max((len(t) for t in out), default=1) or 1
    return MaskedColumn(np.array(out, dtype=f"U{width}"), mask=mask,
                        description="class (lower case)")


def catalog_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata record a written catalogue carries: a fresh provenance record, then the
    JSON-representable entries of ``meta`` (an old ``provenance`` entry is replaced)."""
    kept = {k: v for k, v in _json_safe(dict(meta)).items() if k != "provenance"}
    return {"provenance": _json_safe(provenance_record()), **kept}


def write_catalog(table: Table, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write a catalogue atomically, with a provenance record, in the format of its extension.

    Parameters
    ----------
    table : astropy.table.Table, mapping of str to array, or pandas.DataFrame
        Catalogue, normally from :func:`read_catalog`. Its JSON-representable ``meta``
        entries are kept, with ``provenance`` set to :func:`skysort.provenance.provenance_record`.
    path : str or os.PathLike
        ``.fits``/``.fit``/``.fts`` (``.gz`` to compress), ``.parquet``/``.pq``, or
        ``.csv``/``.ecsv`` (both written as comma-separated ECSV).
    overwrite : bool
        Replace an existing file; if False an existing file raises InputError.

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    Metadata go into the FITS table header as JSON under ``SKYSORT``, into the Parquet
    schema metadata as JSON under ``skysort`` (with column units), and into the ECSV
    header. Masked values become NaN/``TNULL`` (FITS), nulls (Parquet), empty fields (CSV); a
    boolean column with masked values is written to FITS as 16-bit integers (1 / 0) with
    ``TNULL`` gaps, since a FITS logical column would store the hidden value.
    """
    path = Path(path)
    fmt = _format_of(path)
    if fmt is None:
        raise _unknown_format(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists (not overwriting)")
    if fmt == "csv" and path.name.lower().endswith(_CSV_COMPRESSIONS):
        raise InputError(path, "compressed CSV is read, not written: write .csv, or .parquet (compressed and typed)")
    if fmt == "fits" and path.name.lower().endswith((".bz2", ".xz")):
        raise InputError(path, "FITS compressed with bzip2 or xz is read, not written: write .fits or .fits.gz")
    if fmt in _READ_ONLY_FORMATS:
        raise InputError(path, f"{_READ_ONLY_FORMATS[fmt]} is read, not written: write .fits, .parquet or .csv")
    if not isinstance(table, Table):
        if hasattr(table, "to_records") and hasattr(table, "columns"):
            table = Table.from_pandas(table)
        elif isinstance(table, Mapping):
            table = Table(dict(table))
        else:
            raise TypeError(f"write_catalog needs an astropy Table, a mapping of columns or a pandas DataFrame, "
                            f"got {type(table).__name__}")
    meta = catalog_metadata(table.meta)
    try:
        with atomic_path(path) as tmp:
            if fmt == "fits":
                _write_fits(table, tmp, meta, gzipped=path.name.lower().endswith(".gz"))
            elif fmt == "parquet":
                _write_parquet(table, tmp, meta)
            else:
                _write_ecsv(table, tmp, meta)
    except OSError as exc:
        raise InputError(path, f"cannot write: {exc.strerror or _first_line(exc)}") from None
    except ValueError as exc:  # a column the format cannot hold (e.g. multidimensional in Parquet)
        raise InputError(path, f"cannot write: {_first_line(exc)}") from None
    return path


# --------------------------------------------------------------------------------------
# Helpers for later stages
# --------------------------------------------------------------------------------------


def catalog_bands(table: Table) -> list[str]:
    """Bands with a ``mag_<band>`` column, in column order."""
    return [name[len("mag_"):] for name in table.colnames if name.startswith("mag_")]


def photometry_arrays(table: Table, bands: Sequence[str]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitudes and errors as dense arrays, e.g. for network inputs.

    Parameters
    ----------
    table : astropy.table.Table
        Catalogue in standard names.
    bands : sequence of str
        Bands, in the order of the output's second axis.

    Returns
    -------
    mags : numpy.ndarray, float32, shape (N, B)
        AB magnitudes; NaN where missing.
    errs : numpy.ndarray, float32, shape (N, B)
        Magnitude errors; NaN where missing, where the magnitude is missing, or for every
        object when the catalogue has no ``magerr_<band>`` column.
    mask : numpy.ndarray, bool, shape (N, B)
        True where the magnitude is missing (numpy.ma convention).

    Raises
    ------
    skysort.errors.InputError
        A band has no ``mag_<band>`` column.
    """
    bands = list(bands)
    missing = [b for b in bands if f"mag_{b}" not in table.colnames]
    if missing:
        where = table.meta.get("source_file", "catalogue")
        raise InputError(where, f"no magnitudes for band(s) {' '.join(missing)} "
                                f"(bands present: {' '.join(catalog_bands(table)) or 'none'})")
    n = len(table)
    mags = np.full((n, len(bands)), np.nan, dtype=np.float32)
    errs = np.full((n, len(bands)), np.nan, dtype=np.float32)
    for j, band in enumerate(bands):
        mags[:, j] = _filled_float(table[f"mag_{band}"])
        if f"magerr_{band}" in table.colnames:
            errs[:, j] = _filled_float(table[f"magerr_{band}"])
    mask = ~np.isfinite(mags)
    mags[mask] = np.nan
    errs[mask | ~np.isfinite(errs)] = np.nan
    return mags, errs, mask


def _filled_float(col: Column) -> np.ndarray:
    values = np.asarray(np.ma.getdata(col), dtype=np.float64)
    return np.where(np.ma.getmaskarray(col), np.nan, values)
