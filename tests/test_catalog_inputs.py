"""Catalogue files as surveys and archives really write them: units astropy does not parse,
magnitude systems, positions beyond the sky, damaged and mislabelled files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import MaskedColumn, Table

from skysort.data.catalog import read_catalog, standardise_catalog
from skysort.errors import InputError


def fits_catalogue(path, columns):
    """Write a FITS table of ``columns`` (name -> (values, TUNIT text or None)) with the unit
    text exactly as given, as survey pipelines write it."""
    cols = [fits.Column(name=name, format="D", array=np.asarray(values, float), unit=unit)
            for name, (values, unit) in columns.items()]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    return path


# ---------------------------------------------------------------------------------------
# Units as real files spell them
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["RAD", "radians"])
def test_positions_in_radians_spelt_as_old_pipelines_do_are_converted(tmp_path, unit):
    path = fits_catalogue(tmp_path / "c.fits", {"RA": ([np.pi / 2, np.pi], unit), "DEC": ([0.5, -np.pi / 2], unit)})
    table = read_catalog(path)
    np.testing.assert_allclose(table["ra"], [90.0, 180.0])
    np.testing.assert_allclose(table["dec"], [np.degrees(0.5), -90.0])


@pytest.mark.parametrize("unit", ["HOURS", "h"])
def test_right_ascension_in_hours_is_hour_angle(tmp_path, unit):
    path = fits_catalogue(tmp_path / "c.fits", {"RA": ([1.0, 23.5], unit), "DEC": ([10.0, -5.0], "deg")})
    table = read_catalog(path)
    np.testing.assert_allclose(table["ra"], [15.0, 352.5])
    np.testing.assert_allclose(table["dec"], [10.0, -5.0])


def test_a_declination_in_hours_is_refused(tmp_path):
    path = fits_catalogue(tmp_path / "c.fits", {"RA": ([1.0], "HOURS"), "DEC": ([1.0], "HOURS")})
    with pytest.raises(InputError, match="'DEC' is in h, not an angle"):
        read_catalog(path)


def test_sdss_nanomaggies_are_fluxes_not_magnitudes(tmp_path):
    # SDSS's FITS products write TUNIT 'nanomaggies', which astropy does not parse.
    columns = {"RA": ([150.0, 150.1], "deg"), "DEC": ([2.0, 2.1], "deg"),
               "PSFFLUX_r": ([1000.0, 100.0], "nanomaggies"), "PSFFLUXERR_r": ([10.0, 5.0], "nanomaggies")}
    path = fits_catalogue(tmp_path / "c.fits", columns)
    with pytest.raises(InputError, match=r"'PSFFLUX_r' holds fluxes \(nmgy\), not magnitudes"):
        read_catalog(path, mapping="ra=RA,dec=DEC,mag=PSFFLUX_{band},magerr=PSFFLUXERR_{band},bands=r")
    table = read_catalog(path, mapping="ra=RA,dec=DEC,mag=PSFFLUX_{band},magerr=PSFFLUXERR_{band},bands=r,"
                                       "flux_unit=nanomaggies")
    np.testing.assert_allclose(table["mag_r"], [22.5 - 2.5 * 3, 22.5 - 2.5 * 2])


@pytest.mark.parametrize("fmt", ["ecsv", "parquet"])
def test_a_magnitude_column_in_unit_ab_is_read_as_ab_magnitudes(tmp_path, fmt):
    # astropy reads the unit "AB" as the AB flux density; as a magnitude column's unit it says AB magnitudes.
    table = Table({"ra": [1.0], "dec": [1.0], "mag_r": [20.0]})
    table["mag_r"].unit = "AB"
    table.write(tmp_path / f"c.{fmt}")
    assert read_catalog(tmp_path / f"c.{fmt}")["mag_r"][0] == 20.0


@pytest.mark.parametrize("unit", ["VEGAMAG", "mag(Vega)", "STmag", "mag(ST)"])
def test_magnitudes_on_another_system_than_ab_need_the_offset(tmp_path, unit):
    path = fits_catalogue(tmp_path / "c.fits", {"ra": ([1.0], "deg"), "dec": ([1.0], "deg"), "MAG_R": ([20.0], unit)})
    with pytest.raises(InputError, match="not AB magnitudes|skysort reads AB magnitudes"):
        read_catalog(path, mapping="ra=ra,dec=dec,mag=MAG_{band},bands=r")
    table = read_catalog(path, mapping="ra=ra,dec=dec,mag=MAG_{band},bands=r,ab_offsets=r:0.2")
    np.testing.assert_allclose(table["mag_r"], [20.2])


# ---------------------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "fits"])
def test_right_ascensions_from_minus_180_to_180_are_put_in_0_to_360(tmp_path, fmt):
    Table({"ra": [-10.0, -1e-20, 0.0, 359.5, 360.0], "dec": [0.0] * 5}).write(tmp_path / f"c.{fmt}")
    ra = np.asarray(read_catalog(tmp_path / f"c.{fmt}")["ra"])
    np.testing.assert_array_equal(ra, [350.0, 0.0, 0.0, 359.5, 0.0])


def test_declinations_off_the_sky_are_rows_without_a_position_and_said_once(tmp_path):
    # A placeholder such as -999 is no declination; skysort predict treats such rows alike.
    (tmp_path / "c.csv").write_text("id,ra,dec,mag_r\n1,10.0,5.0,20\n2,-999,-999,21\n3,20.0,95.0,22\n4,,,23\n")
    with pytest.warns(UserWarning) as caught:
        table = read_catalog(tmp_path / "c.csv")
    messages = [str(w.message) for w in caught]
    assert messages == [f"{tmp_path / 'c.csv'}: 2 of 4 rows have a declination beyond -90..90 degrees (e.g. -999): "
                        "they are read as rows without a sky position"]
    for key in ("ra", "dec"):
        assert list(np.ma.getmaskarray(table[key])) == [False, True, True, True]
        assert np.isnan(np.ma.getdata(table[key])[1:]).all()
    assert list(table["mag_r"]) == [20, 21, 22, 23] and (table["ra"][0], table["dec"][0]) == (10.0, 5.0)


def test_masked_positions_are_not_range_checked(tmp_path):
    # What a masked cell holds underneath (here a placeholder) is no position.
    table = Table({"ra": MaskedColumn([10.0, -999.0], mask=[False, True]),
                   "dec": MaskedColumn([5.0, -999.0], mask=[False, True])})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read = standardise_catalog(table)
    assert list(np.ma.getmaskarray(read["dec"])) == [False, True]
    assert read["ra"][0] == 10.0


# ---------------------------------------------------------------------------------------
# Damaged, compressed and mislabelled files
# ---------------------------------------------------------------------------------------


def fits_bytes(tmp_path, rows=5000):
    Table({"ra": np.linspace(0.0, 359.0, rows), "dec": np.zeros(rows)}).write(tmp_path / "full.fits")
    return (tmp_path / "full.fits").read_bytes()


@pytest.mark.parametrize("keep", [0.5, "into the table header"])
def test_a_truncated_fits_file_is_said_to_be_truncated(tmp_path, keep):
    # An interrupted download: cut inside the table's data, or inside its header.
    data = fits_bytes(tmp_path)
    cut = len(data) // 2 if keep == 0.5 else 2880 + 1000
    (tmp_path / "cut.fits").write_bytes(data[:cut])
    with pytest.raises(InputError, match="the FITS file is truncated or damaged .*download or copy it again"):
        read_catalog(tmp_path / "cut.fits")


@pytest.mark.parametrize("compression", ["bz2", "xz", "gz"])
def test_compressed_fits_catalogues_are_read(tmp_path, compression):
    import bz2
    import gzip
    import lzma

    compress = {"bz2": bz2.compress, "xz": lzma.compress, "gz": gzip.compress}[compression]
    (tmp_path / f"c.fits.{compression}").write_bytes(compress(fits_bytes(tmp_path, rows=10)))
    np.testing.assert_allclose(read_catalog(tmp_path / f"c.fits.{compression}")["ra"], np.linspace(0.0, 359.0, 10))


def test_fits_compressed_other_than_gzip_is_not_written(tmp_path):
    from skysort.data.catalog import write_catalog

    with pytest.raises(InputError, match="bzip2 or xz is read, not written"):
        write_catalog(Table({"ra": [1.0], "dec": [1.0]}), tmp_path / "c.fits.bz2")
    assert not list(tmp_path.iterdir())


def test_a_gzip_fits_file_named_without_gz_is_read(tmp_path):
    import gzip

    (tmp_path / "c.fits").write_bytes(gzip.compress(fits_bytes(tmp_path, rows=10)))
    assert len(read_catalog(tmp_path / "c.fits")) == 10


@pytest.mark.parametrize("name, content, fragment", [
    ("c.fits", "parquet", "cannot read as FITS: the file is a Parquet file, not FITS"),
    ("c.csv", "fits", "cannot read as CSV: the file is a FITS file, not CSV"),
    ("c.parquet", "fits", "cannot read as PARQUET: the file is a FITS file, not Parquet"),
    ("c.csv", "csv.gz", "cannot read as CSV: the file is gzip-compressed, but its name does not end in .gz"),
    ("c.csv", "html", "cannot read as CSV: the file is an HTML page, not a catalogue"),
    ("c.fits", "html", "cannot read as FITS: the file is an HTML page, not a catalogue"),
])
def test_a_file_whose_name_lies_about_its_format_is_named_for_what_it_is(tmp_path, name, content, fragment):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    if content == "parquet":
        pq.write_table(pa.table({"ra": [1.0], "dec": [1.0]}), tmp_path / name)
    elif content == "fits":
        (tmp_path / name).write_bytes(fits_bytes(tmp_path, rows=10))
    elif content == "csv.gz":
        (tmp_path / name).write_bytes(gzip.compress(b"ra,dec\n1,2\n"))
    else:
        (tmp_path / name).write_text("<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n")
    with pytest.raises(InputError) as caught:
        read_catalog(tmp_path / name)
    assert fragment in str(caught.value)


# ---------------------------------------------------------------------------------------
# FITS files of several tables
# ---------------------------------------------------------------------------------------


def _table_hdu(n, name=None, start=0.0):
    cols = [fits.Column(name=c, format="D", array=start + np.arange(n, dtype=float)) for c in ("RA", "DEC")]
    return fits.BinTableHDU.from_columns(cols, name=name)


def test_an_empty_first_table_is_passed_over_for_the_one_with_rows(tmp_path):
    path = tmp_path / "c.fits"
    fits.HDUList([fits.PrimaryHDU(), _table_hdu(0, "HEADER_INFO"), _table_hdu(5, "OBJECTS")]).writeto(path)
    assert len(read_catalog(path)) == 5


def test_several_tables_with_rows_say_which_is_read(tmp_path):
    path = tmp_path / "c.fits"
    fits.HDUList([fits.PrimaryHDU(), _table_hdu(4, "OBJECTS"), _table_hdu(2, "FILTERS")]).writeto(path)
    with pytest.warns(UserWarning, match=r"2 tables hold rows; the catalogue is read from the first, HDU 1 \(OBJECTS\), "
                                         r"4 rows \(not HDU 2 \(FILTERS\)\)"):
        assert len(read_catalog(path)) == 4


def test_a_fits_ldac_catalogue_of_several_chips_is_not_read_as_its_first_chip(tmp_path):
    """SExtractor on a multi-extension image writes an LDAC_IMHEAD / LDAC_OBJECTS pair per chip."""
    imhead = fits.BinTableHDU.from_columns([fits.Column(name="Field Header Card", format="80A",
                                                        array=np.array(["SIMPLE  =                    T"]))], name="LDAC_IMHEAD")
    path = tmp_path / "chips.cat"
    hdus = [fits.PrimaryHDU()]
    for chip in range(3):
        hdus += [imhead.copy(), _table_hdu(4, "LDAC_OBJECTS", start=10.0 * chip)]
    fits.HDUList(hdus).writeto(path)
    with pytest.raises(InputError, match="a FITS_LDAC catalogue of 3 chips"):
        read_catalog(path, mapping="ra=RA,dec=DEC")


def test_repeated_ids_are_read_with_a_warning_that_names_them(tmp_path):
    path = tmp_path / "epochs.csv"
    path.write_text("objid,ra,dec,mag_r\n7,10.0,1.0,20\n8,10.1,1.1,21\n7,10.2,1.2,22\n9,10.3,1.3,21\n")
    with pytest.warns(UserWarning, match=r"1 id of column 'objid' occurs more than once \(7; 2 rows\)"):
        table = read_catalog(path)
    assert list(table["id"]) == [7, 8, 7, 9]


def test_unique_ids_and_masked_ids_give_no_repeated_id_warning(tmp_path):
    table = Table({"objid": MaskedColumn([1, 2, 3], mask=[False, True, True]), "ra": [1.0, 2.0, 3.0], "dec": [0.0, 0.5, 1.0]})
    path = tmp_path / "c.fits"
    table.write(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_catalog(path)) == 3


def test_repeated_ids_written_as_floats_beyond_2_to_53_are_explained(tmp_path):
    path = tmp_path / "floats.csv"
    path.write_text("obj_ID,ra,dec\n1.2376487207e+18,10.0,1.0\n1.2376487207e+18,10.1,1.1\n")
    with pytest.warns(UserWarning, match=r"floating-point numbers beyond 2\*\*53"):
        read_catalog(path)
