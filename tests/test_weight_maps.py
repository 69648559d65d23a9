"""Weight, inverse-variance, variance and rms maps: pixels without data are NaN in the image as
read, so that stamps there are flagged rather than classified from empty pixels, in
``skysort cutout`` and in the tiles streamed by ``skysort predict --tiles`` alike.

Before, these maps were not read: a zero-weight region, which pipelines fill with 0 or garbage,
was cut as real sky (no flag), and its garbage entered the sky background estimate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from skysort.cli import main
from skysort.data.flags import Flags
from skysort.data.images import read_band_image, read_band_images
from skysort.data.ingest import cutout
from skysort.errors import InputError

SCALE = 0.4  # arcsec per pixel
SHAPE = (80, 100)  # (ny, nx) pixels
STAMP = 16
#: Columns x < DEAD hold no data (weight 0): the pipeline filled them with a constant.
DEAD = 30
GARBAGE = 5000.0

#: Objects (x, y), 0-based pixels: wholly in the dead strip, across its border, well clear of it.
DEAD_XY = [(10.0, 20.0), (12.0, 55.0)]
BORDER_XY = [(30.0, 40.0)]
CLEAN_XY = [(55.0, 20.0), (70.0, 40.0), (85.0, 60.0), (60.0, 60.0)]
ALL_XY = DEAD_XY + BORDER_XY + CLEAN_XY


def tile_wcs(ra0: float = 150.0, dec0: float = 2.0) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [SHAPE[1] / 2 + 0.5, SHAPE[0] / 2 + 0.5]
    w.wcs.cd = [[-SCALE / 3600, 0], [0, SCALE / 3600]]
    return w


def header(band: str = "r", ra0: float = 150.0) -> fits.Header:
    h = tile_wcs(ra0).to_header()
    h["FILTER"] = band
    h["BUNIT"] = "nanomaggy"
    return h


def science(seed: int = 0, garbage: float | None = GARBAGE) -> np.ndarray:
    """Noise plus Gaussian sources at ALL_XY; the dead strip filled with ``garbage``."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, 1.0, SHAPE).astype(np.float32)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    for x, y in ALL_XY:
        data += (200.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))).astype(np.float32)
    if garbage is not None:
        data[:, :DEAD] = garbage
    return data


def weight(kind: str = "weight") -> np.ndarray:
    """A map of the given kind with no data in the dead strip, written as pipelines write it."""
    if kind == "weight":
        values = np.full(SHAPE, 4.0, np.float32)
        values[:, :DEAD] = 0.0
    else:
        values = np.full(SHAPE, 0.25 if kind == "variance" else 0.5, np.float32)
        values[:, :DEAD] = np.inf
    return values


def write_des_tile(path: Path, band: str = "r", seed: int = 0) -> Path:
    """A DES-like coadd: empty primary, SCI, MSK (bits set everywhere, not to be read), WGT."""
    h = header(band)
    mask = np.full(SHAPE, 0x7, np.int16)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(science(seed), h, name="SCI"), fits.ImageHDU(mask, h, name="MSK"),
                  fits.ImageHDU(weight(), h, name="WGT")]).writeto(path)
    return path


def write_catalog(path: Path, wcs: WCS | None = None) -> Path:
    wcs = wcs or tile_wcs()
    x, y = np.array(ALL_XY).T
    ra, dec = wcs.all_pix2world(x, y, 0)
    Table({"id": np.arange(len(x)), "ra": ra, "dec": dec}).write(path, overwrite=True)
    return path


