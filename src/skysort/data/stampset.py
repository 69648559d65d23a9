"""Stamp sets: multi-band image stamps of many objects, with their table and metadata, in HDF5.

A stamp set is one HDF5 file (layout specified in ``docs/formats.md``, schema version
:data:`SCHEMA_VERSION`) holding

* ``images``: ``(N, bands, H, W)`` float32 stamps in the physical flux unit of the survey
  (never 8-bit), chunked by blocks of objects so that reading a batch touches few chunks;
* ``table/``: one 1-D dataset per column of the per-object table (``id``, ``ra``, ``dec``,
  ``x``, ``y``, ``label``, ``flags``, ``mag_<band>``, ``magerr_<band>`` and any extra columns);
* ``arrays/``: optional further per-object arrays (for example spectra), first axis ``N``;
* metadata (:class:`StampMeta`): bands, pixel scale, zero points, PSF FWHM, flux unit, survey,
  creating software, command and random seed.

:class:`StampSet` opens a file lazily: nothing but the metadata is read until asked for, so a
stamp set of any size can be opened, sliced and iterated in bounded memory.

Conventions
-----------
* Missing floating-point values (undetected magnitudes, unknown coordinates) are stored as NaN
  and returned as masked values by :attr:`StampSet.table`.
* ``label`` is a lower-case class name (``"star"``, ``"galaxy"``, ``"qso"``, ...) or ``""``
  when unknown.
* Pixel positions ``x``, ``y`` are 0-based (``x`` = column, ``y`` = row) in the reference band
  image the stamps were cut from; the object lies at stamp pixel ``(H // 2, W // 2)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import h5py
import numpy as np
from astropy.table import MaskedColumn, Table

from .._io import AtomicFile
from ..errors import InputError, SchemaVersionError
from ..provenance import provenance_record

FORMAT_NAME = "skysort.stampset"
SCHEMA_VERSION = 1

#: Columns every stamp set has, in this order, with their storage dtype and unit.
CORE_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("int64", ""),
    "ra": ("float64", "deg"),
    "dec": ("float64", "deg"),
    "x": ("float64", "pix"),
    "y": ("float64", "pix"),
    "label": ("str", ""),
    "flags": ("uint32", ""),
}

#: Default number of bytes aimed at per image chunk; small enough that a random read of one
#: stamp wastes little, large enough that sequential reads are not dominated by chunk overhead.
_TARGET_CHUNK_BYTES = 1 << 18

_STRING_DTYPE = h5py.string_dtype("utf-8")
#: Scattered-row reads: the most of a dataset read at once, and the number of separate runs of
#: rows in such a window above which the window is read whole rather than run by run.
_READ_WINDOW_BYTES = 32 << 20
_RUNS_PER_WHOLE_WINDOW = 64


@dataclasses.dataclass(frozen=True)
class StampMeta:
    """Metadata shared by every stamp of a set.

    Attributes
    ----------
    bands : tuple of str
        Band names in image-axis order, e.g. ``("u", "g", "r", "i", "z")``.
    pixel_scale : float
        Pixel scale of the stamps in arcsec per pixel.
    flux_unit : str
        Physical unit of the pixel values, e.g. ``"nanomaggy"`` or ``"count"``.
    zero_points : dict of str to float
        AB magnitude of a source with a total flux of one ``flux_unit`` in each band
        (22.5 for SDSS nanomaggies). ``mag = zero_point - 2.5 log10(flux)``.
    psf_fwhm : dict of str to float
        PSF full width at half maximum per band in arcsec (NaN if unknown).
    survey : str
        Survey (or simulator preset) name.
    seed : int or None
        Random seed the set was made with, if random numbers were involved.
    creator, command, created : str
        Software version, command line and UTC date that produced the file.
    software : dict
        Versions of the main packages at creation.
    extra : dict
        Free-form JSON-serialisable metadata (input files, simulation settings, ...).
    """

    bands: tuple[str, ...]
    pixel_scale: float
    flux_unit: str = "unknown"
    zero_points: dict[str, float] = dataclasses.field(default_factory=dict)
    psf_fwhm: dict[str, float] = dataclasses.field(default_factory=dict)
    survey: str = ""
    seed: int | None = None
    creator: str = ""
    command: str = ""
    created: str = ""
    software: dict[str, str] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        if len(set(self.bands)) != len(self.bands) or not self.bands:
            raise ValueError(f"bands must be unique and non-empty, got {self.bands}")
        # Numbers are stored as JSON: numpy scalars and Quantities become plain floats here, so
        # that a file is not left half written when the metadata is serialised.
        object.__setattr__(self, "pixel_scale", pixel_scale_arcsec(self.pixel_scale))
        object.__setattr__(self, "zero_points", {str(b): _as_float(f"zero_points[{b!r}]", v, "mag")
                                                 for b, v in dict(self.zero_points).items()})
        object.__setattr__(self, "psf_fwhm", {str(b): _as_float(f"psf_fwhm[{b!r}]", v, "arcsec")
                                              for b, v in dict(self.psf_fwhm).items()})
        if self.seed is not None:
            if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)):
                raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
            object.__setattr__(self, "seed", int(self.seed))
        try:
            self.to_json()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"stamp set metadata must be JSON-serialisable: {exc}") from None

    @classmethod
    def with_provenance(cls, command: str | None = None, **fields) -> "StampMeta":
        """Build metadata stamped with the current software versions, command and date."""
        record = provenance_record(command)
        return cls(
            creator=str(record["creator"]),
            command=str(record["command"]),
            created=str(record["created"]),
            software=dict(record["software"]),  # type: ignore[arg-type]
            **fields,
        )

    def zero_point(self, band: str) -> float:
        """AB zero point of one flux unit in ``band`` [mag]: as recorded, else fixed by the flux
        unit (:func:`skysort.data.images.unit_zero_point`: nanomaggy 22.5, nJy 31.4, uJy 23.9,
        mJy 16.4, also per pixel), else NaN."""
        from .images import unit_zero_point

        recorded = self.zero_points.get(band)
        if recorded is not None and np.isfinite(recorded):
            return float(recorded)
        return float(unit_zero_point(self.flux_unit))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, allow_nan=True, default=_json_number)

    @classmethod
    def from_json(cls, text: str) -> "StampMeta":
        fields = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in known})

    def compatible_with(self, other: "StampMeta", bands: Sequence[str] | None = None) -> list[str]:
        """Reasons why stamps of ``other`` cannot be stored beside these (empty if they can).

        With ``bands``, only those bands are compared (each must be in both; a network that
        reads them reads stamps of either set alike), not the whole band lists.
        """
        problems = []
        if bands is None:
            if self.bands != other.bands:
                problems.append(f"bands differ ({list(self.bands)} vs {list(other.bands)})")
            bands = self.bands
        else:
            absent = [b for b in bands if b not in self.bands or b not in other.bands]
            if absent:
                problems.append(f"bands {absent} are not in both ({list(self.bands)} vs {list(other.bands)})")
        if not np.isclose(self.pixel_scale, other.pixel_scale, rtol=1e-6):
            problems.append(f"pixel scales differ ({self.pixel_scale} vs {other.pixel_scale} arcsec/px)")
        if self.flux_unit != other.flux_unit:
            problems.append(f"flux units differ ({self.flux_unit} vs {other.flux_unit})")
        differing = [b for b in bands
                     if not np.isclose(self.zero_points.get(b, np.nan), other.zero_points.get(b, np.nan), rtol=0, atol=1e-6, equal_nan=True)]
        if differing:
            problems.append("zero points differ in " + ", ".join(
                f"{b} ({self.zero_points.get(b)} vs {other.zero_points.get(b)})" for b in differing))
        return problems


def pixel_scale_arcsec(value: Any) -> float:
    """A pixel scale [arcsec per pixel] from a number (arcsec) or an angle Quantity in any unit,
    per pixel or not (``187 * u.mas``, ``0.187 * u.arcsec / u.pix``).

    Raises
    ------
    ValueError
        Not an angle, not a number, or not finite and positive.
    """
    if hasattr(value, "unit") and hasattr(value, "to_value") and value.unit.physical_type != "angle":
        from astropy import units as u

        value = value * u.pix  # an angle per pixel becomes the angle of one pixel
    scale = _as_float("pixel scale", value, "arcsec")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"pixel scale must be positive and finite (arcsec/px), got {scale}")
    return scale


def _as_float(name: str, value: Any, unit: str) -> float:
    """A metadata number as a float; a Quantity is converted to ``unit`` first."""
    if hasattr(value, "unit") and hasattr(value, "to_value"):
        try:
            value = value.to_value(unit)
        except Exception as exc:  # noqa: BLE001 - astropy raises UnitConversionError or TypeError
            raise ValueError(f"{name} must be in {unit}, got {value!r} ({exc})") from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number ({unit}), got {value!r}") from None


def _json_number(value: Any) -> Any:
    """numpy scalars and arrays in free-form metadata (``extra``) as plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _read_header(path: Path, handle: h5py.File) -> tuple[StampMeta, int]:
    """The metadata and length of an open stamp set, or :class:`InputError` unless it is one this
    release reads, whole."""
    try:
        fmt = handle.attrs.get("format")
        version = handle.attrs.get("schema_version")
        if fmt != FORMAT_NAME:
            raise InputError(path, "not a skysort stamp set (no 'format' attribute)")
        if version != SCHEMA_VERSION:
            raise SchemaVersionError(
                path,
                f"stamp set schema version {version} is not supported "
                f"(this skysort reads version {SCHEMA_VERSION})",
            )
        for required in ("images", "table"):
            if required not in handle:
                raise InputError(path, f"stamp set is missing its '{required}' group")
        return _check_structure(path, handle)
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({exc.__class__.__name__}: {exc})") from exc


