"""``skysort cutout`` and ``skysort predict --tiles`` cut every object the same stamp.

Both cut a tile's objects with :func:`skysort.data.cutout.cut_stamps`, but in other batches: the
cutout takes the whole catalogue (objects beyond the tile included) in chunks, the stream takes
the sources a tile owns in model batches. Each object's stamp must depend on its own position
alone, so the tests compare the two object by object (pixels with NaN where they are, the
offsets of the object from its stamp's centre pixel, the cutting flags) on small synthetic
tiles: NaN holes and masked borders, objects at the tile edges, positions exactly at half
pixels, a band on the reference band's grid, a band on a grid of its own, and a distorted (SIP)
tile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS

from skysort.data.flags import Flags
from skysort.inference.predictor import InputSpec

SCALE = 0.4  # arcsec per pixel
STAMP = 16
SHAPE = (72, 84)  # (ny, nx) of the reference band
#: The flags the cutting sets; the others (photometry, model inputs) are not its business.
CUT_FLAGS = int(Flags.EDGE | Flags.NAN_PIXELS | Flags.MISSING_BAND | Flags.SATURATED)


# ------------------------------------------------------------------------------------------
# Synthetic tiles and catalogue
# ------------------------------------------------------------------------------------------


def band_wcs(shape, shift=(0.0, 0.0), scale=SCALE, sip=False) -> WCS:
    """A TAN WCS centred on (150, 2) deg; ``sip`` adds a third-order SIP distortion of a few
    tenths of a pixel at the corners."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if sip else ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [shape[1] / 2 + 0.5 + shift[0], shape[0] / 2 + 0.5 + shift[1]]
    w.wcs.cd = [[-scale / 3600, 0], [0, scale / 3600]]
    if sip:
        from astropy.wcs import Sip

        a, b = np.zeros((4, 4)), np.zeros((4, 4))
        a[2, 0], a[0, 2], a[3, 0] = 2e-4, 1e-4, 1e-6
        b[1, 1], b[0, 2], b[0, 3] = 3e-4, -1e-4, 2e-6
        w.sip = Sip(a, b, None, None, w.wcs.crpix)
        w.wcs.set()
    return w


def masked(data: np.ndarray) -> np.ndarray:
    """``data`` with what survey tiles leave blank: a NaN hole (a masked star or bad column) and
    a masked border of NaN on two sides."""
    data = data.copy()
    data[30:36, 40:47] = np.nan
    data[:, :3] = np.nan
    data[-2:, :] = np.nan
    data[10:50, 60] = np.nan
    return data


def write_band(folder: Path, band: str, shape, wcs: WCS, rng, objects_xy) -> None:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    data = rng.normal(0.0, 1.0, shape)
    for x, y in objects_xy:
        data += 80.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    header = wcs.to_header(relax=True)
    header["FILTER"] = band
    header["BUNIT"] = "nanomaggy"
    fits.PrimaryHDU(masked(data).astype(np.float32), header).writeto(folder / f"tile-{band}.fits")


def reference_positions(shape) -> tuple[np.ndarray, np.ndarray]:
    """0-based reference pixels of objects where a cut can go one pixel astray: exactly at half
    pixels and whole pixels, next to the NaN hole, the masked border and the NaN column, at the
    tile's edges and corners (centres inside the image, so that the tile owns them), and in
    the open."""
    ny, nx = shape
    xs = [-0.49, -0.5 + 1e-9, 0.0, 0.5, 1.5, 2.5, 3.5, 4.0, 8.5, 9.5, 39.5, 40.5, 47.5, 52.5, 59.5, 60.5, 61.5,
          nx - 8.5, nx - 1.5, nx - 1.0, nx - 0.51]
    ys = [-0.49, 0.0, 0.5, 7.5, 8.5, 29.5, 30.5, 35.5, 36.5, 49.5, ny - 9.5, ny - 3.5, ny - 2.5, ny - 1.5, ny - 0.51]
    grid_x, grid_y = np.meshgrid(xs, ys)
    rng = np.random.default_rng(3)
    free_x = rng.uniform(-0.4, nx - 0.6, 60)
    free_y = rng.uniform(-0.4, ny - 0.6, 60)
    return np.concatenate([grid_x.ravel(), free_x]), np.concatenate([grid_y.ravel(), free_y])