def groups(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_dead, n_border = len(DEAD_XY), len(BORDER_XY)
    return flags[:n_dead], flags[n_dead : n_dead + n_border], flags[n_dead + n_border :]


def cut(images, out: Path, **options):
    return cutout(images, write_catalog(out.parent / f"{out.stem}-cat.csv"), out, size=STAMP, background="none", **options)


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------


def test_a_weight_hdu_of_the_same_file_makes_its_zero_weight_pixels_nan(tmp_path):
    image = read_band_image(write_des_tile(tmp_path / "des_r.fits"))
    assert np.isnan(image.data[:, :DEAD]).all() and np.isfinite(image.data[:, DEAD:]).all()
    assert image.n_nan == SHAPE[0] * DEAD
    assert image.weight_map == {"file": str(tmp_path / "des_r.fits"), "hdu": "WGT", "kind": "weight",
                                "no_data_pixels": SHAPE[0] * DEAD}
    # The MSK plane (bits set on every pixel) is not read: pixels with weight are kept.
    assert image.data[40, 70] == pytest.approx(science()[40, 70])


@pytest.mark.parametrize("name, kind, no_data", [
    ("WGT", "weight", 0.0), ("WEIGHT", "weight", 0.0), ("WHT", "weight", 0.0), ("IVAR", "weight", 0.0),
    ("INVVAR", "weight", 0.0), ("VARIANCE", "variance", np.inf), ("variance", "variance", np.inf),
    ("VARIANCE", "variance", np.nan), ("VARIANCE", "variance", 0.0), ("VAR", "variance", -1.0),
    ("RMS", "rms", np.inf), ("ERR", "rms", np.nan), ("SIGMA", "rms", 0.0)])
def test_weight_variance_and_rms_conventions(tmp_path, name, kind, no_data):
    """Weight and inverse variance: 0 = no data; variance and rms: infinite, NaN or <= 0 = no data
    (HSC and LSST write IMAGE, MASK, VARIANCE, the latter in lower case)."""
    values = np.full(SHAPE, 0.3, np.float32)
    values[:, :DEAD] = no_data
    h = header()
    weight_hdu = fits.ImageHDU(values, h)
    weight_hdu.header["EXTNAME"] = name  # as written, lower case included (astropy's name= would capitalise it)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(science(), h, name="IMAGE"),
                  fits.ImageHDU(np.zeros(SHAPE, np.int32), h, name="MASK"), weight_hdu]).writeto(tmp_path / "calexp.fits")
    image = read_band_image(tmp_path / "calexp.fits")
    assert image.weight_map["kind"] == kind and image.weight_map["hdu"] == name
    assert np.isnan(image.data[:, :DEAD]).all() and np.isfinite(image.data[:, DEAD:]).all()


def test_weight_hdus_of_another_shape_are_not_weight_maps_of_these_pixels(tmp_path):
    h = header()
    fits.HDUList([fits.PrimaryHDU(science(), h), fits.ImageHDU(np.zeros((10, 10), np.float32), name="WGT")]
                 ).writeto(tmp_path / "t.fits")
    image = read_band_image(tmp_path / "t.fits")
    assert image.weight_map is None and image.n_nan == 0


def test_several_weight_hdus_are_not_guessed_between(tmp_path):
    """JWST's i2d files hold ERR and WHT: which one to read is asked for, not guessed."""
    h = header()
    err = np.full(SHAPE, 0.5, np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(science(), h, name="SCI"), fits.ImageHDU(err, h, name="ERR"),
                  fits.ImageHDU(weight(), h, name="WHT")]).writeto(tmp_path / "i2d.fits")
    with pytest.raises(InputError, match=r"i2d.fits: holds several weight-like HDUs of the image's shape \(ERR, WHT\)"):
        read_band_image(tmp_path / "i2d.fits")
    chosen = read_band_image(tmp_path / "i2d.fits", weight_hdu="WHT")
    assert chosen.weight_map["hdu"] == "WHT" and np.isnan(chosen.data[:, :DEAD]).all()
    assert read_band_image(tmp_path / "i2d.fits", weight_hdu="ERR").n_nan == 0
    unweighted = read_band_image(tmp_path / "i2d.fits", weight_hdu="none")
    assert unweighted.weight_map is None and unweighted.n_nan == 0
    with pytest.raises(InputError, match="has no HDU named 'WGT'"):
        read_band_image(tmp_path / "i2d.fits", weight_hdu="WGT")


