"""Turning real survey data into stamp sets: tile cutouts and imported stamp arrays."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from astropy.table import MaskedColumn, Table

from ..errors import InputError, report_problem
from .cutout import cut_stamps, iter_chunks, pixel_to_sky, sky_to_pixel, stamp_footprint, stamps_touch_image
from .flags import Flags
from .images import BandImage, open_fits
from .stampset import CORE_COLUMNS, FORMAT_NAME, StampMeta, StampSet, pixel_scale_arcsec

#: Objects cut and written per block: bounds memory (5 bands x 64 x 64 x 4 B x 2048 = 168 MB).
DEFAULT_CHUNK = 2048

#: File-name endings of the stamp arrays :func:`load_stamp_array` reads, by format.
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fits.bz2", ".fits.fz")
NPZ_SUFFIXES = (".npz",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
#: Name of the stamps in an ``.npz`` or HDF5 file; its other arrays are per-object columns.
IMAGES_NAME = "images"


def _filled(column: Any, fill: Any) -> np.ndarray:
    if isinstance(column, np.ma.MaskedArray) or hasattr(column, "mask"):
        return np.ma.filled(column, fill)
    return np.asarray(column)


def _photometry_flags(table: Table, bands: Sequence[str]) -> np.ndarray:
    flags = np.zeros(len(table), dtype=np.uint32)
    for band in bands:
        name = f"mag_{band}"
        if name in table.colnames:
            values = np.ma.masked_invalid(np.ma.asarray(table[name], dtype=float))
            flags[np.ma.getmaskarray(values)] |= np.uint32(Flags.MISSING_PHOTOMETRY)
    return flags


def _storable_table(table: Table, source: str | os.PathLike) -> Table:
    """``table`` with every column in a form a stamp set stores, or InputError naming the
    column: FITS byte strings as text, dates as ISO text, integer or boolean columns with
    missing values as floats with NaN; vector columns, complex numbers, an incomplete ``id`` and
    a ``flags`` column that is not a whole number of at least 0 are refused."""
    out = table.copy(copy_data=False)
    for name in table.colnames:
        column = table[name]
        data, mask = np.ma.getdata(column), np.ma.getmaskarray(column)
        if data.ndim > 1:
            raise InputError(source, f"column {name!r} holds {data.shape[1:]} values per object; a stamp set column "
                                     "holds one (give its elements as separate columns)")
        kind = data.dtype.kind
        if kind == "S" or (kind == "O" and any(isinstance(v, bytes) for v in data[:100])):
            # FITS text columns are bytes: str() of them would store "b'...'".
            text = [v.decode("utf-8", "replace").strip() if isinstance(v, bytes) else str(v) for v in data]
            out[name] = MaskedColumn(text, mask=mask) if mask.any() else text
        elif kind == "M":
            out[name] = MaskedColumn(np.datetime_as_string(data), mask=mask) if mask.any() else np.datetime_as_string(data)
        elif kind in "cmV":
            raise InputError(source, f"column {name!r} has {data.dtype} values, which a stamp set does not store")
        if name == "id":
            from .catalog import missing_ids

            missing = missing_ids(np.ma.getdata(out[name]) if kind in "SUO" else data, mask)
            if missing.any():
                raise InputError(source, f"column 'id' has {int(np.count_nonzero(missing))} missing value(s)")
        elif name == "flags":
            given = data[~mask]
            whole = kind in "iub" or (kind == "f" and np.all(np.isfinite(given)) and np.all(given == np.round(given)))
            # Flags are stored as uint32: a larger value would wrap round to other bits.
            if (mask.any() or not whole or (kind in "if" and np.any(given < 0))
                    or (kind in "iuf" and np.any(given > np.iinfo(np.uint32).max))):
                raise InputError(source, "column 'flags' must hold whole numbers from 0 to 2**32 - 1 (skysort's "
                                         "32 flag bits), with none missing")
        elif kind in "iub" and mask.any():
            out[name] = np.where(mask, np.nan, data.astype(np.float64))
    return out


def _column_kinds(table: Table) -> dict[str, str]:
    kinds = {}
    for name in table.colnames:
        dtype = np.asarray(table[name]).dtype
        kinds[name] = "str" if dtype.kind in "USO" else ("uint8" if dtype.kind == "b" else dtype.name)
    return kinds


def object_positions(catalog: Table, reference: BandImage, source: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference-band pixel positions and sky positions of catalogue objects.

    Sky positions (``ra``/``dec``) take precedence; without them ``x``/``y`` are read as
    0-based pixels of the reference band and converted to the sky through its WCS.

    Returns
    -------
    x, y : ndarray
        0-based reference-band pixel coordinates.
    ra, dec : ndarray
        Degrees.
    """
    has_sky = {"ra", "dec"} <= set(catalog.colnames)
    has_pixels = {"x", "y"} <= set(catalog.colnames)
    if has_sky:
        ra = _filled(catalog["ra"], np.nan).astype(float)
        dec = _filled(catalog["dec"], np.nan).astype(float)
        if not np.all(np.isfinite(ra) & np.isfinite(dec)):
            bad = int(np.count_nonzero(~(np.isfinite(ra) & np.isfinite(dec))))
            raise InputError(source, f"{bad} objects have no finite ra/dec")
        x, y = sky_to_pixel(reference, ra, dec)
        return x, y, ra, dec
    if has_pixels:
        x = _filled(catalog["x"], np.nan).astype(float)
        y = _filled(catalog["y"], np.nan).astype(float)
        if not np.all(np.isfinite(x) & np.isfinite(y)):
            raise InputError(source, "some objects have no finite x/y position")
        ra, dec = pixel_to_sky(reference, x, y)
        return x, y, ra, dec
    raise InputError(source, "catalogue has neither ra/dec nor x/y columns")