def make_tile(folder: Path, bands: dict, *, beyond: int = 40) -> tuple[Path, WCS]:
    """One tile of ``bands`` (band -> dict of :func:`band_wcs` arguments and ``shape``), the
    reference band ``r`` on :data:`SHAPE`, and a Parquet catalogue of its objects (at
    :func:`reference_positions`) followed by ``beyond`` objects off the tile, near it and far.

    Returns the catalogue and the reference band's WCS.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tile = folder / "tile"
    tile.mkdir()
    rng = np.random.default_rng(0)
    ref_wcs = band_wcs(SHAPE, **{k: v for k, v in bands["r"].items() if k != "shape"})
    x, y = reference_positions(SHAPE)
    ra, dec = ref_wcs.all_pix2world(x, y, 0)
    # Near: 20 px beyond one side or the other, give or take 30 px (some land on the tile).
    sides = np.where(rng.random((beyond // 2, 2)) < 0.5, -20, np.array(SHAPE[::-1])[None, :] + 20)
    near = rng.uniform(-30, 30, (beyond // 2, 2)) + sides
    near_ra, near_dec = ref_wcs.all_pix2world(near[:, 0], near[:, 1], 0)
    far_ra = 150.0 + rng.uniform(-0.5, 0.5, beyond - beyond // 2)
    far_dec = 2.0 + rng.uniform(-0.5, 0.5, beyond - beyond // 2)
    all_ra = np.concatenate([ra, near_ra, far_ra])
    all_dec = np.concatenate([dec, near_dec, far_dec])
    for band, options in bands.items():
        shape = options.get("shape", SHAPE)
        w = band_wcs(shape, **{k: v for k, v in options.items() if k != "shape"})
        bx, by = w.all_world2pix(ra, dec, 0)
        write_band(tile, band, shape, w, rng, zip(bx, by))
    catalog = folder / "cat.parquet"
    pq.write_table(pa.table({"id": np.arange(len(all_ra), dtype=np.int64) + 500, "ra": all_ra, "dec": all_dec}), catalog)
    return catalog, ref_wcs


# ------------------------------------------------------------------------------------------
# The two paths
# ------------------------------------------------------------------------------------------


class RecordingPredictor:
    """A Predictor that keeps every image batch it is given and tells, for each row, where in
    them its stamp lies (output ``serial``)."""

    task = "test"

    def __init__(self, model_file: Path, bands):
        self.classes = ["a", "b"]
        self.name = "recorder"
        self.meta = {"created": "test"}
        self.model_file = Path(model_file)
        self.model_file.write_bytes(b"recorder")
        self.spec = InputSpec(image_bands=list(bands), stamp_size=(STAMP, STAMP), pixel_scale=SCALE)
        self.batches: list[np.ndarray] = []

    def to(self, device):
        return self

    @torch.inference_mode()
    def predict(self, inputs, *, images_available=True):
        images = np.array(inputs["image"], dtype=np.float32, copy=True)
        start = sum(len(b) for b in self.batches)
        self.batches.append(images)
        n = len(images)
        return {"probabilities": np.full((n, 2), 0.5, np.float32), "serial": np.arange(start, start + n, dtype=np.float64)}


def cut_by_cutout(folder: Path, catalog: Path, bands) -> dict[str, np.ndarray]:
    """``skysort cutout``: id -> stamps, cutting flags, offsets."""
    from skysort.data.catalog import read_catalog
    from skysort.data.ingest import cutout

    stamps = cutout(str(folder / "tile" / "tile-*.fits"), read_catalog(catalog), folder / "stamps.h5", size=STAMP,
                    bands=list(bands), warn=lambda *args: None)
    return {"id": np.asarray(stamps.column("id")), "stamps": stamps.read_images(),
            "flags": np.asarray(stamps.column("flags")).astype(np.int64) & CUT_FLAGS,
            "offset_x": np.asarray(stamps.column("offset_x")), "offset_y": np.asarray(stamps.column("offset_y"))}


def cut_by_stream(folder: Path, catalog: Path, bands, monkeypatch, batch_size: int = 13) -> dict[str, np.ndarray]:
    """``skysort predict --catalog --tiles``: id -> the stamps the model was given, the cutting
    flags of the output and the offsets of the positions the batches were cut at."""
    import skysort.inference.stream as stream

    cut = stream.cut_stamps
    positions: list[tuple[np.ndarray, np.ndarray]] = []

    def recording_cut(images, x, y, **kwargs):
        positions.append((np.array(x, copy=True), np.array(y, copy=True)))
        return cut(images, x, y, **kwargs)

    monkeypatch.setattr(stream, "cut_stamps", recording_cut)
    predictor = RecordingPredictor(folder / "recorder.pt", bands)
    out = folder / "streamed"
    stream.predict_catalog("recorder", catalog, out, stream.RunOptions(tiles=str(folder / "tile" / "tile-*.fits"),
                                                                       batch_size=batch_size, workers=0), predictor=predictor)
    parts = [pq.read_table(path).to_pandas() for path in sorted(out.glob("*.parquet"))]
    table = pd.concat(parts).sort_values("catalog_row")
    table = table[table["images_used"].to_numpy()]
    # Batches cut from the tile are the predictor's last calls (the first is the run's probe).
    recorded = np.concatenate(predictor.batches)
    cut_rows = sum(len(x) for x, _ in positions)
    first = len(recorded) - cut_rows
    serial = table["serial"].to_numpy().astype(np.int64)
    assert len(table) == cut_rows and np.all(serial >= first)
    x = np.concatenate([p[0] for p in positions])[serial - first]
    y = np.concatenate([p[1] for p in positions])[serial - first]
    return {"id": table["id"].to_numpy(), "stamps": recorded[serial],
            "flags": table["flags"].to_numpy().astype(np.int64) & CUT_FLAGS, "offset_x": (x - np.rint(x)).astype(np.float32), "offset_y": (y - np.rint(y)).astype(np.float32)}


def assert_same_cuts(cutout: dict[str, np.ndarray], streamed: dict[str, np.ndarray], min_objects: int) -> None:
    """Every streamed object has the stamp, flags and offsets of its stamp-set row."""
    row = {int(i): k for k, i in enumerate(cutout["id"])}
    assert len(streamed["id"]) >= min_objects
    problems = []
    for k, object_id in enumerate(streamed["id"]):
        j = row[int(object_id)]
        a, b = cutout["stamps"][j], streamed["stamps"][k]
        bands = [band for band in range(a.shape[0]) if not np.array_equal(a[band], b[band], equal_nan=True)]
        if bands or cutout["flags"][j] != streamed["flags"][k] or (cutout["offset_x"][j], cutout["offset_y"][j]) != (
                streamed["offset_x"][k], streamed["offset_y"][k]):
            problems.append(f"id {object_id}: bands {bands} differ, flags {cutout['flags'][j]} vs {streamed['flags'][k]}, "
                            f"offsets ({cutout['offset_x'][j]}, {cutout['offset_y'][j]}) vs "
                            f"({streamed['offset_x'][k]}, {streamed['offset_y'][k]})")
    assert not problems, f"{len(problems)} of {len(streamed['id'])} objects cut differently:\n" + "\n".join(problems[:10])


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bands", [
    pytest.param({"r": {}}, id="one-band"),
    pytest.param({"g": {}, "r": {}}, id="band-on-the-reference-grid"),
    pytest.param({"g": {}, "r": {}, "i": {"shift": (1.3, -0.7), "scale": 0.37, "shape": (78, 90)}},
                 id="bands-on-the-reference-and-on-another-grid"),
])
def test_cutout_and_stream_cut_the_same_stamps_next_to_nan_and_edges(tmp_path, monkeypatch, bands):
    # Before, a band on the reference band's grid was cut pixel for pixel by the stream but
    # resampled by a cubic spline in cutout, which blanks a pixel more around NaN and the
    # image's edge (and flags EDGE a pixel earlier): one object, two stamps.
    catalog, _ = make_tile(tmp_path, bands)
    cutout = cut_by_cutout(tmp_path, catalog, bands)
    streamed = cut_by_stream(tmp_path, catalog, bands, monkeypatch)
    assert_same_cuts(cutout, streamed, min_objects=len(reference_positions(SHAPE)[0]))
    flags = streamed["flags"]
    assert (flags & int(Flags.EDGE)).any() and (flags & int(Flags.NAN_PIXELS)).any() and not (flags & int(Flags.EDGE)).all()
    # Objects exactly at half pixels are among them, and keep the offsets the stamp set records.
    assert np.any(np.abs(np.abs(streamed["offset_x"]) - 0.5) < 1e-6)


@pytest.mark.parametrize("bands", [
    pytest.param({"r": {"sip": True}}, id="one-band"),
    pytest.param({"g": {"sip": True}, "r": {"sip": True}, "i": {"shift": (1.3, -0.7), "sip": True}},
                 id="bands-on-the-reference-and-on-another-grid"),
])
def test_half_pixel_positions_on_a_distorted_tile_round_to_the_same_pixel(tmp_path, monkeypatch, bands):
    # Before, a SIP tile's pixel positions were found by an iteration run until the slowest of
    # the positions converted together converged: cutout converts the whole catalogue (objects
    # far beyond the tile included), the stream only a tile's sources, so the last digits of a
    # position differed and, at a half pixel, so did its nearest pixel: a stamp one pixel apart.
    catalog, _ = make_tile(tmp_path, bands, beyond=60)
    cutout = cut_by_cutout(tmp_path, catalog, bands)
    streamed = cut_by_stream(tmp_path, catalog, bands, monkeypatch, batch_size=7)
    assert_same_cuts(cutout, streamed, min_objects=len(reference_positions(SHAPE)[0]))


def test_an_objects_stamp_does_not_depend_on_the_objects_cut_with_it(tmp_path):
    """cut_stamps of a batch gives each object what it gives the object alone, on a distorted
    reference band with a band on its grid and one resampled from a distorted grid of its own."""
    from skysort.data.cutout import cut_stamps
    from skysort.data.images import read_band_images

    bands = {"g": {"sip": True}, "r": {"sip": True}, "i": {"shift": (1.3, -0.7), "scale": 0.37, "sip": True}}
    make_tile(tmp_path, bands)
    images = read_band_images(sorted((tmp_path / "tile").glob("tile-*.fits")), list(bands))
    x, y = reference_positions(SHAPE)
    x, y = np.r_[x, 5000.0, -3000.0], np.r_[y, 40.0, 9000.0]  # two far beyond the tile, in the same batch
    together, flags = cut_stamps(images, x, y, size=STAMP, reference=1)
    for k in range(len(x) - 2):
        alone, alone_flags = cut_stamps(images, x[k : k + 1], y[k : k + 1], size=STAMP, reference=1)
        assert np.array_equal(alone[0], together[k], equal_nan=True), f"object {k} at ({x[k]}, {y[k]})"
        assert alone_flags[0] == flags[k]


def test_a_band_on_the_reference_grid_is_cut_pixel_for_pixel(tmp_path):
    """Its stamp holds its own pixels (NaN exactly where the image has them), not a resampling."""
    from skysort.data.cutout import cut_integer, cut_stamps
    from skysort.data.images import read_band_images

    make_tile(tmp_path, {"g": {}, "r": {}})
    images = read_band_images(sorted((tmp_path / "tile").glob("tile-*.fits")), ["g", "r"])
    x, y = reference_positions(SHAPE)
    stamps, flags = cut_stamps(images, x, y, size=STAMP, reference=1)
    expected, edge = cut_integer(images[0].data, x, y, STAMP)
    assert np.array_equal(stamps[:, 0], expected, equal_nan=True)
    assert np.array_equal((flags & Flags.EDGE) > 0, edge)


def test_stamps_sampled_together_match_stamps_sampled_one_by_one(monkeypatch):
    """resample_stamps (one prefilter of the whole image) gives what resample_stamp gives each
    stamp from its own window, up to that window's edge: the same NaN pixels and edge flags
    (NaN pixels in the image, stamps across its edges) and values within 1e-3 of the image's
    spread; an image too large to prefilter whole is sampled stamp by stamp, exactly."""
    from skysort.data import cutout

    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1.0, (300, 400)).astype(np.float32)
    data[150:153, 200:202] = np.nan
    size = 21
    centres = np.array([[200.5, 150.2], [3.0, 100.0], [398.7, 299.1], [50.3, 60.8], [201.0, 140.0], [-15.0, 20.0]])
    angle, stretch = 0.3, 1.27
    jacobian = stretch * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    jacobians = np.broadcast_to(jacobian, (len(centres), 2, 2)).copy()
    offsets = np.arange(size) - size // 2 + 0.25
    grid = np.stack(np.meshgrid(offsets, offsets))
    grids = np.broadcast_to(grid, (len(centres), 2, size, size))
    together, edge = cutout.resample_stamps(data, centres, jacobians, grids)
    one_by_one = [cutout.resample_stamp(data, tuple(c), jacobian, grid) for c in centres]
    expected = np.stack([stamp for stamp, _ in one_by_one])
    assert np.array_equal(np.isnan(together), np.isnan(expected))
    assert list(edge) == [outside for _, outside in one_by_one] == [False, True, True, False, False, True]
    assert np.isnan(together[0]).any() and np.isnan(together[4]).any()  # beside the NaN pixels
    np.testing.assert_allclose(together, expected, atol=1e-3 * float(np.nanstd(data)), equal_nan=True)
    monkeypatch.setattr(cutout, "WHOLE_PREFILTER_PIXELS", 0)
    alone, alone_edge = cutout.resample_stamps(data, centres, jacobians, grids)
    assert np.array_equal(alone, expected, equal_nan=True) and np.array_equal(alone_edge, edge)


def test_pixels_changed_in_place_are_resampled_as_they_are_now():
    """The whole-image prefilter is kept for the next stamps of the same image, but not once
    its pixels have changed in place (a Python API caller subtracting a sky, say)."""
    from skysort.data import cutout

    data = np.random.default_rng(5).normal(0.0, 1.0, (120, 150)).astype(np.float32)
    centres = np.array([[60.3, 70.6]])
    jacobians = np.array([[[1.1, 0.05], [-0.05, 1.1]]])
    offsets = np.arange(9) - 4.0
    grids = np.stack(np.meshgrid(offsets, offsets))[None]
    before, _ = cutout.resample_stamps(data, centres, jacobians, grids)
    data += 10.0
    after, _ = cutout.resample_stamps(data, centres, jacobians, grids)
    fresh, _ = cutout.resample_stamps(data.copy(), centres, jacobians, grids)
    np.testing.assert_allclose(after, fresh, rtol=1e-6)
    np.testing.assert_allclose(after - before, 10.0 * abs(np.linalg.det(jacobians[0])), rtol=1e-4)