def test_a_separate_weight_file_is_read_when_given(tmp_path):
    fits.writeto(tmp_path / "KIDS_r_SDSS.fits", science(), header())
    fits.writeto(tmp_path / "KIDS_r_SDSS.weight.fits", weight(), header())
    assert read_band_image(tmp_path / "KIDS_r_SDSS.fits").weight_map is None  # only when given
    image = read_band_image(tmp_path / "KIDS_r_SDSS.fits", weights=tmp_path / "KIDS_r_SDSS.weight.fits")
    assert np.isnan(image.data[:, :DEAD]).all() and np.isfinite(image.data[:, DEAD:]).all()
    assert image.weight_map == {"file": str(tmp_path / "KIDS_r_SDSS.weight.fits"), "hdu": 0, "kind": "weight",
                                "no_data_pixels": SHAPE[0] * DEAD}


def test_the_sky_background_ignores_pixels_without_data(tmp_path):
    """SEP's mesh estimate took the garbage strip for sky: the background of the good pixels
    came out far from their true level (0)."""
    image = read_band_images([write_des_tile(tmp_path / "des_r.fits")], background="sep")[0]
    assert abs(image.background["global_level"]) < 1.0
    assert np.nanmedian(image.data[:, DEAD + 8 :]) == pytest.approx(0.0, abs=0.5)


# ------------------------------------------------------------------------------------------
# Cutting: skysort cutout
# ------------------------------------------------------------------------------------------


def test_cutout_flags_stamps_without_data_and_keeps_the_others(tmp_path):
    weighted = cut(str(write_des_tile(tmp_path / "des_r.fits")), tmp_path / "w.h5")
    fits.writeto(tmp_path / "plain_r.fits", science(), header())
    plain = cut(str(tmp_path / "plain_r.fits"), tmp_path / "p.h5")
    flags = np.asarray(weighted.table["flags"])
    dead, border, clean = groups(flags)
    assert np.all(dead & Flags.NAN_PIXELS) and np.all(dead & Flags.MISSING_BAND)
    assert np.all(border & Flags.NAN_PIXELS) and not np.any(border & Flags.MISSING_BAND)
    assert np.all(clean == 0)
    stamps, reference = weighted.images(), plain.images()
    n_clean = len(CLEAN_XY)
    np.testing.assert_array_equal(stamps[-n_clean:], reference[-n_clean:])
    assert np.isnan(stamps[: len(DEAD_XY)]).all()
    # Without the weight map the garbage was cut as sky, unflagged.
    assert np.all(groups(np.asarray(plain.table["flags"]))[0] == 0)
    assert weighted.meta.extra["weight_maps"] == {"r": {"file": str(tmp_path / "des_r.fits"), "hdu": "WGT", "kind": "weight",
                                                        "no_data_pixels": SHAPE[0] * DEAD}}
    assert plain.meta.extra["weight_maps"] == {"r": None}


def test_cutout_matches_separate_weight_files_to_bands_by_name(tmp_path):
    """KiDS names: X_g_SDSS.fits with X_g_SDSS.weight.fits; a pattern matching both the images
    and the weights ('X_*') means the images. The g weight map has no dead strip."""
    fits.writeto(tmp_path / "X_g_SDSS.fits", science(seed=1, garbage=None), header("g"))
    fits.writeto(tmp_path / "X_g_SDSS.weight.fits", np.ones(SHAPE, np.float32), header("g"))
    fits.writeto(tmp_path / "X_r_SDSS.fits", science(), header("r"))
    fits.writeto(tmp_path / "X_r_SDSS.weight.fits", weight(), header("r"))
    stamps = cut(str(tmp_path / "X_*.fits"), tmp_path / "s.h5", weights=str(tmp_path / "X_*.weight.fits"))
    assert stamps.meta.bands == ("g", "r")
    images = stamps.images()
    assert np.isfinite(images[:, 0]).all() and np.isnan(images[: len(DEAD_XY), 1]).all()
    assert np.all(groups(np.asarray(stamps.table["flags"]))[0] & Flags.MISSING_BAND)
    weight_maps = stamps.meta.extra["weight_maps"]
    assert weight_maps["g"]["file"] == str(tmp_path / "X_g_SDSS.weight.fits") and weight_maps["g"]["no_data_pixels"] == 0
    assert weight_maps["r"]["file"] == str(tmp_path / "X_r_SDSS.weight.fits")