def _check_structure(path: Path, handle: h5py.File) -> tuple[StampMeta, int]:
    """The metadata and length, or :class:`InputError` for a damaged stamp set: metadata that
    does not parse, a length that the images or table columns do not reach, images that are not
    ``(N, bands, H, W)``."""
    try:
        meta = StampMeta.from_json(handle.attrs["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"damaged stamp set: its metadata cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        length = int(handle.attrs["length"])
        columns = json.loads(handle["table"].attrs["columns"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"damaged stamp set: no valid length or column list ({exc.__class__.__name__}: {exc})") from None
    images = handle["images"]
    if not isinstance(images, h5py.Dataset) or images.ndim != 4 or images.shape[1] != len(meta.bands):
        raise InputError(path, f"damaged stamp set: images are not (N, {len(meta.bands)}, H, W)")
    if not 0 <= length <= images.shape[0]:
        raise InputError(path, f"damaged stamp set: {length} objects recorded but {images.shape[0]} images stored")
    table = handle["table"]
    if not isinstance(columns, list) or any(name not in columns for name in CORE_COLUMNS):
        raise InputError(path, f"damaged stamp set: its table lacks core columns ({', '.join(CORE_COLUMNS)} needed)")
    for name in columns:
        dataset = table.get(name) if isinstance(name, str) else None
        if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1 or dataset.shape[0] < length:
            raise InputError(path, f"damaged stamp set: table column {name!r} is missing or shorter than its {length} objects")
    return meta, length


def _column_kind(values: np.ndarray) -> str:
    if values.dtype.kind in "USO":
        return "str"
    return values.dtype.name


def _as_storable(name: str, values: Any) -> np.ndarray:
    """Convert a table column to the array stored in HDF5 (masked floats become NaN)."""
    if isinstance(values, np.ma.MaskedArray):
        if values.dtype.kind == "f":
            values = values.filled(np.nan)
        elif values.dtype.kind in "USO":
            values = values.filled("")
        elif np.any(values.mask):
            raise ValueError(f"column {name!r} has masked non-float values, which cannot be stored")
        else:
            values = values.data
    array = np.asarray(values)
    if array.dtype.kind in "USO":
        return np.asarray([str(v) for v in array], dtype=object)
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    return array


def _default_chunk_objects(bands: int, height: int, width: int) -> int:
    return max(1, _TARGET_CHUNK_BYTES // (4 * bands * height * width))


class StampSet:
    """A lazily opened stamp set, or a row selection (view) of one.

    Open a file with :meth:`open`; create one with :meth:`create`. Indexing with an integer
    returns one stamp's images ``(bands, H, W)``; indexing with a slice, an integer array or a
    boolean mask returns a view that reads nothing until asked.

    Examples
    --------
    >>> stamps = StampSet.open("stamps.h5")                    # doctest: +SKIP
    >>> stamps.meta.bands, len(stamps)                          # doctest: +SKIP
    (('u', 'g', 'r', 'i', 'z'), 643)
    >>> bright = stamps[stamps.column("mag_r") < 18]            # doctest: +SKIP
    >>> images = bright.images()                                # (n, 5, 64, 64) float32
    """

    def __init__(self, path: str | os.PathLike, rows: np.ndarray | None = None, *, _mode: str = "r"):
        if _mode not in ("r", "a"):
            # h5py's "w" would truncate the set before anything could be read from it.
            raise ValueError(f"mode must be 'r' (read) or 'a' (append), got {_mode!r}")
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "no such file")
        self._mode = _mode
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._raw: _RawChunkReader | None = None
        try:
            handle = self._handle()
        except OSError as exc:
            if isinstance(exc, BlockingIOError) or "unable to lock file" in str(exc):
                # HDF5's file lock: the file may be whole, but a writer is still at work on it.
                raise InputError(self.path, "in use: another process holds it open for writing (HDF5 file lock); "
                                            "open it when that process has finished") from exc
            raise InputError(self.path, f"not a readable HDF5 file ({exc.__class__.__name__}: {exc})") from exc
        try:
            self.meta, self._length = _read_header(self.path, handle)
        except BaseException:
            self.close()
            raise
        self._rows = rows

    # ------------------------------------------------------------------ opening and creation
    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> "StampSet":
        """Open an existing stamp set (``mode="r"`` to read, ``"a"`` to append).

        Raises
        ------
        InputError
            If the file is missing, is not a stamp set, or is corrupt.
        SchemaVersionError
            If it was written with a schema version this release does not read.
        ValueError
            If ``mode`` is neither ``"r"`` nor ``"a"``.
        """
        return cls(path, _mode=mode)

    @classmethod
    def create(cls, path: str | os.PathLike, meta: StampMeta, stamp_shape: tuple[int, int], **options: Any) -> "StampSetWriter":
        """Start writing a new stamp set; returns a :class:`StampSetWriter` (a context manager).

        The file appears at ``path`` only when the writer is closed without error. Options
        (``columns``, ``arrays``, ``array_attrs``, ``chunk_objects``, ``compression``) are
        those of :class:`StampSetWriter`.
        """
        return StampSetWriter(path, meta, stamp_shape, **options)

    def _handle(self) -> h5py.File:
        # HDF5 handles must not cross a fork: a DataLoader worker reopens its own.
        # A view shares its parent's handle, so either may find it closed by the other.
        if self._file is None or self._pid != os.getpid() or not self._file:
            self._file = h5py.File(self.path, self._mode)
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        """Close the underlying file (it is reopened on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._raw = None

    def __enter__(self) -> "StampSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):
        return {"path": self.path, "rows": self._rows, "mode": self._mode}

    def __setstate__(self, state):
        self.__init__(state["path"], state["rows"], _mode=state["mode"])

    # ------------------------------------------------------------------ shape and selection
    def __len__(self) -> int:
        return self._length if self._rows is None else len(self._rows)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, bands, H, W)`` of this set or view."""
        _, bands, height, width = self._handle()["images"].shape
        return (len(self), bands, height, width)

    @property
    def bands(self) -> tuple[str, ...]:
        return self.meta.bands

    def file_rows(self, indices: Any = None) -> np.ndarray:
        """Row numbers in the file of this set's objects (or of ``indices`` within it)."""
        rows = np.arange(self._length) if self._rows is None else self._rows
        return rows if indices is None else rows[indices]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.read_images([int(key)])[0]
        if isinstance(key, slice):
            if self._rows is None:
                return StampSet._view(self, np.arange(self._length)[key])
            return StampSet._view(self, self._rows[key])
        key = np.asarray(key)
        if key.ndim == 0 and key.dtype.kind in "iu":
            return self[int(key)]
        if key.ndim != 1:
            # A view is a list of rows: a 2-D selection has no (N, bands, H, W) reading.
            raise IndexError(f"a stamp set is indexed by a 1-D selection, got an array of shape {key.shape}")
        if key.size == 0 and key.dtype.kind not in "iub":
            key = key.astype(np.int64)  # [] is float64 to numpy: an empty selection
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {key.shape} for a set of {len(self)} objects")
            key = np.flatnonzero(key)
        if key.dtype.kind not in "iu":
            raise IndexError(f"cannot index a stamp set with {key.dtype} values")
        return StampSet._view(self, self.file_rows(key))

    @staticmethod
    def _view(parent: "StampSet", rows: np.ndarray) -> "StampSet":
        view = object.__new__(StampSet)
        view.path, view._mode = parent.path, parent._mode
        view._file, view._pid = parent._file, parent._pid
        view._raw = getattr(parent, "_raw", None)
        view.meta, view._length = parent.meta, parent._length
        view._rows = np.asarray(rows, dtype=np.int64)
        return view

    # ------------------------------------------------------------------ reading
    def _read_rows(self, dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
        """Read ``dataset[rows]`` for arbitrary (unsorted, repeated) rows efficiently.

        h5py fancy indexing needs sorted unique indices and is slow for scattered rows, so the
        rows are sorted and read window by window (``_READ_WINDOW_BYTES`` of the file at most):
        a window holding few runs of consecutive rows is read one hyperslab per run; one holding
        many (a random 90% training split of a table column, say) is read whole and the rows
        taken in memory, because each h5py read costs about 0.1 ms however small it is.
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows),) + dataset.shape[1:], dtype=dataset.dtype)
        if len(rows) == 0:
            return out
        if np.any(rows < 0) or np.any(rows >= self._length):
            raise IndexError(f"row index out of range for a stamp set of {self._length} objects")
        order = np.argsort(rows, kind="stable")
        unique_rows, inverse = np.unique(rows[order], return_inverse=True)
        buffer = np.empty((len(unique_rows),) + dataset.shape[1:], dtype=dataset.dtype)
        row_bytes = max(1, int(np.prod(dataset.shape[1:], dtype=np.int64)) * dataset.dtype.itemsize)
        window_rows = max(1, _READ_WINDOW_BYTES // row_bytes)
        first = 0
        while first < len(unique_rows):
            last = int(np.searchsorted(unique_rows, unique_rows[first] + window_rows, side="left"))
            window = unique_rows[first:last]
            breaks = np.flatnonzero(np.diff(window) != 1) + 1
            if len(breaks) >= _RUNS_PER_WHOLE_WINDOW:
                block = dataset[window[0] : window[-1] + 1]
                buffer[first:last] = block[window - window[0]]
            else:
                for start, stop in zip(np.concatenate(([0], breaks)), np.concatenate((breaks, [len(window)]))):
                    dataset.read_direct(buffer, np.s_[window[start] : window[start] + (stop - start)],
                                        np.s_[first + start : first + stop])
            first = last
        out[order] = buffer[inverse]
        return out

    def read_images(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> np.ndarray:
        """Images of the objects at ``indices`` of this set, ``(n, bands, H, W)`` float32.

        Raises
        ------
        InputError
            The stored images cannot be read back (a damaged file).
        """
        try:
            return self._read_images(indices)
        except OSError as exc:
            raise InputError(self.path, f"damaged stamp set: its images cannot be read ({exc})") from None

    def _read_images(self, indices) -> np.ndarray:
        rows = self.file_rows() if indices is None else self.file_rows(indices)
        rows = np.atleast_1d(rows)
        images = self._handle()["images"]
        if self._rows is None and isinstance(indices, slice) and (indices.step in (None, 1)):
            return images[indices]
        if len(rows) > 1 and self._mode == "r":
            reader = self._raw_reader(images)
            if reader is not None:
                return reader.read(rows)
        return self._read_rows(images, rows)

    def _raw_reader(self, images: h5py.Dataset) -> "_RawChunkReader | None":
        cached = getattr(self, "_raw", None)
        if cached is not None and cached.pid == os.getpid():
            return cached
        self._raw = _RawChunkReader.build(self.path, images, self._length)
        return self._raw

    def images(self) -> np.ndarray:
        """All images of this set or view, ``(N, bands, H, W)`` float32 (loads them)."""
        return self.read_images(None)

    def iter_batches(self, batch_size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(indices, images)`` batches in order, holding one batch in memory at a time."""
        for start in range(0, len(self), batch_size):
            indices = np.arange(start, min(start + batch_size, len(self)))
            yield indices, self.read_images(indices)

    @property
    def columns(self) -> list[str]:
        """Names of the table's columns, in stored order."""
        return list(json.loads(self._handle()["table"].attrs["columns"]))

    @property
    def array_names(self) -> list[str]:
        """Names of the extra per-object arrays (e.g. ``"spectrum"``)."""
        group = self._handle().get("arrays")
        return [] if group is None else list(group.keys())

    def column(self, name: str, indices: Any = None) -> np.ndarray:
        """One table column as a plain array (NaN for missing floats, ``""`` for missing strings)."""
        table = self._handle()["table"]
        if name not in table:
            raise KeyError(f"{self.path}: no column {name!r}; columns are {self.columns}")
        dataset = table[name]
        rows = self.file_rows() if indices is None else np.atleast_1d(self.file_rows(indices))
        try:
            if self._rows is None and indices is None:
                values = dataset[: self._length]
            else:
                values = self._read_rows(dataset, rows)
        except OSError as exc:
            raise InputError(self.path, f"damaged stamp set: column {name!r} cannot be read ({exc})") from None
        if dataset.dtype.kind == "O" or h5py.check_string_dtype(dataset.dtype) is not None:
            values = np.asarray([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
            values = values.astype(str) if len(values) else np.zeros(0, dtype="U1")
        return values

    def column_unit(self, name: str) -> str | None:
        """The unit of a table column (None: dimensionless or not recorded)."""
        return self._handle()["table"][name].attrs.get("unit", "") or None

    def array(self, name: str, indices: Any = None) -> np.ndarray:
        """An extra per-object array (e.g. spectra) for this set's objects."""
        group = self._handle().get("arrays")
        if group is None or name not in group:
            raise KeyError(f"{self.path}: no array {name!r}; arrays are {self.array_names}")
        rows = self.file_rows() if indices is None else np.atleast_1d(self.file_rows(indices))
        try:
            return self._read_rows(group[name], rows)
        except OSError as exc:
            raise InputError(self.path, f"damaged stamp set: array {name!r} cannot be read ({exc})") from None

    def array_attrs(self, name: str) -> dict[str, Any]:
        """Attributes of an extra array (e.g. its wavelength grid)."""
        return {k: _decode_attr(v) for k, v in self._handle()["arrays"][name].attrs.items()}

    @property
    def table(self) -> Table:
        """The per-object table of this set or view as an astropy Table.

        Float columns holding NaN (missing magnitudes, unknown coordinates) come back as
        masked columns; units are attached where the schema defines them.
        """
        out = Table(meta={"stampset": str(self.path), "bands": list(self.meta.bands)})
        handle = self._handle()["table"]
        for name in self.columns:
            values = self.column(name)
            unit = handle[name].attrs.get("unit", "") or None
            if values.dtype.kind == "f" and np.isnan(values).any():
                out[name] = MaskedColumn(values, mask=np.isnan(values), unit=unit)
            else:
                out[name] = values
                if unit:
                    out[name].unit = unit
        return out

    def labels(self) -> np.ndarray:
        """The ``label`` column (``""`` where unknown)."""
        return self.column("label")

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary: size, bands, metadata, class counts, flag counts."""
        from .flags import flag_counts

        labels = self.labels()
        flags = self.column("flags")
        classes, counts = np.unique(labels, return_counts=True)
        return {
            "path": str(self.path),
            "kind": "stampset",
            "schema_version": SCHEMA_VERSION,
            "n_objects": len(self),
            "stamp_shape": list(self.shape[1:]),
            "meta": dataclasses.asdict(self.meta),
            "classes": {str(c) or "(unlabelled)": int(n) for c, n in zip(classes, counts)},
            "flags": flag_counts(flags),
            "columns": self.columns,
            "arrays": self.array_names,
            "file_size_bytes": self.path.stat().st_size,
        }

    # ------------------------------------------------------------------ writing in place
    def append(self, images: np.ndarray, table: Table | Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> None:
        """Append objects to a set opened with ``mode="a"`` (see :meth:`StampSetWriter.append`)."""
        if self._mode != "a" or self._rows is not None:
            raise ValueError("append needs a whole stamp set opened with mode='a'")
        _append(self._handle(), images, table, arrays)
        self._length = int(self._handle().attrs["length"])

    def __repr__(self) -> str:
        kind = "view of " if self._rows is not None else ""
        return (
            f"<StampSet {kind}{self.path.name}: {len(self)} objects, bands {''.join(self.meta.bands) if all(len(b) == 1 for b in self.meta.bands) else list(self.meta.bands)}, "
            f"{self.shape[2]}x{self.shape[3]} px at {self.meta.pixel_scale}\"/px>"
        )


class _RawChunkReader:
    """Random reads of uncompressed image chunks straight from the file.

    Each h5py selection costs about 100 us of library overhead, which caps scattered reads near
    9,000 stamps/s; uncompressed chunks are plain bytes at known file offsets, so one
    ``pread`` per stamp is an order of magnitude cheaper. Used for read-only files only (an
    appending writer may move chunks).
    """

    def __init__(self, path: Path, offsets: np.ndarray, chunk_rows: int, stamp_shape: tuple[int, ...], length: int):
        self.pid = os.getpid()
        self.fd = os.open(path, os.O_RDONLY)
        self.offsets = offsets
        self.chunk_rows = chunk_rows
        self.stamp_shape = stamp_shape
        self.stamp_bytes = 4 * int(np.prod(stamp_shape))
        self.length = length

    @classmethod
    def build(cls, path: Path, images: h5py.Dataset, length: int) -> "_RawChunkReader | None":
        if images.compression or images.chunks is None or images.dtype != np.dtype("=f4"):
            return None
        chunk_rows = images.chunks[0]
        n_chunks = -(-length // chunk_rows)
        offsets = np.full(n_chunks, -1, dtype=np.int64)
        dataset_id = images.id
        for i in range(dataset_id.get_num_chunks()):
            info = dataset_id.get_chunk_info(i)
            if info.filter_mask != 0:
                return None
            index = info.chunk_offset[0] // chunk_rows
            if index < n_chunks:
                offsets[index] = info.byte_offset
        if np.any(offsets < 0):
            return None
        return cls(path, offsets, chunk_rows, images.shape[1:], length)

    def read(self, rows: np.ndarray) -> np.ndarray:
        if np.any(rows < 0) or np.any(rows >= self.length):
            raise IndexError(f"row index out of range for a stamp set of {self.length} objects")
        out = np.empty((len(rows),) + tuple(self.stamp_shape), dtype=np.float32)
        starts = self.offsets[rows // self.chunk_rows] + (rows % self.chunk_rows) * self.stamp_bytes
        flat = out.reshape(len(rows), -1)
        for k, start in enumerate(starts):
            if os.preadv(self.fd, [flat[k]], int(start)) != self.stamp_bytes:
                raise OSError(f"short read at byte {start}")
        return out

    def __del__(self):
        if getattr(self, "pid", None) == os.getpid():
            try:
                os.close(self.fd)
            except OSError:
                pass


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _create_column(group: h5py.Group, name: str, kind: str, unit: str = "") -> None:
    dtype = _STRING_DTYPE if kind == "str" else np.dtype(kind)
    dataset = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(16384,))
    dataset.attrs["unit"] = unit


def _append(handle: h5py.File, images: np.ndarray, table: Table | Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None) -> None:
    """Append a block of objects, committing the new length only once everything is written."""
    with np.errstate(over="ignore", invalid="ignore"):
        images = np.asarray(images, dtype=np.float32)
    infinite = np.isinf(images)
    if infinite.any():
        # The format stores no infinities (an infinite pixel, or a value beyond float32, is no
        # measurement); a new array, as the caller's own must not change.
        images = np.where(infinite, np.float32(np.nan), images)
    image_ds = handle["images"]
    if images.ndim == 3 and image_ds.shape[1] == 1:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1:] != image_ds.shape[1:]:
        raise ValueError(f"images of shape {images.shape} do not fit stamps of shape {image_ds.shape[1:]}")
    n_new = images.shape[0]
    start = int(handle.attrs["length"])
    stop = start + n_new

    group = handle["table"]
    columns = json.loads(group.attrs["columns"])
    table_names = list(table.colnames if isinstance(table, Table) else table.keys())
    for name in table_names:
        if name not in columns:
            if name in group:
                # Left by an append that failed before it listed the column: never committed.
                del group[name]
            values = _as_storable(name, table[name])
            _create_column(group, name, _column_kind(values))
            group[name].resize((start,))
            if group[name].dtype.kind == "f":
                group[name][:start] = np.nan
            columns.append(name)
    for name in columns:
        dataset = group[name]
        dataset.resize((stop,))
        if name in table_names:
            values = _as_storable(name, table[name])
            if len(values) != n_new:
                raise ValueError(f"column {name!r} has {len(values)} rows for {n_new} images")
            if h5py.check_string_dtype(dataset.dtype) is not None and values.dtype != object:
                # A text column (label, or ids declared as text) given numbers: store their text.
                values = np.asarray([str(v) for v in values], dtype=object)
            dataset[start:stop] = values
        elif name == "id":
            dataset[start:stop] = np.arange(start, stop)
        elif dataset.dtype.kind == "f":
            dataset[start:stop] = np.nan
        elif h5py.check_string_dtype(dataset.dtype) is not None:
            dataset[start:stop] = np.full(n_new, "", dtype=object)
        else:
            dataset[start:stop] = 0
    group.attrs["columns"] = json.dumps(columns)

    image_ds.resize((stop,) + image_ds.shape[1:])
    image_ds[start:stop] = images
    array_group = handle.get("arrays")
    declared = [] if array_group is None else list(array_group.keys())
    given = dict(arrays or {})
    unknown = set(given) - set(declared)
    if unknown:
        raise ValueError(f"arrays {sorted(unknown)} were not declared when the stamp set was created")
    for name in declared:
        dataset = array_group[name]
        dataset.resize((stop,) + dataset.shape[1:])
        if name in given:
            values = np.asarray(given[name], dtype=dataset.dtype)
            if values.shape != (n_new,) + dataset.shape[1:]:
                raise ValueError(f"array {name!r} of shape {values.shape} for {n_new} objects of shape {dataset.shape[1:]}")
            dataset[start:stop] = values
        else:
            dataset[start:stop] = np.nan if dataset.dtype.kind == "f" else 0
    handle.attrs["length"] = stop


class StampSetWriter:
    """Writes a new stamp set block by block; the file appears at its path only on success.

    Use as a context manager::

        with StampSet.create("out.h5", meta, (64, 64)) as writer:
            writer.append(images, table)

    Parameters
    ----------
    path : path-like
        Output file.
    meta : StampMeta
        Metadata of the set.
    stamp_shape : (int, int)
        Stamp height and width in pixels.
    columns : mapping of str to str, optional
        Extra table columns and their dtypes (``"float32"``, ``"int64"``, ``"str"``, ...)
        beyond :data:`CORE_COLUMNS` and ``mag_<band>`` / ``magerr_<band>``; an explicit dtype
        overrides a core column's (e.g. string ids). Columns found in an appended table but not
        declared are added with their own dtype.
    arrays : mapping of str to (shape, dtype), optional
        Further per-object arrays, e.g. ``{"spectrum": ((3840,), "float32")}``.
    array_attrs : mapping, optional
        Attributes of those arrays (e.g. the wavelength grid definition).
    chunk_objects : int, optional
        Objects per image chunk; by default about 256 KiB per chunk.
    compression : {None, "gzip", "lzf"}
        HDF5 compression of the images (none by default: noisy floats barely compress and
        decompression would cost read throughput).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        meta: StampMeta,
        stamp_shape: tuple[int, int],
        *,
        columns: Mapping[str, str] | None = None,
        arrays: Mapping[str, tuple[tuple[int, ...], str]] | None = None,
        array_attrs: Mapping[str, Mapping[str, Any]] | None = None,
        chunk_objects: int | None = None,
        compression: str | None = None,
    ):
        self.path = Path(path)
        self.meta = meta
        self._target = AtomicFile(self.path)
        height, width = (int(s) for s in stamp_shape)
        n_bands = len(meta.bands)
        chunk = chunk_objects or _default_chunk_objects(n_bands, height, width)
        self._handle = h5py.File(self._target.tmp, "w")
        try:
            self._start(meta, (height, width), chunk, columns, arrays, array_attrs, compression)
        except BaseException:
            # A bad column dtype or array shape must not leave the temporary file behind.
            self._handle.close()
            self._target.discard()
            raise
        self._closed = False

    def _start(self, meta: StampMeta, stamp_shape: tuple[int, int], chunk: int, columns, arrays, array_attrs,
               compression) -> None:
        """Write the empty datasets and the metadata into the new file."""
        height, width = stamp_shape
        n_bands = len(meta.bands)
        handle = self._handle
        handle.attrs["format"] = FORMAT_NAME
        handle.attrs["schema_version"] = SCHEMA_VERSION
        handle.attrs["meta"] = meta.to_json()
        handle.attrs["length"] = 0
        handle.create_dataset(
            "images", shape=(0, n_bands, height, width), maxshape=(None, n_bands, height, width),
            dtype=np.float32, chunks=(chunk, n_bands, height, width), compression=compression,
        )
        handle["images"].attrs["unit"] = meta.flux_unit
        table = handle.create_group("table")
        declared: dict[str, tuple[str, str]] = dict(CORE_COLUMNS)
        for band in meta.bands:
            declared[f"mag_{band}"] = ("float64", "mag")
            declared[f"magerr_{band}"] = ("float64", "mag")
        for name, kind in (columns or {}).items():
            # An explicit dtype overrides the default one (e.g. string ids for KiDS).
            declared[name] = (kind, declared.get(name, (kind, ""))[1])
        for name, (kind, unit) in declared.items():
            _create_column(table, name, kind, unit)
        table.attrs["columns"] = json.dumps(list(declared))
        if arrays:
            group = handle.create_group("arrays")
            for name, (shape, dtype) in arrays.items():
                dataset = group.create_dataset(
                    name, shape=(0,) + tuple(shape), maxshape=(None,) + tuple(shape), dtype=np.dtype(dtype),
                    chunks=(max(1, _TARGET_CHUNK_BYTES // (np.dtype(dtype).itemsize * int(np.prod(shape)))),) + tuple(shape),
                )
                for key, value in (array_attrs or {}).get(name, {}).items():
                    dataset.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value

    def __len__(self) -> int:
        return int(self._handle.attrs["length"])

    def append(self, images: np.ndarray, table: Table | Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> None:
        """Append ``n`` objects.

        Parameters
        ----------
        images : ndarray, shape (n, bands, H, W) (or (n, H, W) for one band)
            Stamps in the set's flux unit.
        table : astropy Table or mapping of column name to length-``n`` array
            Per-object values; missing core columns get defaults (NaN, ``""``, 0; ``id`` the
            running row number). Masked float values are stored as NaN.
        arrays : mapping of str to ndarray, optional
            Values of the extra arrays declared at creation.
        """
        _append(self._handle, images, table, arrays)

    def close(self, success: bool = True) -> None:
        """Finish the file: rename it into place on success, discard it otherwise."""
        if self._closed:
            return
        self._closed = True
        self._handle.close()
        if success:
            self._target.commit()
        else:
            self._target.discard()

    def __enter__(self) -> "StampSetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(success=exc_type is None)


def stamps_without_pixels(images: np.ndarray) -> np.ndarray:
    """Whether each stamp of ``images`` ``(N, ...)`` holds no finite pixel at all: an object
    off the tile's data or in a masked region. A network given one would classify the sky level
    it is filled with, so predictors give such a stamp no probabilities (or use other inputs),
    evaluations do not score it and training refuses it."""
    images = np.asarray(images)
    return ~np.isfinite(images).reshape(len(images), -1).any(axis=1)


def stamps_missing_a_band(images: np.ndarray) -> np.ndarray:
    """Whether each stamp of ``images`` ``(N, B, H, W)`` lacks a band: one of its B planes
    holds no finite pixel (a chip gap, a masked region, a band off its image), or all do.

    A network reads such a plane as blank sky, so its class comes without that band's light
    (for colours, a made-up colour): :data:`skysort.inference.predictor.MISSING_INPUT_FLAG` says so.
    """
    images = np.asarray(images)
    return (~np.isfinite(images).any(axis=(2, 3))).any(axis=1)


def write_stampset(
    path: str | os.PathLike,
    images: np.ndarray,
    table: Table | Mapping[str, Any],
    meta: StampMeta,
    *,
    arrays: Mapping[str, np.ndarray] | None = None,
    array_attrs: Mapping[str, Mapping[str, Any]] | None = None,
    **options,
) -> StampSet:
    """Write a whole stamp set from in-memory arrays and return it opened for reading."""
    with np.errstate(over="ignore", invalid="ignore"):
        images = np.asarray(images, dtype=np.float32)  # values beyond float32 become inf, then NaN
    if images.ndim == 3:
        images = images[:, None]
    declared = {name: (np.asarray(v).shape[1:], np.asarray(v).dtype.name) for name, v in (arrays or {}).items()}
    with StampSet.create(path, meta, images.shape[2:], arrays=declared or None, array_attrs=array_attrs, **options) as writer:
        writer.append(images, table, arrays)
    return StampSet.open(path)


def _per_object_seeing(sets: Sequence[StampSet]) -> dict[str, list[np.ndarray]]:
    """Per band whose seeing is not the same for every set (recorded value or simulated PSF
    variants), each set's per-object FWHM [arcsec]; empty when one value serves all."""
    from .seeing import object_seeing

    first = sets[0].meta
    out: dict[str, list[np.ndarray]] = {}
    for band in first.bands:
        same = all(np.isclose(s.meta.psf_fwhm.get(band, np.nan), first.psf_fwhm.get(band, np.nan), rtol=0, atol=1e-6, equal_nan=True)
                   and s.meta.extra.get("psf_variants") == first.extra.get("psf_variants")
                   and s.meta.extra.get("psf_fwhm_band") == first.extra.get("psf_fwhm_band") for s in sets[1:])
        if same:
            continue
        per_set = [np.asarray(object_seeing(s, band), np.float32) for s in sets]
        values = np.concatenate(per_set)
        # Metadata that differs in form only (e.g. other PSF variants of one FWHM) needs no column.
        if not (len(values) and np.isfinite(values).all() and np.ptp(values) < 1e-4
                and np.isclose(values[0], first.psf_fwhm.get(band, np.nan), atol=1e-4)):
            out[band] = per_set
    return out


def _concatenated_column_kinds(sets: Sequence[StampSet]) -> dict[str, str]:
    """The stored kind of every table column of ``sets`` in their concatenation, in first-seen
    order: text where any set holds text (ids too: integer ids beside text ids are text, as
    in catalogues), else the numpy type that holds every set's values; an integer or boolean
    column that some sets lack becomes float64, so that their rows read NaN rather than 0."""
    found: dict[str, list[np.dtype | str]] = {}
    for s in sets:
        group = s._handle()["table"]
        for name in s.columns:
            dtype = group[name].dtype
            found.setdefault(name, []).append("str" if h5py.check_string_dtype(dtype) is not None else dtype)
    kinds = {}
    for name, given in found.items():
        if any(isinstance(kind, str) for kind in given):
            kinds[name] = "str"
            continue
        dtype = np.result_type(*given)
        if name == "id" and dtype.kind == "f":
            # int64 beside uint64 ids: a float would round large ids.
            kinds[name] = "str"
        elif name not in CORE_COLUMNS and len(given) < len(sets) and dtype.kind in "iub":
            kinds[name] = "float64"
        else:
            kinds[name] = dtype.name
    return kinds


def concatenate(sets: Iterable[StampSet | str | os.PathLike], path: str | os.PathLike, *, batch_size: int = 4096,
                command: str | None = None) -> StampSet:
    """Concatenate stamp sets (or views, or stamp set files) with the same bands, pixel scale
    and stamp shape.

    Metadata comes from the first set, with ``extra["concatenated_from"]`` listing the inputs.
    Where the sets' seeing differs (sets cut from tiles of different seeing, or simulated with
    other PSFs), each object's seeing is kept in ``psf_fwhm_<band>`` columns
    (:func:`skysort.data.seeing.object_seeing` reads them first), ``meta.psf_fwhm`` holds the
    median and ``extra["psf_fwhm_range"]`` the range. Table columns whose types differ between
    the sets are stored in a type that holds them all (text where one set has text). Rows are
    copied in batches, so memory stays bounded whatever the sizes.
    """
    sets = [StampSet.open(item) if isinstance(item, (str, os.PathLike)) else item for item in sets]
    if not sets:
        raise ValueError("nothing to concatenate")
    first = sets[0]
    for other in sets[1:]:
        problems = first.meta.compatible_with(other.meta)
        if other.shape[2:] != first.shape[2:]:
            problems.append(f"stamp shapes differ ({first.shape[2:]} vs {other.shape[2:]})")
        if problems:
            raise InputError(other.path, "cannot concatenate with " + str(first.path) + ": " + "; ".join(problems))
    provenance = provenance_record(command)
    extra = dict(first.meta.extra)
    extra["concatenated_from"] = [str(s.path) for s in sets]
    seeing = _per_object_seeing(sets)
    psf_fwhm = dict(first.meta.psf_fwhm)
    if seeing:
        extra["psf_fwhm_range"] = {}
        for band, per_set in seeing.items():
            values = np.concatenate(per_set)
            finite = values[np.isfinite(values)]
            psf_fwhm[band] = round(float(np.median(finite)), 4) if len(finite) else float("nan")
            if len(finite):
                extra["psf_fwhm_range"][band] = [round(float(finite.min()), 4), round(float(finite.max()), 4)]
    meta = dataclasses.replace(
        first.meta, extra=extra, psf_fwhm=psf_fwhm, command=str(provenance["command"]), created=str(provenance["created"]),
        creator=str(provenance["creator"]),
    )
    array_specs = {}
    for name in first.array_names:
        dataset = first._handle()["arrays"][name]
        array_specs[name] = (dataset.shape[1:], dataset.dtype.name)
    array_attrs = {name: first.array_attrs(name) for name in first.array_names}
    column_kinds = _concatenated_column_kinds(sets)
    for band in seeing:
        column_kinds.setdefault(f"psf_fwhm_{band}", "float32")
    with StampSet.create(path, meta, first.shape[2:], columns=column_kinds, arrays=array_specs or None, array_attrs=array_attrs) as writer:
        for k, s in enumerate(sets):
            for start in range(0, len(s), batch_size):
                idx = np.arange(start, min(start + batch_size, len(s)))
                table = {name: s.column(name, idx) for name in s.columns}
                table.update({f"psf_fwhm_{band}": per_set[k][idx] for band, per_set in seeing.items()})
                arrays = {name: s.array(name, idx) for name in s.array_names if name in array_specs}
                writer.append(s.read_images(idx), table, arrays or None)
    return StampSet.open(path)
