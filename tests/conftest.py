"""Shared fixtures: the real data beside the repository and a stamp set cut from it once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Feature caches and other per-user caches go to a throw-away folder, not the home directory;
# the folder is removed when the test session's interpreter exits (a mkdtemp folder was left
# behind by every run, tens of MB each on a CI machine's disk).
_TEST_CACHE = tempfile.TemporaryDirectory(prefix="skysort-test-cache-")
os.environ.setdefault("SKYSORT_CACHE", _TEST_CACHE.name)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKYSORT_DATA", REPO.parent / "shared" / "data"))
SDSS_FIELD = SHARED_DATA / "surveys" / "sdss_frames" / "003918-3-0213"


def require(path: Path) -> Path:
    """Skip the test when a real-data file beside the repository is absent."""
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


def preset_refused(path: Path) -> str:
    """The problem a refused survey preset file is reported with (the error must name it)."""
    from skysort.errors import InputError
    from skysort.simulate.presets import load_survey

    with pytest.raises(InputError) as info:
        load_survey(path)
    assert info.value.where == str(path.resolve())
    return info.value.problem


@pytest.fixture(scope="session")
def sdss_field() -> Path:
    return require(SDSS_FIELD)


@pytest.fixture(scope="session")
def sdss_images(sdss_field):
    from skysort.data.images import expand_image_paths, read_band_images

    # Background removed as ``skysort cutout`` does by default.
    return read_band_images(expand_image_paths(str(sdss_field / "frame-*-*.fits.bz2")), background="sep")


@pytest.fixture(scope="session")
def sdss_stamps(sdss_images, sdss_field, tmp_path_factory):
    """The labelled SDSS field cut into 5-band 64x64 stamps (every object of objects.csv)."""
    from skysort.data.catalog import read_catalog
    from skysort.data.ingest import cutout_to_stampset

    catalog_path = sdss_field / "objects.csv"
    out = tmp_path_factory.mktemp("sdss") / "stamps.h5"
    return cutout_to_stampset(sdss_images, read_catalog(catalog_path), out, size=64, catalog_path=catalog_path)