def image_seeing(images: Sequence[BandImage]) -> dict[str, tuple[float, str]]:
    """PSF FWHM of each band [arcsec] and where it came from: the FITS header, else measured on
    the image's point sources (:func:`skysort.data.seeing.measure_seeing`), else ``unknown``
    (NaN)."""
    from .seeing import measure_seeing

    result = {}
    for image in images:
        if np.isfinite(image.psf_fwhm):
            result[image.band] = (float(image.psf_fwhm), "header")
            continue
        fwhm = measure_seeing(image.data, image.pixel_scale).fwhm
        result[image.band] = (round(fwhm, 3), "measured") if np.isfinite(fwhm) else (float("nan"), "unknown")
    return result


def cutout_to_stampset(
    images: Sequence[BandImage],
    catalog: Table,
    out: str | os.PathLike,
    *,
    size: int = 64,
    reference_band: str | None = None,
    survey: str | None = None,
    catalog_path: str | os.PathLike = "catalogue",
    command: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
    warn: Callable[[str | os.PathLike, str], None] | None = None,
    pixel_scale: float | None = None,
) -> StampSet:
    """Cut aligned stamps of every catalogue object from one tile into a new stamp set.

    Parameters
    ----------
    images : sequence of BandImage
        The tile's bands in the order wanted in the stamps.
    catalog : astropy Table
        Standard-named catalogue (see :func:`skysort.data.catalog.read_catalog`) with ``ra``,
        ``dec`` (deg) or ``x``, ``y`` (0-based pixels of the reference band). Its other columns
        are kept; its own ``flags`` as ``catalog_flags``.
    out : path-like
        Output stamp set (written atomically).
    size : int
        Stamp side in reference-band pixels.
    reference_band : str, optional
        Band whose pixel grid the stamps share; ``r`` if present, else the first band.
    survey : str, optional
        Survey name for the metadata (default: the header ``ORIGIN`` if any).
    catalog_path : path-like
        Where the catalogue came from (for messages and provenance).
    chunk : int
        Objects cut and written per block.
    progress : callable, optional
        Called with the number of objects finished after each block.
    warn : callable, optional
        ``warn(file, message)`` for non-fatal problems (default: :func:`warnings.warn`), such
        as objects off the images.
    pixel_scale : float, optional
        Pixel scale of the stamps [arcsec/px], when it should differ from the reference band's
        (a model trained at another scale): every band is then resampled onto a grid of this
        scale centred on each object (:func:`~skysort.data.cutout.cut_stamps`), and ``size``
        counts its pixels.

    Returns
    -------
    StampSet
        The new set, opened for reading. Every catalogue object appears exactly once, in
        catalogue order; objects at edges or off the images are kept, padded with NaN and
        flagged EDGE. A catalogue with no object on the images is refused (InputError).
    """
    if size < 4:
        raise InputError("--size", f"stamp size must be at least 4 pixels, got {size}")
    bands = [image.band for image in images]
    if reference_band is None:
        reference_band = "r" if "r" in bands else bands[0]
    if reference_band not in bands:
        raise InputError("--reference-band", f"band {reference_band!r} is not among the images' bands {bands}")
    reference = bands.index(reference_band)
    ref_image = images[reference]
    x, y, ra, dec = object_positions(catalog, ref_image, catalog_path)
    ny, nx = ref_image.data.shape
    if pixel_scale is not None and not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise InputError("--pixel-scale", f"must be a positive number of arcsec per pixel, got {pixel_scale}")
    scale, footprint = stamp_footprint(size, pixel_scale, ref_image.pixel_scale)
    rescaled = scale != 1.0
    if footprint > 2 * max(ny, nx):
        # Beyond that every stamp is mostly padding, and the stamps alone may not fit in memory.
        across = f" ({footprint} px of the images at {pixel_scale:g}\"/px)" if rescaled else ""
        raise InputError("--size", f"stamps of {size} px{across} are more than twice the side of the images ({nx}x{ny} px, "
                                   f"{ref_image.path.name})")
    on_image = stamps_touch_image(x, y, (ny, nx), footprint)
    if len(x) and not on_image.any():
        raise InputError(catalog_path, f"none of its {len(x):,} objects lies on the images ({ref_image.path.name}, "
                         f"{nx}x{ny} px): catalogue and images do not cover the same sky")
    if not on_image.all():
        off = int((~on_image).sum())
        report_problem(warn, catalog_path, f"{off:,} of its {len(x):,} objects {'lies' if off == 1 else 'lie'} wholly off "
                       f"the images; {'its stamp is' if off == 1 else 'their stamps are'} all NaN and flagged EDGE")
    units = {image.band: image.flux_unit for image in images}
    if len(set(units.values())) > 1:
        warnings.warn(f"bands have different flux units {units}; stamps keep each band's own unit", stacklevel=2)
    seeing = image_seeing(images)
    meta = StampMeta.with_provenance(
        command=command,
        bands=tuple(bands),
        pixel_scale=round(float(pixel_scale) if rescaled else ref_image.pixel_scale, 6),
        flux_unit=units[reference_band],
        zero_points={image.band: float(image.zero_point) for image in images},
        psf_fwhm={band: seeing[band][0] for band in bands},
        survey=survey or ref_image.survey,
        seed=None,
        extra={
            "images": {image.band: str(image.path) for image in images},
            "catalog": str(catalog_path),
            "reference_band": reference_band,
            "band_flux_units": units,
            "alignment": (f"every band: cubic-spline resampling through its WCS onto a grid of {pixel_scale:g}\"/px centred "
                          f"on each object (local affine map, flux-conserving; the reference band's own pixels are "
                          f"{ref_image.pixel_scale:.6g}\"/px)") if rescaled else
            "reference band and bands on its pixel grid: integer-pixel cut; other bands: cubic-spline "
            "resampling onto the reference grid through each band's WCS (local affine map, flux-conserving)",
            "background": {image.band: image.background or {"method": "none"} for image in images},
            # Whose no-data pixels were made NaN before cutting (None: no weight map was read).
            "weight_maps": {image.band: dict(image.weight_map) if image.weight_map else None for image in images},
            "psf_fwhm_source": {band: seeing[band][1] for band in bands},
            # What the SATURATED flag was judged against (None: the header gives no level).
            "saturation": {image.band: float(image.saturation) if np.isfinite(image.saturation) else None for image in images},
        },
    )
    table = catalog.copy(copy_data=True)
    if "flags" in table.colnames:
        # A survey's own flags (SExtractor bits, say) mean something else than skysort's: kept
        # beside them, under another name.
        if "catalog_flags" in table.colnames:
            table.remove_column("flags")
        else:
            table.rename_column("flags", "catalog_flags")
    table = _storable_table(table, catalog_path)
    for name in ("x", "y", "ra", "dec"):
        if name in table.colnames:
            table.remove_column(name)
    table["ra"], table["dec"], table["x"], table["y"] = ra, dec, x, y
    # The object's offset from the centre of the stamp's central pixel [stamp pixels]: none on
    # a resampled grid, which is centred on it.
    table["offset_x"] = (x - np.rint(x)).astype(np.float32) if not rescaled else np.zeros(len(x), np.float32)
    table["offset_y"] = (y - np.rint(y)).astype(np.float32) if not rescaled else np.zeros(len(y), np.float32)
    if "label" in table.colnames:
        table["label"] = [str(v).strip().lower() for v in _filled(table["label"], "")]
    photometry_flags = _photometry_flags(table, bands)
    kinds = _column_kinds(table)
    declared = {name: kind for name, kind in kinds.items() if name not in CORE_COLUMNS or name == "id"}
    with StampSet.create(out, meta, (size, size), columns=declared) as writer:
        for block in iter_chunks(len(table), chunk):
            stamps, flags = cut_stamps(images, x[block], y[block], size=size, reference=reference, pixel_scale=pixel_scale)
            rows = table[block]
            columns = {name: rows[name] for name in rows.colnames}
            columns["flags"] = flags | photometry_flags[block]
            writer.append(stamps, columns)
            if progress:
                progress(block.stop - block.start)
    return StampSet.open(out)