def test_cutout_refuses_an_image_without_its_weight_file(tmp_path):
    fits.writeto(tmp_path / "X_g.fits", science(seed=1), header("g"))
    fits.writeto(tmp_path / "X_r.fits", science(), header("r"))
    fits.writeto(tmp_path / "X_r.weight.fits", weight(), header("r"))
    with pytest.raises(InputError, match=r"X_g.fits: no weight file among the 1 given matches this image's name"):
        cut(str(tmp_path / "X_?.fits"), tmp_path / "s.h5", weights=str(tmp_path / "*.weight.fits"))
    assert not (tmp_path / "s.h5").exists()


# ------------------------------------------------------------------------------------------
# Bad weight maps: one error line naming the file, exit code 2, nothing written
# ------------------------------------------------------------------------------------------


def _bad_weight(tmp_path: Path, problem: str) -> Path:
    path = tmp_path / "tile_r.weight.fits"
    if problem == "shape":
        fits.writeto(path, np.ones((40, 50), np.float32), header())
    elif problem == "all zero":
        fits.writeto(path, np.zeros(SHAPE, np.float32), header())
    elif problem == "unreadable":
        fits.writeto(path, weight(), header())
        path.write_bytes(path.read_bytes()[:4000])
    elif problem == "another tile":
        fits.writeto(path, weight(), header(ra0=150.1))
    return path


BAD_WEIGHTS = {"shape": "weight map of 50x40 pixels for the image tile_r.fits of 100x80 pixels",
               "all zero": "marks every pixel of tile_r.fits as without data",
               "unreadable": "not a readable FITS file",
               "another tile": "weight map lies on other pixels than its image tile_r.fits"}


