"""Tests for skysort.data.catalog: formats, column mappings, sentinels and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import MaskedColumn, Table

from skysort.data.catalog import (
    ColumnMapping,
    catalog_bands,
    photometry_arrays,
    preset_names,
    read_catalog,
    resolve_mapping,
    write_catalog,
)
from skysort.errors import InputError

# /work/main/tests/test_catalog.py -> parents[2] is the directory beside the repository.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECPHOT_CSV = SHARED_DATA / "catalogs" / "sdss_dr17_specphot" / "dr17_random10pct.csv"

FORMATS = ["fits", "fits.gz", "parquet", "csv", "ecsv"]


def standard_table() -> Table:
    """A small catalogue already in standard names, with masked values in several columns."""
    t = Table()
    t["id"] = np.array([10, 11, 12, 13], dtype=np.int64)
    t["ra"] = [150.1, 150.2, 150.3, 150.4]
    t["dec"] = [2.1, 2.2, 2.3, 2.4]
    t["label"] = MaskedColumn(["star", "galaxy", "qso", ""], mask=[False, False, False, True])
    t["mag_g"] = MaskedColumn([20.5, 21.0, 22.0, 23.0], mask=[False, True, False, False])
    t["magerr_g"] = MaskedColumn([0.01, 0.02, 0.05, 0.1], mask=[False, True, False, False])
    t["mag_r"] = MaskedColumn([20.0, 20.5, 21.5, 22.5], mask=[False, False, False, True])
    t["magerr_r"] = MaskedColumn([0.01, 0.02, 0.04, 0.08], mask=[False, False, False, True])
    t["redshift"] = MaskedColumn([0.0, 0.1, 1.5, 0.3], mask=[False, False, False, True])
    t["field"] = ["a", "b", "c", "d"]
    return t


def write_raw(table: Table, path: Path) -> Path:
    """Write a survey-style table with astropy directly (no skysort conventions)."""
    fmt = {"fits": "fits", "parquet": "parquet", "csv": "ascii.csv"}[path.suffix[1:]]
    table.write(path, format=fmt, overwrite=True)
    return path


# ---------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_keeps_values_masks_and_provenance(tmp_path, ext):
    first = read_catalog(write_catalog(standard_table(), tmp_path / f"in.{ext}"))
    path = write_catalog(first, tmp_path / f"out.{ext}")
    back = read_catalog(path)

    assert back.colnames[:7] == ["id", "ra", "dec", "label", "mag_g", "magerr_g", "mag_r"]
    assert list(back["id"]) == [10, 11, 12, 13]
    np.testing.assert_allclose(back["ra"], [150.1, 150.2, 150.3, 150.4])
    assert list(back["mag_g"].mask) == [False, True, False, False]
    assert list(back["magerr_g"].mask) == [False, True, False, False]
    assert list(back["mag_r"].mask) == [False, False, False, True]
    assert list(back["label"].mask) == [False, False, False, True]
    assert list(back["label"][:3]) == ["star", "galaxy", "qso"]
    assert bool(back["redshift"].mask[3]) and back["redshift"][2] == pytest.approx(1.5)
    assert list(back["field"]) == ["a", "b", "c", "d"]
    assert back["ra"].unit == "deg" and back["mag_r"].unit == "mag"
    assert catalog_bands(back) == ["g", "r"]
    assert back.meta["bands"] == ["g", "r"]
    assert back.meta["source_file"] == str(path)
    prov = back.meta["source_provenance"]
    assert prov["creator"].startswith("skysort")
    assert "numpy" in prov["software"]
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_provenance_stored_where_documented(tmp_path):
    t = standard_table()
    with fits.open(write_catalog(t, tmp_path / "c.fits")) as hdul:
        meta = json.loads(hdul[1].header["SKYSORT"])
    assert meta["provenance"]["creator"].startswith("skysort")

    schema_meta = pq.read_schema(write_catalog(t, tmp_path / "c.parquet")).metadata
    meta = json.loads(schema_meta[b"skysort"])
    assert meta["provenance"]["creator"].startswith("skysort")
    assert meta["units"] == {}
    assert pq.read_table(tmp_path / "c.parquet").column("mag_g").null_count == 1

    text = write_catalog(t, tmp_path / "c.csv").read_text()
    assert text.startswith("# %ECSV")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body[0].split(",")[:3] == ["id", "ra", "dec"]
    assert body[2].split(",")[4] == ""  # masked mag_g of the second object is an empty field
    assert "provenance" in Table.read(tmp_path / "c.csv", format="ascii.ecsv").meta


def test_write_refuses_to_overwrite_when_asked(tmp_path):
    path = write_catalog(standard_table(), tmp_path / "c.fits")
    with pytest.raises(InputError, match="already exists") as info:
        write_catalog(standard_table(), path, overwrite=False)
    assert info.value.where == str(path)


def test_write_unknown_extension(tmp_path):
    with pytest.raises(InputError, match="unknown catalogue format"):
        write_catalog(standard_table(), tmp_path / "c.txt")


def test_folders_and_hdf5_files_given_as_catalogues(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="is a folder without Parquet files, not a catalogue"):
        read_catalog(tmp_path / "folder")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        read_catalog(tmp_path / "junk.h5")
    import h5py

    h5py.File(tmp_path / "stamps.h5", "w").close()
    with pytest.raises(InputError, match="a stamp set: give it with --data"):
        read_catalog(tmp_path / "stamps.h5")


# ---------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------


def test_preset_names():
    assert {"kids", "sdss", "sdss-specphot"} <= set(preset_names())


def test_kids_preset(tmp_path):
    bands = ["u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"]
    t = Table()
    t["ID"] = ["KIDS J1", "KIDS J2", "KIDS J3"]
    t["RAJ2000"] = [10.0, 10.1, 10.2]
    t["DECJ2000"] = [-30.0, -30.1, -30.2]
    for k, b in enumerate(bands):
        t[f"MAG_GAAP_{b}"] = np.array([20.0 + k / 10, 99.0, 21.0], dtype=np.float32)
        t[f"MAGERR_GAAP_{b}"] = np.array([0.02, 99.0, 0.05], dtype=np.float32)
    t["MAG_GAAP_u"][2] = -99.0
    t["Z_B"] = [0.3, 0.5, 0.7]
    path = write_raw(t, tmp_path / "kids.fits")

    cat = read_catalog(path, "kids")
    assert cat.colnames[:3] == ["id", "ra", "dec"]
    assert catalog_bands(cat) == bands
    assert cat.meta["mapping"] == "kids" and cat.meta["bands"] == bands
    assert list(cat["mag_u"].mask) == [False, True, True]
    assert list(cat["magerr_u"].mask) == [False, True, True]  # error of a masked magnitude
    assert cat["mag_Ks"][0] == pytest.approx(20.8)
    assert list(cat["Z_B"]) == pytest.approx([0.3, 0.5, 0.7])
    assert "MAG_GAAP_u" not in cat.colnames
    for b in bands:
        values = np.ma.getdata(cat[f"mag_{b}"])
        assert not np.isin(values, [99.0, -99.0]).any()

    subset = read_catalog(path, ColumnMapping.from_preset("kids"), bands=["r", "Ks"])
    assert catalog_bands(subset) == ["r", "Ks"]
    assert "MAG_GAAP_u" in subset.colnames  # bands not asked for pass through unchanged


def test_parquet_output_gives_astropy_the_width_of_its_text_columns(tmp_path):
    """astropy's Parquet reader warns for each text column without a recorded width (its writer
    records one); a column with nulls gets none (astropy would read a null as 'None' cut short)."""
    import warnings

    import pyarrow.parquet as pq
    from astropy.io.misc.parquet import read_table_parquet

    table = Table({"id": ["a", "bbb", "cc"], "class": ["star", "galaxy", "qso"], "x": [1.0, 2.0, 3.0]})
    path = write_catalog(table, tmp_path / "t.parquet")
    metadata = pq.read_schema(path).metadata
    assert metadata[b"table::len::id"] == b"3" and metadata[b"table::len::class"] == b"6" and b"table::len::x" not in metadata
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_table_parquet(str(path), schema_only=True)
    table["note"] = MaskedColumn(["é", "", "x"], mask=[False, True, False])
    metadata = pq.read_schema(write_catalog(table, tmp_path / "nulls.parquet")).metadata
    assert b"table::len::note" not in metadata and metadata[b"table::len::id"] == b"3"
    assert read_catalog(tmp_path / "nulls.parquet", require_positions=False)["note"].mask.tolist() == [False, True, False]


def test_kids_preset_reads_dr5_first_i_pass(tmp_path):
    """KiDS DR5 observed i twice; a catalogue naming the passes MAG_GAAP_i1 / MAG_GAAP_i2 has no
    MAG_GAAP_i: the preset reads the first pass (DR4's i depth), the second passes through. With
    MAG_GAAP_i present, it is read."""
    bands = ["u", "g", "r", "i1", "i2", "Z", "Y", "J", "H", "Ks"]
    t = Table({"ID": ["a", "b"], "RAJ2000": [10.0, 10.1], "DECJ2000": [-30.0, -30.1]})
    for k, b in enumerate(bands):
        t[f"MAG_GAAP_{b}"] = np.array([20.0 + k / 10, 21.0 + k / 10])
        t[f"MAGERR_GAAP_{b}"] = np.array([0.01 * (k + 1), 0.02 * (k + 1)])
    t["MAG_GAAP_i1"][1] = 99.0
    path = write_raw(t, tmp_path / "dr5.fits")
    cat = read_catalog(path, "kids")
    assert catalog_bands(cat) == ["u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"]
    assert cat["mag_i"][0] == pytest.approx(20.3) and cat["magerr_i"][0] == pytest.approx(0.04)
    assert list(cat["mag_i"].mask) == [False, True]  # i1 not detected: missing, not i2
    assert "column MAG_GAAP_i1" in cat["mag_i"].description
    assert {"MAG_GAAP_i2", "MAGERR_GAAP_i2"} <= set(cat.colnames) and "MAG_GAAP_i1" not in cat.colnames
    t["MAG_GAAP_i"], t["MAGERR_GAAP_i"] = [19.0, 19.5], [0.5, 0.6]
    both = read_catalog(write_raw(t, tmp_path / "both.fits"), "kids")
    assert list(both["mag_i"]) == [19.0, 19.5] and "MAG_GAAP_i1" in both.colnames
    del t["MAG_GAAP_i"], t["MAG_GAAP_i1"]
    with pytest.raises(InputError, match="MAG_GAAP_i or MAG_GAAP_i1"):
        read_catalog(write_raw(t, tmp_path / "neither.fits"), "kids")


@pytest.mark.parametrize("value, fragment", [([], "must list column names"), ([1.5, None], "must list column names"),
                                             ({"a": 1}, "a column name or a list")])
def test_band_column_alternatives_are_validated(value, fragment):
    with pytest.raises(InputError, match=fragment):
        ColumnMapping.from_dict({"mag": {"r": value}, "bands": ["r"]})


@pytest.mark.parametrize("kind, prefix", [("psf", "psfMag"), ("model", "modelMag"),
                                          ("cmodel", "cModelMag")])
def test_sdss_preset_kinds(tmp_path, kind, prefix):
    t = Table()
    t["objID"] = np.array([1237648720693755918, 1237648720693755919], dtype=np.int64)
    t["ra"] = [180.0, 180.5]
    t["dec"] = [0.1, 0.2]
    for j, p in enumerate(["psfMag", "modelMag", "cModelMag"]):
        for b in "ugriz":
            t[f"{p}_{b}"] = [18.0 + j, -9999.0]
            t[f"{p}Err_{b}"] = [0.01, -9999.0]
    t["psfMag_z"][0] = 9999.0
    t["type"] = [3, 6]
    path = write_raw(t, tmp_path / "sdss.parquet")

    cat = read_catalog(path, ColumnMapping.from_preset("sdss", kind=kind))
    assert cat.meta["mapping"] == f"sdss (kind={kind})"
    assert cat["id"][0] == 1237648720693755918  # 64-bit ids survive exactly
    assert catalog_bands(cat) == list("ugriz")
    offset = ["psfMag", "modelMag", "cModelMag"].index(prefix)
    assert cat["mag_g"][0] == pytest.approx(18.0 + offset)
    assert cat["mag_g"].mask[1] and cat["magerr_g"].mask[1]
    assert cat["mag_z"].mask[0] == (kind == "psf")
    assert f"{prefix}_g" not in cat.colnames
    assert "type" in cat.colnames
    # SDSS magnitudes are put on AB: u_AB = u - 0.04, z_AB = z + 0.02; masked values stay masked.
    assert cat["mag_u"][0] == pytest.approx(18.0 + offset - 0.04)
    assert cat["mag_u"].mask[1]
    if kind != "psf":
        assert cat["mag_z"][0] == pytest.approx(18.0 + offset + 0.02)
    assert cat.meta["ab_offsets"] == {"u": -0.04, "z": 0.02}
    assert cat["magerr_u"][0] == pytest.approx(0.01)  # errors are not offsets


def test_ab_offsets_in_a_mapping(tmp_path):
    t = Table({"ra": [1.0], "dec": [2.0], "M_g": [20.0], "M_r": [19.0]})
    path = write_raw(t, tmp_path / "cat.csv")
    yaml_path = tmp_path / "map.yaml"
    yaml_path.write_text("mag: 'M_{band}'\nbands: [g, r]\nab_offsets: {r: 0.1}\n")
    cat = read_catalog(path, str(yaml_path))
    assert cat["mag_g"][0] == pytest.approx(20.0) and cat["mag_r"][0] == pytest.approx(19.1)
    for text, message in (("ab_offsets: {r: fast}", "ab_offsets must be numbers in mag"),
                          ("ab_offsets: {r: .nan}", "ab_offsets must be finite"),
                          ("ab_offsets: [0.1]", "ab_offsets must map bands")):
        yaml_path.write_text(f"mag: 'M_{{band}}'\nbands: [g, r]\n{text}\n")
        with pytest.raises(InputError, match=message):
            read_catalog(path, str(yaml_path))


def test_sdss_preset_string_with_options(tmp_path):
    assert resolve_mapping("sdss:kind=cmodel").mag_column("r") == "cModelMag_r"
    assert resolve_mapping("sdss").magerr_column("u") == "psfMagErr_u"
    with pytest.raises(InputError, match="kind='aper' is not one of psf, model, cmodel"):
        ColumnMapping.from_preset("sdss", kind="aper")
    with pytest.raises(InputError, match="unknown option 'flavour'"):
        ColumnMapping.from_preset("sdss", flavour="x")
    with pytest.raises(InputError, match="unknown preset"):
        ColumnMapping.from_preset("hsc")


@pytest.mark.skipif(not SPECPHOT_CSV.is_file(), reason="shared SDSS DR17 table not available")
def test_sdss_specphot_preset_on_real_table():
    cat = read_catalog(SPECPHOT_CSV, "sdss-specphot")
    assert len(cat) == 10000
    assert cat.colnames[:4] == ["id", "ra", "dec", "label"]
    assert catalog_bands(cat) == list("ugriz")
    assert set(cat["label"]) == {"galaxy", "star", "qso"}
    assert "redshift" in cat.colnames and "class" not in cat.colnames
    assert not any(c.startswith("magerr_") for c in cat.colnames)
    # The table has exactly one -9999 in each of u, g and z.
    for b, n in zip("ugriz", [1, 1, 0, 0, 1]):
        assert int(cat[f"mag_{b}"].mask.sum()) == n
        assert np.nanmin(np.ma.getdata(cat[f"mag_{b}"])) > 0
    mags, errs, mask = photometry_arrays(cat, list("ugriz"))
    assert mags.shape == (10000, 5) and mags.dtype == np.float32
    assert mask.sum() == 3 and np.isnan(mags[mask]).all()
    assert np.isnan(errs).all()


# ---------------------------------------------------------------------------------------
# Sentinels and non-finite values
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [99.0, -99.0, -9999.0, 9999.0, np.nan, np.inf, -np.inf])
def test_sentinels_and_non_finite_are_masked(tmp_path, bad):
    t = Table({"ra": [1.0, 2.0], "dec": [3.0, 4.0], "mag_r": [20.0, bad],
               "magerr_r": [0.1, 0.2]})
    cat = read_catalog(write_raw(t, tmp_path / "c.fits"))
    assert list(cat["mag_r"].mask) == [False, True]
    assert list(cat["magerr_r"].mask) == [False, True]
    assert np.isnan(np.ma.getdata(cat["mag_r"])[1])


def test_explicit_sentinels_replace_defaults(tmp_path):
    t = Table({"RA": [1.0, 2.0, 3.0], "DEC": [3.0, 4.0, 5.0], "M_r": [20.0, 99.0, -1.0]})
    path = write_raw(t, tmp_path / "c.csv")
    cat = read_catalog(path, "ra=RA,dec=DEC,mag=M_{band},bands=r,sentinels=-1")
    assert list(cat["mag_r"].mask) == [False, False, True]
    cat = read_catalog(path, "ra=RA,dec=DEC,mag=M_{band},bands=r")
    assert list(cat["mag_r"].mask) == [False, True, False]


def test_empty_csv_fields_are_masked(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("ra,dec,mag_g,magerr_g\n1.0,2.0,,0.1\n1.5,2.5,21.0,\n")
    cat = read_catalog(path)
    assert list(cat["mag_g"].mask) == [True, False]
    assert list(cat["magerr_g"].mask) == [True, True]


def test_photometry_arrays(tmp_path):
    cat = read_catalog(write_catalog(standard_table(), tmp_path / "c.parquet"))
    mags, errs, mask = photometry_arrays(cat, ["r", "g"])
    assert mags.shape == errs.shape == mask.shape == (4, 2)
    assert mags.dtype == errs.dtype == np.float32 and mask.dtype == bool
    assert mask.tolist() == [[False, False], [False, True], [False, False], [True, False]]
    assert np.isnan(mags[mask]).all() and np.isnan(errs[mask]).all()
    assert mags[0].tolist() == pytest.approx([20.0, 20.5])
    assert errs[2].tolist() == pytest.approx([0.04, 0.05])
    with pytest.raises(InputError, match="no magnitudes for band"):
        photometry_arrays(cat, ["i"])


# ---------------------------------------------------------------------------------------
# User mappings: YAML and compact string
# ---------------------------------------------------------------------------------------


def survey_table() -> Table:
    t = Table()
    t["SRC"] = [1, 2, 3]
    t["RA_DEG"] = [30.0, 30.1, 30.2]
    t["DEC_DEG"] = [-5.0, -5.1, -5.2]
    t["XIMG"] = [1.0, 10.0, 100.0]
    t["YIMG"] = [2.0, 20.0, 200.0]
    t["TYPE"] = [3, 6, 0]
    t["F_g"] = [21.0, 22.0, 99.0]
    t["E_g"] = [0.1, 0.2, 0.3]
    t["F_i"] = [20.0, 21.0, 22.0]
    t["E_i"] = [0.1, 0.1, 0.1]
    t["ra"] = [0.0, 0.0, 0.0]  # collides with a standard name
    return t


def test_yaml_mapping(tmp_path):
    yaml_path = tmp_path / "mysurvey.yaml"
    yaml_path.write_text(
        "id: SRC\nra: RA_DEG\ndec: DEC_DEG\nx: XIMG\ny: YIMG\npixel_origin: 1\n"
        "reference_band: i\nlabel: TYPE\nlabels: {3: galaxy, 6: STAR}\n"
        "mag: {g: F_g, i: F_i}\nmagerr: 'E_{band}'\nbands: [g, i]\nsentinels: [99]\n"
    )
    path = write_raw(survey_table(), tmp_path / "s.fits")
    for mapping in (ColumnMapping.from_yaml(yaml_path), str(yaml_path), yaml_path):
        cat = read_catalog(path, mapping)
        assert cat.colnames[:9] == ["id", "ra", "dec", "x", "y", "label", "mag_g", "magerr_g",
                                    "mag_i"]
        assert cat.meta["mapping"] == "mysurvey" and cat.meta["reference_band"] == "i"
        assert list(cat["x"]) == [0.0, 9.0, 99.0]  # 1-based pixels became 0-based
        assert list(cat["label"][:2]) == ["galaxy", "star"] and cat["label"][2] == "0"
        assert list(cat["mag_g"].mask) == [False, False, True]
        assert list(cat["ra_orig"]) == [0.0, 0.0, 0.0]
        assert list(cat["ra"]) == [30.0, 30.1, 30.2]


def test_yaml_mapping_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ra: RA\ndec: DEC\ncolour: blue\n")
    with pytest.raises(InputError, match="unknown key 'colour'") as info:
        ColumnMapping.from_yaml(bad)
    assert info.value.where == str(bad)
    bad.write_text("ra: RA\n")
    with pytest.raises(InputError, match="both ra and dec"):
        ColumnMapping.from_yaml(bad)
    bad.write_text("ra: [unclosed\n")
    with pytest.raises(InputError, match="cannot read column mapping"):
        ColumnMapping.from_yaml(bad)
    with pytest.raises(InputError, match="not found"):
        ColumnMapping.from_yaml(tmp_path / "absent.yaml")


def test_string_mapping(tmp_path):
    spec = ("id=SRC,ra=RA_DEG,dec=DEC_DEG,mag=F_{band},magerr=E_{band},"
            "bands=i g,sentinels=99 -99")
    mapping = ColumnMapping.from_string(spec)
    assert mapping.bands == ("i", "g") and mapping.sentinels == (99.0, -99.0)
    assert resolve_mapping(spec) == mapping
    cat = read_catalog(write_raw(survey_table(), tmp_path / "s.parquet"), spec)
    assert catalog_bands(cat) == ["i", "g"]
    assert list(cat["id"]) == [1, 2, 3]
    assert cat["mag_g"].mask.tolist() == [False, False, True]
    assert "XIMG" in cat.colnames and "F_g" not in cat.colnames


def test_string_mapping_without_bands_takes_bands_argument(tmp_path):
    path = write_raw(survey_table(), tmp_path / "s.csv")
    cat = read_catalog(path, "ra=ra_deg,dec=dec_deg,mag=F_{band}", bands="g i")
    assert catalog_bands(cat) == ["g", "i"]  # columns matched case-insensitively
    assert "magerr_g" not in cat.colnames
    assert list(cat["id"]) == [0, 1, 2]  # no id column mapped: row numbers


@pytest.mark.parametrize("spec, message", [
    ("ra=RA,dec", "expected key=value"),
    ("ra=RA,dec=DEC,colour=red", "unknown key 'colour'"),
    ("ra=RA,ra=RB,dec=DEC", "given twice"),
    ("ra=RA,dec=DEC,sentinels=ninety", "sentinels must be a list of numbers"),
    ("ra=RA,dec=DEC,mag=MAG,bands=g r", "lacks {band}"),
])
def test_string_mapping_errors(spec, message):
    with pytest.raises(InputError, match=message):
        ColumnMapping.from_string(spec)


def test_auto_detection_of_common_names(tmp_path):
    t = Table({"objID": [5, 6], "RAJ2000": [1.0, 2.0], "DECJ2000": [3.0, 4.0],
               "CLASS": ["QSO", "GALAXY"], "mag_r": [19.0, 20.0], "MAG_AUTO": [1.0, 2.0]})
    cat = read_catalog(write_raw(t, tmp_path / "c.fits"))
    assert cat.colnames == ["id", "ra", "dec", "label", "mag_r", "MAG_AUTO"]
    assert list(cat["label"]) == ["qso", "galaxy"]
    assert cat.meta["mapping"] == "auto"


@pytest.mark.parametrize("columns, expected", [
    # VizieR: positions at Gaia's epoch beside computed J2000 ones; DE, not DEC.
    (["RA_ICRS", "DE_ICRS", "_RAJ2000", "_DEJ2000"], ("RA_ICRS", "DE_ICRS")),
    (["RAJ2000", "DEJ2000"], ("RAJ2000", "DEJ2000")),
    (["RAdeg", "DEdeg"], ("RAdeg", "DEdeg")),
    (["raMean", "decMean"], ("raMean", "decMean")),  # Pan-STARRS
    (["ALPHA_J2000", "DELTA_J2000"], ("ALPHA_J2000", "DELTA_J2000")),  # SExtractor
    (["ALPHAWIN_J2000", "DELTAWIN_J2000"], ("ALPHAWIN_J2000", "DELTAWIN_J2000")),  # SExtractor windowed, DES
    (["coord_ra", "coord_dec"], ("coord_ra", "coord_dec")),  # Rubin object tables
    # A pair before ra of one system with dec of another; without a pair, the first of each.
    (["RA", "DE_ICRS", "RA_ICRS"], ("RA_ICRS", "DE_ICRS")),
    (["RAJ2000", "dec"], ("RAJ2000", "dec")),
])
def test_auto_detection_takes_sky_positions_in_pairs(tmp_path, columns, expected):
    # Before: DEJ2000 and DE_ICRS were not found ("no position columns"), and ra and dec were
    # chosen one by one.
    values = {name: [10.0 + k, 20.0 + k] for k, name in enumerate(columns)}
    cat = read_catalog(write_raw(Table({**values, "mag_r": [19.0, 20.0]}), tmp_path / "c.fits"))
    assert list(cat["ra"]) == values[expected[0]] and list(cat["dec"]) == values[expected[1]]


@pytest.mark.parametrize("name", ["objectId", "object_id", "source_id", "COADD_OBJECT_ID"])
def test_auto_detection_finds_the_surveys_object_ids(tmp_path, name):
    # Rubin, HSC, Gaia / AllWISE and DES ids; before, the rows were numbered and the id was
    # carried as an ordinary column, so predictions did not name their objects.
    ids = [4295032833, 4295032834]
    cat = read_catalog(write_raw(Table({name: ids, "ra": [10.0, 11.0], "dec": [1.0, 2.0], "mag_r": [19.0, 20.0]}),
                                 tmp_path / "c.parquet"))
    assert list(cat["id"]) == ids and name not in cat.colnames


def test_a_mapping_of_magnitudes_alone_keeps_the_surveys_ids_and_positions(tmp_path):
    # A mapping that names only the magnitudes (mag={band}mag) found ids and positions under
    # standard names only: objID and RA_ICRS / DE_ICRS stayed ordinary columns, the rows were
    # numbered and predictions had no position.
    t = Table({"objID": [5, 6], "RA_ICRS": [1.0, 2.0], "DE_ICRS": [3.0, 4.0], "gmag": [19.0, 20.0], "rmag": [18.0, 19.0]})
    cat = read_catalog(write_raw(t, tmp_path / "c.fits"), mapping="mag={band}mag,bands=g r")
    assert list(cat["id"]) == [5, 6] and list(cat["ra"]) == [1.0, 2.0] and list(cat["dec"]) == [3.0, 4.0]
    assert "objID" not in cat.colnames and "RA_ICRS" not in cat.colnames
    # What the mapping names still wins.
    t["ID2"] = [7, 8]
    assert list(read_catalog(write_raw(t, tmp_path / "d.fits"), mapping="id=ID2,mag={band}mag,bands=g r")["id"]) == [7, 8]


def test_pixel_positions_only(tmp_path):
    t = Table({"x": [0.5, 1.5], "y": [2.5, 3.5], "mag_i": [20.0, 21.0]})
    cat = read_catalog(write_raw(t, tmp_path / "c.csv"))
    assert cat.colnames == ["id", "x", "y", "mag_i"]
    assert cat["x"].unit == "pix"


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


def assert_input_error(path, match, **kwargs):
    with pytest.raises(InputError, match=match) as info:
        read_catalog(path, **kwargs)
    assert info.value.where == str(path)
    assert "\n" not in info.value.problem


def test_missing_file(tmp_path):
    assert_input_error(tmp_path / "nope.fits", "not found")


def test_unknown_extension(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("ra,dec\n1,2\n")
    assert_input_error(path, "unknown catalogue format '.txt'")


@pytest.mark.parametrize("name, content", [
    ("c.fits", b"SIMPLE  = this is not really FITS" * 10),
    ("c.parquet", b"PAR1 garbage garbage"),
    ("c.csv", b"\xff\xfe\x00\x81binary\x00junk"),
    ("c.csv", b"ra,dec\n1,2,3,4\n5\n"),
])
def test_corrupt_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert_input_error(path, "cannot read as")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "c.parquet"
    path.write_bytes(b"")
    assert_input_error(path, "file is empty")


@pytest.mark.parametrize("ext", ["fits", "parquet", "csv"])
def test_catalogue_without_rows(tmp_path, ext):
    t = Table({"ra": np.zeros(0), "dec": np.zeros(0), "mag_r": np.zeros(0)})
    path = write_raw(t, tmp_path / f"c.{ext}")
    assert_input_error(path, "no rows")


def test_missing_mapped_columns(tmp_path):
    t = Table({"ID": [1], "RAJ2000": [1.0], "DECJ2000": [2.0], "MAG_GAAP_r": [20.0]})
    path = write_raw(t, tmp_path / "kids.fits")
    with pytest.raises(InputError) as info:
        read_catalog(path, "kids")
    problem = info.value.problem
    assert info.value.where == str(path)
    assert "MAG_GAAP_u" in problem and "MAGERR_GAAP_r" in problem and "kids" in problem
    assert "MAG_GAAP_r," not in problem


def test_no_position_columns(tmp_path):
    t = Table({"name": ["a"], "mag_r": [20.0]})
    assert_input_error(write_raw(t, tmp_path / "c.fits"), "neither ra/dec nor x/y")
    assert_input_error(write_raw(t, tmp_path / "c.fits"), "neither ra/dec nor x/y",
                       mapping="id=name,mag=mag_{band},bands=r")


def test_bands_not_in_catalogue_or_mapping(tmp_path):
    t = Table({"ra": [1.0], "dec": [2.0], "mag_r": [20.0]})
    path = write_raw(t, tmp_path / "c.fits")
    assert_input_error(path, "no column mag_q", bands=["q"])
    assert_input_error(path, "band.s. q not in column mapping sdss", mapping="sdss", bands=["q"])


def test_non_numeric_magnitudes(tmp_path):
    t = Table({"ra": [1.0], "dec": [2.0], "mag_r": ["bright"]})
    assert_input_error(write_raw(t, tmp_path / "c.csv"), "'mag_r' is not numeric")


def test_quantities_left_out_of_a_mapping_come_from_standard_names(tmp_path):
    t = Table({"id": [7, 8], "ra": [1.0, 2.0], "dec": [3.0, 4.0], "x": [5.0, 6.0],
               "y": [7.0, 8.0], "F_r": [20.0, 21.0]})
    path = write_raw(t, tmp_path / "c.fits")
    cat = read_catalog(path, "mag=F_{band},bands=r,pixel_origin=1")
    assert cat.colnames == ["id", "ra", "dec", "x", "y", "mag_r"]
    assert list(cat["id"]) == [7, 8]
    assert list(cat["x"]) == [5.0, 6.0]  # standard x is 0-based already


def test_preset_field_overrides():
    mapping = resolve_mapping("sdss:kind=model,bands=g r,sentinels=-9999")
    assert mapping.bands == ("g", "r") and mapping.sentinels == (-9999.0,)
    assert mapping.mag_column("g") == "modelMag_g"
    assert ColumnMapping.from_preset("kids", pixel_origin="1").pixel_origin == 1
    with pytest.raises(InputError, match="pixel_origin must be 0 or 1"):
        ColumnMapping.from_string("ra=RA,dec=DEC,pixel_origin=2")


def test_tables_from_elsewhere_round_trip_with_their_metadata(tmp_path):
    """A table read from FITS (big-endian) writes to Parquet; a mapping or DataFrame writes too;
    a written file's own metadata comes back under ``source_meta``."""
    import pandas as pd

    from skysort.data.catalog import standardise_catalog

    Table({"RA": [1.0, 2.0], "DEC": [0.0, 1.0], "FLUX_RADIUS": [1.5, 2.5]}).write(tmp_path / "survey.fits")
    catalog = read_catalog(tmp_path / "survey.fits", mapping="ra=RA,dec=DEC")
    assert catalog["FLUX_RADIUS"].dtype.byteorder == ">"
    write_catalog(catalog, tmp_path / "out.parquet")
    assert list(read_catalog(tmp_path / "out.parquet")["FLUX_RADIUS"]) == [1.5, 2.5]
    for ext in ("fits", "parquet", "csv"):
        write_catalog(Table({"ra": [1.0], "dec": [2.0]}, meta={"survey": "KiDS", "tile": "KIDS_1"}), tmp_path / f"m.{ext}")
        back = read_catalog(tmp_path / f"m.{ext}")
        assert back.meta["source_meta"] == {"survey": "KiDS", "tile": "KIDS_1"} and "source_provenance" in back.meta
    write_catalog({"ra": [1.0], "dec": [2.0]}, tmp_path / "d.parquet")
    write_catalog(pd.DataFrame({"ra": [3.0], "dec": [4.0]}), tmp_path / "p.fits")
    assert read_catalog(tmp_path / "d.parquet")["dec"][0] == 2.0 and read_catalog(tmp_path / "p.fits")["ra"][0] == 3.0
    with pytest.raises(TypeError):
        write_catalog([1, 2], tmp_path / "l.parquet")
    with pytest.raises(InputError, match="multidimensional"):
        write_catalog(Table({"ra": [1.0], "x": [[1, 2]]}), tmp_path / "mm.parquet")
    assert not (tmp_path / "mm.parquet").exists()
    # A table in memory is translated as a file would be, and left as it was.
    raw = Table({"ALPHA": [10.0], "DELTA": [-5.0], "MAG_R": [99.0]})
    standard = standardise_catalog(raw, mapping="ra=ALPHA,dec=DELTA,mag=MAG_{band},bands=r,sentinels=99")
    assert standard["ra"][0] == 10.0 and standard["mag_r"].mask[0]
    assert raw.colnames == ["ALPHA", "DELTA", "MAG_R"] and raw["MAG_R"][0] == 99.0


def test_a_masked_boolean_survives_fits(tmp_path):
    table = Table({"id": [1, 2, 3], "ra": [1.0, 2.0, 3.0], "dec": [1.0, 2.0, 3.0],
                   "ok": MaskedColumn([True, False, True], mask=[False, False, True])})
    for name in ("t.fits", "t.parquet", "t.ecsv"):
        write_catalog(table, tmp_path / name)
        back = read_catalog(tmp_path / name)["ok"]
        # Before, FITS gave the missing cell back as True.
        assert list(np.ma.getmaskarray(back)) == [False, False, True], name
        assert list(np.ma.getdata(back)[:2].astype(bool)) == [True, False], name


def test_compact_mapping_takes_labels_and_ab_offsets(tmp_path):
    from skysort.data.catalog import ColumnMapping, resolve_mapping

    text = "ra=alpha,dec=delta,mag={band},bands=u z,label=class,labels=GALAXY:galaxy 6:star,ab_offsets=u:-0.04 z:0.02"
    mapping = resolve_mapping(text)  # its colons are not a preset's options
    assert mapping.labels == {"GALAXY": "galaxy", "6": "star"} and mapping.ab_offsets == {"u": -0.04, "z": 0.02}
    Table({"alpha": [1.0, 2.0], "delta": [3.0, 4.0], "u": [20.0, 21.0], "z": [19.0, 18.0],
           "class": ["GALAXY", "6"]}).write(tmp_path / "c.csv")
    table = read_catalog(tmp_path / "c.csv", mapping=text)
    assert list(table["label"]) == ["galaxy", "star"]
    assert np.allclose(table["mag_u"], [19.96, 20.96]) and np.allclose(table["mag_z"], [19.02, 18.02])
    for bad, fragment in (("labels=GALAXY", "key:value pairs"), ("ab_offsets=u:x", "must be numbers")):
        with pytest.raises(InputError, match=fragment):
            ColumnMapping.from_string("ra=a,dec=d," + bad)
    assert resolve_mapping("sdss:kind=model").describe() == "sdss (kind=model)"


def test_flux_columns_become_ab_magnitudes(tmp_path):
    from skysort.data.catalog import ColumnMapping, fluxes_to_magnitudes

    # Rubin-like object table: fluxes in nJy, a negative flux for a non-detection.
    mags = np.array([20.0, 22.0, 25.0])
    flux = 3631e9 * 10 ** (-0.4 * mags)
    flux[2] = -5.0
    Table({"id": [1, 2, 3], "ra": [1.0, 2.0, 3.0], "dec": [1.0, 2.0, 3.0], "g_psfFlux": flux,
           "g_psfFluxErr": [100.0, 50.0, 20.0]}).write(tmp_path / "objects.parquet")
    mapping = "mag={band}_psfFlux,magerr={band}_psfFluxErr,bands=g,flux_unit=nJy"
    table = read_catalog(tmp_path / "objects.parquet", mapping=mapping)
    assert np.allclose(table["mag_g"][:2], mags[:2]) and table["mag_g"].mask.tolist() == [False, False, True]
    assert np.allclose(table["magerr_g"][:2], 2.5 / np.log(10) * np.array([100.0, 50.0]) / flux[:2])
    # With a softening the magnitudes are asinh ones, finite for the negative flux too.
    asinh, _ = fluxes_to_magnitudes(flux, None, 1e-9 / 3631, softening=1e-10)
    assert np.all(np.isfinite(asinh)) and np.allclose(asinh[:2], mags[:2], atol=5e-3)  # 0.004 apart at 22
    # Units that contradict the mapping, and mappings that cannot hold, are one error each.
    Table({"id": [1], "ra": [1.0], "dec": [1.0], "g_psfFlux": [1e3] * u.uJy}).write(tmp_path / "uJy.fits")
    with pytest.raises(InputError, match="is in uJy, but the column mapping's flux_unit says nJy"):
        read_catalog(tmp_path / "uJy.fits", mapping="mag={band}_psfFlux,bands=g,flux_unit=nJy")
    with pytest.raises(InputError, match=r"say so in the column mapping \(flux_unit=uJy\)"):
        read_catalog(tmp_path / "uJy.fits", mapping="mag={band}_psfFlux,bands=g")
    for bad, fragment in (("mag=f_{band},bands=g,flux_unit=mag", "not a flux density"),
                          ("mag=f_{band},bands=g,flux_unit=nJy,ab_offsets=g:0.1", "AB already"),
                          ("ra=ra,dec=dec,flux_unit=nJy", "give mag")):
        with pytest.raises(InputError, match=fragment):
            ColumnMapping.from_string(bad)