def cutout(
    images: str | Sequence[str | os.PathLike],
    catalog: str | os.PathLike | Table,
    out: str | os.PathLike,
    *,
    size: int = 64,
    bands: Sequence[str] | None = None,
    mapping: Any = None,
    reference_band: str | None = None,
    survey: str | None = None,
    nan_policy: str = "flag",
    background: str = "sep",
    weights: str | Sequence[str | os.PathLike] | None = None,
    weight_hdu: str | None = None,
    zero_points: float | Mapping[str, float] | None = None,
    pixel_scale: float | None = None,
    warn: Callable[[str | os.PathLike, str], None] | None = None,
    progress: Callable[[int], None] | None = None,
    command: str | None = None,
) -> StampSet:
    """Read a tile's band images and a catalogue, and cut every object into a stamp set.

    Parameters
    ----------
    images : str or sequence of path-like
        Glob pattern(s) or files, one FITS file per band.
    catalog : path-like or astropy Table
        Catalogue (CSV, FITS, Parquet; see :func:`skysort.data.catalog.read_catalog`), or a
        table: one already read with it (its own mapping stands), or any table with ``mapping``
        to translate it.
    out : path-like
        Output stamp set.
    size : int
        Stamp side in reference-band pixels.
    bands : sequence of str, optional
        Bands and their order (default: all found, by wavelength).
    mapping : optional
        Catalogue column mapping (preset name, YAML path, compact string or ColumnMapping).
    reference_band : str, optional
        Band whose pixel grid the stamps share (default: the mapping's, else ``r`` if present,
        else the first band); catalogue x/y refer to it.
    survey : str, optional
        Survey name for the metadata (default: the header ``ORIGIN`` if any).
    nan_policy : {"flag", "error"}
        NaN pixels in an image: flag the affected stamps (``warn`` is told), or raise InputError.
    background : {"sep", "none"}
        Sky background subtracted from each band image before cutting (default ``sep``,
        SExtractor's mesh estimate, as the models expect sky-subtracted stamps; see
        :mod:`skysort.data.background`), or ``none`` to cut the pixels as they are. The
        stamp set's metadata (``extra["background"]``) records it per band.
    weights : str or sequence of path-like, optional
        Separate weight files (weight, inverse-variance, variance or rms maps): glob
        pattern(s) or files, matched to the images by name
        (:func:`skysort.data.images.match_weight_files`); every image needs one. Files
        matching both ``images`` and ``weights`` are weight maps, not images. Without it each
        image's own weight HDU is read, if it has one (DES ``WGT``, HSC ``VARIANCE``, ...).
        Pixels a weight map marks as without data are NaN, as NaN pixels of the images are
        (so ``nan_policy`` applies to them); ``extra["weight_maps"]`` records per band the map
        read.
    weight_hdu : str, optional
        Without ``weights``: the extension of each image's file holding its weight map
        (``WHT`` of a JWST file that also holds ``ERR``), or ``"none"`` to read none.
    zero_points : float or mapping of str to float, optional
        AB magnitude of one pixel unit, for all bands or per band, replacing the headers' (for
        images without a zero-point keyword, or with one in another convention such as CASU's
        per-second ``MAGZPT``); the stamp set records it.
    pixel_scale : float, optional
        Pixel scale of the stamps [arcsec/px]; default: the reference band's own (see
        :func:`cutout_to_stampset`).
    warn : callable, optional
        ``warn(file, message)`` for non-fatal problems (default: :func:`warnings.warn`).
    progress : callable, optional
        Called with the number of objects finished after each block.
    command : str, optional
        Command line recorded in the stamp set's provenance.

    Returns
    -------
    StampSet
        The new set, opened for reading (see :func:`cutout_to_stampset`).

    Raises
    ------
    InputError
        Unreadable images or catalogue, NaN pixels with ``nan_policy="error"``, a bad size or
        a catalogue whose objects all lie off the images.

    Examples
    --------
    >>> stamps = cutout("field/frame-*.fits.bz2", "field/objects.csv", "stamps.h5")  # doctest: +SKIP
    """
    from .catalog import read_catalog, standardise_catalog
    from .images import expand_image_paths, match_weight_files, patterns_text, read_band_images, separate_weight_files

    if nan_policy not in ("flag", "error"):
        raise InputError("--nan", f"must be 'flag' or 'error', got {nan_policy!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise InputError("--size", f"stamp size must be a whole number of pixels, got {size!r}")
    paths = expand_image_paths(images)
    paths, weight_files = separate_weight_files(paths, weights, weight_hdu, patterns_text(images))
    if isinstance(catalog, Table):
        # A table read elsewhere is translated with the mapping given; one from read_catalog
        # (which records its mapping) has the standard names already.
        translated = mapping is None or "mapping" in catalog.meta
        table = catalog if translated else standardise_catalog(catalog, mapping=mapping)
        catalog = table.meta.get("source_file", "catalogue")
    else:
        table = read_catalog(catalog, mapping=mapping)
    weight_paths = match_weight_files(paths, weight_files) if weight_files else None
    tiles = read_band_images(paths, bands, background=background, weights=weight_paths, weight_hdu=weight_hdu,
                             zero_points=zero_points)
    for tile in tiles:
        if tile.zero_point_note:
            report_problem(warn, tile.path, tile.zero_point_note)
        if tile.n_nan:
            without_data = ""
            if tile.weight_map and tile.weight_map["no_data_pixels"]:
                without_data = f" ({tile.weight_map['no_data_pixels']} of them without data in its weight map)"
            if nan_policy == "error":
                raise InputError(tile.path, f"{tile.n_nan} NaN pixels{without_data} (use --nan flag to keep and flag affected "
                                            "stamps)")
            report_problem(warn, tile.path, f"{tile.n_nan} NaN pixels{without_data}; stamps touching them are flagged NAN_PIXELS")
    # x/y positions refer to the band the catalogue's mapping names, unless the user overrides it.
    reference_band = reference_band or table.meta.get("reference_band")
    return cutout_to_stampset(tiles, table, out, size=size, reference_band=reference_band, survey=survey,
                              catalog_path=catalog, command=command, progress=progress, warn=warn, pixel_scale=pixel_scale)


class _HDF5Stamps:
    """The stamps of an HDF5 dataset as an ``(N, B, H, W)`` array read block by block, as a
    memory-mapped ``.npy`` or FITS cube is, so that a file larger than the memory is imported.

    Parameters
    ----------
    path : pathlib.Path
        The HDF5 file.
    name : str
        The dataset of shape ``(N, H, W)`` or ``(N, B, H, W)``.
    """

    ndim = 4

    def __init__(self, path: Path, name: str):
        import h5py

        self.path, self.name = path, name
        with h5py.File(path, "r") as handle:
            dataset = handle[name]
            self.dtype = dataset.dtype
            self._planes = dataset.ndim == 3
            self.shape = (dataset.shape[0], 1, *dataset.shape[1:]) if self._planes else tuple(dataset.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: Any) -> np.ndarray:
        import h5py

        # Opened per block rather than held open, so that nothing outlives the import.
        with h5py.File(self.path, "r") as handle:
            values = handle[self.name][rows]
        return np.expand_dims(values, -3) if self._planes else values


def _hdf5_datasets(handle: Any, path: Path) -> dict[str, Any]:
    """Root datasets of an open plain HDF5 file, by name. Refused: a skysort file (a stamp set
    needs no import) and groups, whose datasets the import does not read."""
    import h5py

    kind = handle.attrs.get("format")
    if isinstance(kind, bytes):
        kind = kind.decode("utf-8", "replace")
    if kind == FORMAT_NAME:
        raise InputError(path, "is a skysort stamp set already: use it as it is, no import needed")
    if isinstance(kind, str) and kind.startswith("skysort."):
        raise InputError(path, f"is a skysort file ({kind}), not stamps to import")
    grouped = [name for name, item in handle.items() if isinstance(item, h5py.Group)]
    if grouped:
        raise InputError(path, f"holds groups ({', '.join(grouped)}); the import reads datasets at the file's root only: "
                               f"'{IMAGES_NAME}' (N, B, H, W) and per-object arrays of length N")
    return {name: item for name, item in handle.items() if isinstance(item, h5py.Dataset)}


def _open_hdf5(path: Path) -> Any:
    """``h5py.File`` of ``path`` for reading, or InputError when it is no HDF5 file."""
    import h5py

    if not h5py.is_hdf5(path):
        raise InputError(path, "not an HDF5 file")
    return h5py.File(path, "r")


@contextlib.contextmanager
def _read_errors_named(path: Path) -> Iterator[None]:
    """Turn a reader's failure on a damaged stamp file into one error naming the file."""
    try:
        yield
    except InputError:
        raise
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise InputError(path, f"not a readable stamp array (truncated or corrupt: {exc})") from exc


def _images_missing(path: Path, names: Sequence[str]) -> InputError:
    held = ", ".join(repr(n) for n in names) or "none"
    return InputError(path, f"no array named '{IMAGES_NAME}' (the stamps, (N, H, W) or (N, B, H, W)); it holds {held}")


def load_stamp_array(path: str | os.PathLike) -> np.ndarray:
    """Load stamps ``(N, H, W)`` or ``(N, B, H, W)`` from a ``.npy``, FITS, ``.npz`` or HDF5 file.

    A ``.npy`` file and an uncompressed FITS cube are memory-mapped and an HDF5 dataset is read
    block by block, so that stamps larger than the memory are imported; an ``.npz`` file's
    stamps are read whole. In an ``.npz`` or plain HDF5 file (not a skysort stamp set), the
    stamps are the array or root dataset named ``images``; its other arrays are per-object
    columns (:func:`load_stamp_columns`).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its format is told by its name's ending (:data:`FITS_SUFFIXES`,
        :data:`NPZ_SUFFIXES`, :data:`HDF5_SUFFIXES`, ``.npy``).

    Returns
    -------
    ndarray or array-like, shape (N, B, H, W)
        Numeric stamps; an HDF5 file's are an array-like object read when sliced.

    Raises
    ------
    InputError
        A missing, unreadable or unknown file, no stamps in it, a skysort stamp set, or stamps
        of the wrong shape or type.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    name = path.name.lower()
    with _read_errors_named(path):
        if name.endswith(".npy"):
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        elif name.endswith(FITS_SUFFIXES):
            # An uncompressed cube is memory-mapped, as a .npy is, so that one larger than the
            # memory is read block by block; the map outlives the closed file.
            with open_fits(path, memmap=name.endswith((".fits", ".fit"))) as hdul:
                hdu = next((h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) in (3, 4)), None)
                if hdu is None:
                    raise InputError(path, "no 3-D (N, H, W) or 4-D (N, B, H, W) image cube in any HDU")
                array = np.asarray(hdu.data)
        elif name.endswith(NPZ_SUFFIXES):
            with np.load(path, allow_pickle=False) as npz:
                if IMAGES_NAME not in npz.files:
                    raise _images_missing(path, npz.files)
                array = npz[IMAGES_NAME]
        elif name.endswith(HDF5_SUFFIXES):
            with _open_hdf5(path) as handle:
                datasets = _hdf5_datasets(handle, path)
                if IMAGES_NAME not in datasets:
                    raise _images_missing(path, list(datasets))
                shape = datasets[IMAGES_NAME].shape
            if len(shape) not in (3, 4):
                raise InputError(path, f"stamps must have shape (N, H, W) or (N, B, H, W), got {shape}")
            array = _HDF5Stamps(path, IMAGES_NAME)
        else:
            raise InputError(path, "unknown stamp-array format (expected .npy, .npz, .fits or HDF5: .h5, .hdf5)")
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise InputError(path, f"stamps must have shape (N, H, W) or (N, B, H, W), got {array.shape}")
    if array.dtype.kind not in "fiu":
        raise InputError(path, f"stamps must be numeric, got dtype {array.dtype}")
    if array.shape[0] == 0:
        raise InputError(path, "no stamps in the array")
    if 0 in array.shape[1:]:
        raise InputError(path, f"stamps of shape {array.shape[1:]} have an axis of size 0")
    return array


def load_stamp_columns(path: str | os.PathLike | None, n: int) -> Table | None:
    """The per-object columns an ``.npz`` or HDF5 stamp file holds beside its ``images``.

    Parameters
    ----------
    path : str, os.PathLike or None
        The stamp file, as given to :func:`load_stamp_array`.
    n : int
        Number of stamps: every other array must hold one value per stamp.

    Returns
    -------
    astropy.table.Table or None
        One column per array, in the file's order, with ``meta["source_file"]``; None for
        other formats and for a file holding nothing but its stamps.

    Raises
    ------
    InputError
        An array that is not one value per stamp (another length, a scalar, vectors), or one
        of Python objects.
    """
    if path is None:
        return None
    path = Path(path)
    name = path.name.lower()
    columns: dict[str, np.ndarray] = {}
    with _read_errors_named(path):
        if name.endswith(NPZ_SUFFIXES):
            with np.load(path, allow_pickle=False) as npz:
                for key in npz.files:
                    if key == IMAGES_NAME:
                        continue
                    try:
                        columns[key] = npz[key]
                    except ValueError:
                        raise InputError(path, f"array {key!r} holds Python objects, which are not read (store text as a "
                                               "string array)") from None
        elif name.endswith(HDF5_SUFFIXES):
            with _open_hdf5(path) as handle:
                for key, dataset in _hdf5_datasets(handle, path).items():
                    if key != IMAGES_NAME:
                        columns[key] = np.asarray(dataset[()])
    for key, values in columns.items():
        if values.ndim != 1 or len(values) != n:
            raise InputError(path, f"array {key!r} has shape {values.shape}: per-object arrays beside '{IMAGES_NAME}' hold "
                                   f"one value per stamp, shape ({n},)")
    if not columns:
        return None
    return Table(columns, meta={"source_file": str(path)})


def import_to_stampset(
    array_path: str | os.PathLike,
    table: Table | None,
    out: str | os.PathLike,
    *,
    bands: Sequence[str],
    pixel_scale: float,
    flux_unit: str = "unknown",
    zero_points: dict[str, float] | None = None,
    psf_fwhm: dict[str, float] | None = None,
    survey: str = "",
    table_path: str | os.PathLike | None = None,
    nan_policy: str = "flag",
    array: np.ndarray | None = None,
    mapping: Any = None,
    command: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
) -> StampSet:
    """Turn an array of stamps plus a per-object table into a stamp set.

    Parameters
    ----------
    array_path : path-like
        ``.npy``, FITS cube, ``.npz`` or HDF5 file (:func:`load_stamp_array`), ``(N, H, W)`` or
        ``(N, B, H, W)``, in ``flux_unit``.
    table : astropy Table or None
        ``N`` rows, standard column names. None: the per-object arrays of an ``.npz`` or HDF5
        file (:func:`load_stamp_columns`), translated as a catalogue is
        (:func:`skysort.data.catalog.standardise_catalog`), else ids ``0..N-1`` and nothing
        else. A table given beside such arrays is refused: one of them would be dropped.
    bands : sequence of str
        Band names of the ``B`` image planes.
    pixel_scale : float or astropy Quantity
        Arcsec per pixel; a Quantity may be in any angle unit (per pixel or not).
    nan_policy : {"flag", "error"}
        NaN pixels are flagged ``NAN_PIXELS`` (default) or rejected with an error.
    array : ndarray, optional
        The stamps already loaded from ``array_path`` with :func:`load_stamp_array`.
    mapping : optional
        Column mapping of the file's per-object arrays (as for
        :func:`skysort.data.catalog.read_catalog`); None detects standard and common names.
    """
    if array is None:
        array = load_stamp_array(array_path)
    n, n_bands, height, width = array.shape
    columns = load_stamp_columns(array_path, n)
    if columns is not None:
        if table is not None:
            raise InputError(array_path, f"holds per-object arrays ({', '.join(columns.colnames)}) and a table was given "
                                         f"too ({table_path or 'table'}): give the columns in one of them")
        from .catalog import standardise_catalog

        table = standardise_catalog(columns, mapping=mapping, require_positions=False)
        table_path = array_path
    if len(bands) != n_bands:
        hint = ""
        if array.shape[-1] == len(bands) != 1:
            # Arrays from image libraries and TensorFlow put the bands last; transposing them
            # here would be a guess that the other axes are right too.
            hint = ("; the last axis matches the bands: if the array is (N, H, W, B), store it as (N, B, H, W) "
                    "(numpy.moveaxis(array, -1, 1))")
        raise InputError(array_path, f"stamps have {n_bands} band plane(s) but {len(bands)} band name(s) were given "
                                     f"({list(bands)}){hint}")
    try:
        pixel_scale = pixel_scale_arcsec(pixel_scale)
    except ValueError as exc:
        raise InputError("--pixel-scale", str(exc)) from None
    if table is None:
        table = Table({"id": np.arange(n, dtype=np.int64)})
    elif len(table) != n:
        raise InputError(table_path or "table", f"table has {len(table)} rows but the stamp array {Path(array_path).name} has {n} stamps")
    table = _storable_table(table.copy(copy_data=True), table_path or "table")
    if "label" in table.colnames:
        table["label"] = [str(v).strip().lower() for v in _filled(table["label"], "")]
    for option, values in (("zero_points", zero_points), ("psf_fwhm", psf_fwhm)):
        unknown = sorted(set(values or {}) - {str(b) for b in bands})
        if unknown:
            raise InputError(option, f"bands {unknown} are not among the stamps' bands {list(bands)}")
    try:
        meta = StampMeta.with_provenance(
            command=command, bands=tuple(bands), pixel_scale=pixel_scale, flux_unit=flux_unit,
            zero_points=dict(zero_points or {}), psf_fwhm=dict(psf_fwhm or {}), survey=survey,
            extra={"images": str(array_path), "table": str(table_path) if table_path else None},
        )
    except ValueError as exc:
        # Repeated or empty band names, numbers that are not numbers: the caller's input.
        raise InputError(array_path, f"cannot describe these stamps: {exc}") from None
    photometry_flags = _photometry_flags(table, bands)
    declared = {name: kind for name, kind in _column_kinds(table).items() if name not in CORE_COLUMNS or name == "id"}
    with StampSet.create(out, meta, (height, width), columns=declared) as writer:
        for block in iter_chunks(n, chunk):
            with np.errstate(over="ignore", invalid="ignore"):
                stamps = np.array(array[block], dtype=np.float32)  # a copy: the array may be a read-only memmap
            # Infinite pixels (or values beyond float32, which overflow to inf) are no measurement:
            # stored as NaN and flagged like NaN pixels.
            nan_pixels = ~np.isfinite(stamps)
            stamps[nan_pixels] = np.nan
            flags = photometry_flags[block].copy()
            if nan_pixels.any():
                if nan_policy == "error":
                    first = block.start + int(np.flatnonzero(nan_pixels.any(axis=(1, 2, 3)))[0])
                    raise InputError(array_path, f"stamp {first} has NaN pixels (use --nan flag to keep and flag them)")
                flags[nan_pixels.any(axis=(1, 2, 3))] |= np.uint32(Flags.NAN_PIXELS)
                flags[nan_pixels.all(axis=(2, 3)).any(axis=1)] |= np.uint32(Flags.MISSING_BAND)
            rows = table[block]
            columns = {name: rows[name] for name in rows.colnames}
            if "flags" in columns:
                flags |= _filled(columns["flags"], 0).astype(np.uint32)
            columns["flags"] = flags
            writer.append(stamps, columns)
            if progress:
                progress(block.stop - block.start)
    return StampSet.open(out)