@pytest.mark.parametrize("problem", sorted(BAD_WEIGHTS))
def test_cutout_refuses_a_bad_weight_file_in_one_line(tmp_path, capsys, problem):
    fits.writeto(tmp_path / "tile_r.fits", science(), header())
    weight_path = _bad_weight(tmp_path, problem)
    with pytest.raises(InputError) as error:
        read_band_image(tmp_path / "tile_r.fits", weights=weight_path)
    assert error.value.where == str(weight_path) and BAD_WEIGHTS[problem] in error.value.problem
    out = tmp_path / "s.h5"
    code = main(["cutout", "--images", str(tmp_path / "tile_r.fits"), "--weights", str(weight_path),
                 "--catalog", str(write_catalog(tmp_path / "cat.csv")), "--out", str(out), "--size", str(STAMP), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"skysort: error: {weight_path}: ") and BAD_WEIGHTS[problem] in err
    assert not out.exists()


def test_a_weight_hdu_that_is_all_zero_is_refused(tmp_path):
    h = header()
    fits.HDUList([fits.PrimaryHDU(science(), h), fits.ImageHDU(np.zeros(SHAPE, np.float32), h, name="WGT")]
                 ).writeto(tmp_path / "t_r.fits")
    with pytest.raises(InputError, match=r"t_r.fits: its weight map \(HDU WGT\) marks every pixel of t_r.fits as without data"):
        read_band_image(tmp_path / "t_r.fits")


# ------------------------------------------------------------------------------------------
# The streamed path: skysort predict --tiles
# ------------------------------------------------------------------------------------------


class MeanPredictor:
    """A Predictor of one r stamp: class probabilities from the stamp's mean (NaN read as 0)."""

    task = "test"

    def __init__(self, model_file: Path):
        from skysort.inference.predictor import InputSpec

        self.classes = ["star", "galaxy", "qso"]
        self.name = "mean"
        self.meta = {"created": "test"}
        self.model_file = Path(model_file)
        self.spec = InputSpec(image_bands=["r"], stamp_size=(STAMP, STAMP), pixel_scale=SCALE, photometry_bands=[])

    def to(self, device):
        return self

    def predict(self, inputs, *, images_available=True):
        level = np.nan_to_num(np.asarray(inputs["image"], np.float64)).mean(axis=(1, 2, 3)) / 100.0
        logits = np.stack([level, -level, np.zeros_like(level)], axis=1)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return {"probabilities": (p / p.sum(axis=1, keepdims=True)).astype(np.float32)}


def stream(tmp_path: Path, tiles: str, name: str, **options):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from skysort.inference.stream import RunOptions, predict_catalog

    model = tmp_path / "mean.pt"
    model.write_bytes(b"mean")
    catalog = tmp_path / "cat.parquet"
    if not catalog.exists():
        x, y = np.array(ALL_XY).T
        ra, dec = tile_wcs().all_pix2world(x, y, 0)
        pq.write_table(pa.table({"id": np.arange(len(x)), "ra": ra, "dec": dec}), catalog)
    folder = tmp_path / name
    manifest = predict_catalog("mean", catalog, folder, RunOptions(tiles=tiles, device="cpu", background="none", **options),
                               predictor=MeanPredictor(model))
    assert manifest.complete
    parts = [folder / unit["part"] for unit in manifest.units]
    table = pa.concat_tables([pq.read_table(p).replace_schema_metadata(None) for p in parts]).to_pandas()
    return manifest, parts, table.sort_values("catalog_row").reset_index(drop=True)


@pytest.mark.parametrize("layout", ["hdu", "file"])
def test_streamed_tiles_flag_what_cutout_flags(tmp_path, layout):
    """The weight HDU of a DES-like tile, or a SWarp weight file given with --weights: the
    stream flags the stamps without data as cutout does, and classifies the others as from an
    image without a weight map."""
    if layout == "hdu":
        tile = write_des_tile(tmp_path / "tile-r.fits")
        options = {}
    else:
        tile = tmp_path / "tile-r.fits"
        fits.writeto(tile, science(), header())
        fits.writeto(tmp_path / "tile-r.weight.fits", weight(), header())
        options = {"weights": str(tmp_path / "tile-r.weight.fits")}
    manifest, parts, table = stream(tmp_path, str(tmp_path / "tile-r*.fits"), "out", **options)
    stamps = cut(str(tile), tmp_path / "s.h5", **options)
    bits = int(Flags.NAN_PIXELS | Flags.MISSING_BAND | Flags.EDGE)
    cut_flags = np.asarray(stamps.table["flags"]).astype(np.int64) & bits
    np.testing.assert_array_equal(table["flags"].to_numpy().astype(np.int64) & bits, cut_flags)
    dead, border, clean = groups(table["flags"].to_numpy())
    assert np.all(dead & Flags.MISSING_BAND) and np.all(border & Flags.NAN_PIXELS) and np.all(clean == 0)

    plain_folder = tmp_path / "plain"
    plain_folder.mkdir()
    fits.writeto(plain_folder / "tile-r.fits", science(), header())
    _, _, plain = stream(tmp_path, str(plain_folder / "tile-r.fits"), "plain-out", weight_hdu="none")
    n_clean = len(CLEAN_XY)
    np.testing.assert_array_equal(table["p_star"].to_numpy()[-n_clean:], plain["p_star"].to_numpy()[-n_clean:])
    assert np.all(groups(plain["flags"].to_numpy())[0] == 0)  # the garbage, unweighted: no flag

    expected = {"file": str(tile if layout == "hdu" else tmp_path / "tile-r.weight.fits"), "hdu": "WGT" if layout == "hdu" else 0,
                "kind": "weight", "no_data_pixels": SHAPE[0] * DEAD}
    import pyarrow.parquet as pq

    assert json.loads(pq.read_schema(parts[0]).metadata[b"skysort"])["weight_maps"] == {"r": expected}
    recorded = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert recorded["tiles"][0]["weights"] == ({} if layout == "hdu" else {"r": str(tmp_path / "tile-r.weight.fits")})


def _tiny_blend_model(path: Path) -> Path:
    import torch

    from skysort.models.blend import BlendNet
    from skysort.models.checkpoint import save_model_file

    torch.manual_seed(0)
    net = BlendNet(widths=(4, 8), convs_per_stage=1, hidden=8, padding=0)
    meta = {"task": "blend", "architecture": "BlendNet", "architecture_config": net.config, "classes": ["isolated", "blended"],
            "image_bands": ["r"], "pixel_scale": SCALE, "stamp_size": [STAMP, STAMP]}
    return save_model_file(path, net.state_dict(), meta, command="test")


@pytest.mark.parametrize("problem", ["shape", "another tile", "unreadable", "missing"])
def test_predict_refuses_bad_weight_files_before_writing_anything(tmp_path, capsys, problem):
    import pyarrow as pa
    import pyarrow.parquet as pq

    fits.writeto(tmp_path / "tile_r.fits", science(), header())
    weight_path = _bad_weight(tmp_path, problem) if problem != "missing" else tmp_path / "tile_r.wei*.fits"
    x, y = np.array(ALL_XY).T
    ra, dec = tile_wcs().all_pix2world(x, y, 0)
    pq.write_table(pa.table({"id": np.arange(len(x)), "ra": ra, "dec": dec}), tmp_path / "cat.parquet")
    out = tmp_path / "out"
    code = main(["predict", "--model", str(_tiny_blend_model(tmp_path / "m.pt")), "--catalog", str(tmp_path / "cat.parquet"),
                 "--tiles", str(tmp_path / "tile_r.fits"), "--weights", str(weight_path), "--out", f"{out}/", "--quiet",
                 "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    if problem == "missing":
        assert err == f"skysort: error: {weight_path}: no weight file matches this path or pattern"
    else:
        assert err.startswith(f"skysort: error: {weight_path}: ") and BAD_WEIGHTS[problem] in err
    assert not out.exists()


def test_weight_files_are_matched_to_images_by_name():
    from skysort.data.images import match_weight_files

    kids = [Path("d/KIDS_1_r_sci.fits"), Path("d/KIDS_1_g_sci.fits")]
    kids_weights = [Path("d/KIDS_1_g_wei.fits"), Path("d/KIDS_1_r_wei.fits"), Path("d/KIDS_1_i_wei.fits")]
    assert match_weight_files(kids, kids_weights) == [kids_weights[1], kids_weights[0]]
    legacy = [Path(f"ls/legacysurvey-0001m002-image-{b}.fits.fz") for b in "gr"]
    legacy_weights = [Path(f"ls/legacysurvey-0001m002-invvar-{b}.fits.fz") for b in "rg"]
    assert match_weight_files(legacy, legacy_weights) == legacy_weights[::-1]
    swarp = [Path("a/coadd.fits"), Path("b/coadd.fits")]
    swarp_weights = [Path("b/coadd.weight.fits"), Path("a/coadd.weight.fits")]
    assert match_weight_files(swarp, swarp_weights) == swarp_weights[::-1]  # the one beside its image
    assert match_weight_files([Path("sci/t_r.fits")], [Path("wht/t_r.fits"), Path("wht/t_g.fits")]) == [Path("wht/t_r.fits")]
    with pytest.raises(InputError, match=r"t_r.fits: several weight files match this image"):
        match_weight_files([Path("sci/t_r.fits")], [Path("w1/t_r.fits"), Path("w2/t_r.weight.fits")])
    # A pattern matching the images too: an image is not its own weight map.
    assert match_weight_files(kids, kids + kids_weights) == [kids_weights[1], kids_weights[0]]


def test_predict_refuses_a_tile_without_its_weight_file_before_writing_anything(tmp_path):
    from skysort.inference.stream import RunOptions, predict_catalog

    for folder, ra0 in (("t00", 150.0), ("t01", 150.01)):
        (tmp_path / folder).mkdir()
        fits.writeto(tmp_path / folder / "tile-r.fits", science(), header(ra0=ra0))
    fits.writeto(tmp_path / "t00" / "tile-r.weight.fits", weight(), header())
    write_catalog(tmp_path / "cat.csv")
    (tmp_path / "mean.pt").write_bytes(b"mean")
    options = RunOptions(tiles=str(tmp_path / "t0*" / "tile-r*.fits"), weights=str(tmp_path / "t0*" / "*.weight.fits"),
                         device="cpu")
    with pytest.raises(InputError, match=r"t01/tile-r.fits: no weight file among the 1 given matches this image's name"):
        predict_catalog("mean", tmp_path / "cat.csv", tmp_path / "out", options, predictor=MeanPredictor(tmp_path / "mean.pt"))
    assert not (tmp_path / "out").exists()



def test_predict_refuses_weight_hdu_beside_weight_files_before_writing_anything(tmp_path):
    """--weight-hdu names an extension of the tile files, which --weights replaces: the stream
    refuses both, as cutout does, rather than reading one and ignoring the other."""
    from skysort.inference.stream import RunOptions, predict_catalog

    fits.writeto(tmp_path / "tile-r.fits", science(), header())
    fits.writeto(tmp_path / "tile-r.weight.fits", weight(), header())
    write_catalog(tmp_path / "cat.csv")
    (tmp_path / "mean.pt").write_bytes(b"mean")
    options = RunOptions(tiles=str(tmp_path / "tile-r.fits"), weights=str(tmp_path / "tile-r.weight.fits"), weight_hdu="WGT",
                         device="cpu")
    with pytest.raises(InputError, match="--weight-hdu: names an extension of the images' own files, which --weights replaces"):
        predict_catalog("mean", tmp_path / "cat.csv", tmp_path / "out", options, predictor=MeanPredictor(tmp_path / "mean.pt"))
    assert not (tmp_path / "out").exists()

def test_the_command_line_asks_which_weight_hdu_when_a_file_holds_several(tmp_path, capsys):
    h = header()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(science(), h, name="SCI"),
                  fits.ImageHDU(np.full(SHAPE, 0.5, np.float32), h, name="ERR"),
                  fits.ImageHDU(weight(), h, name="WHT")]).writeto(tmp_path / "jw_r_i2d.fits")
    catalog = write_catalog(tmp_path / "cat.csv")
    argv = ["cutout", "--images", str(tmp_path / "jw_r_i2d.fits"), "--catalog", str(catalog), "--size", str(STAMP), "--quiet",
            "--background", "none"]
    assert main([*argv, "--out", str(tmp_path / "a.h5")]) == 2
    assert "holds several weight-like HDUs of the image's shape (ERR, WHT)" in capsys.readouterr().err
    assert not (tmp_path / "a.h5").exists()
    assert main([*argv, "--out", str(tmp_path / "b.h5"), "--weight-hdu", "WHT"]) == 0
    from skysort.data.stampset import StampSet

    stamps = StampSet.open(tmp_path / "b.h5")
    assert stamps.meta.extra["weight_maps"]["r"]["hdu"] == "WHT"
    assert np.all(groups(np.asarray(stamps.table["flags"]))[0] & Flags.MISSING_BAND)


def test_a_chosen_weight_hdu_of_another_name_is_recorded_by_its_kind(tmp_path):
    h = header()
    variance = np.full(SHAPE, 0.2, np.float32)
    variance[:, :DEAD] = np.inf
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(science(), h, name="SCI"),
                  fits.ImageHDU(variance, h, name="VAR_POISSON")]).writeto(tmp_path / "t_r.fits")
    assert read_band_image(tmp_path / "t_r.fits").weight_map is None  # not a recognised name
    image = read_band_image(tmp_path / "t_r.fits", weight_hdu="var_poisson")
    assert image.weight_map["kind"] == "variance" and image.n_nan == SHAPE[0] * DEAD
    fits.writeto(tmp_path / "t_r.weight.fits", weight(), h)
    with pytest.raises(InputError, match="--weight-hdu: names an extension of the images' own files, which --weights replaces"):
        cut(str(tmp_path / "t_r.fits"), tmp_path / "s.h5", weights=str(tmp_path / "t_r.weight.fits"), weight_hdu="WGT")
