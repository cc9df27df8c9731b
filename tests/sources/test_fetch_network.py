"""The fetchers against the real archives. Skipped unless SURVEY_MASS_NETWORK=1 (our machines have no
route to the archives); run them by hand on a machine that has one:

    SURVEY_MASS_NETWORK=1 pytest -m network tests/sources/test_fetch_network.py

They download tens to hundreds of MB (SDSS frames, a Chandra event file; the Planck y-map test,
also marked slow, about 0.6-2 GB) into a temporary cache.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from survey_mass.sources.base import Cutout, Target
from survey_mass.sources.real import RealSourceConfig, build_real_source

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(
        os.environ.get("SURVEY_MASS_NETWORK") != "1",
        reason="needs the real archives; set SURVEY_MASS_NETWORK=1",
    ),
]

#: Abell 1689: in the SDSS footprint, deep Chandra ACIS-I imaging, a strong Planck SZ source
A1689 = Target("A1689", 197.8729, -1.3414, 0.183)


@pytest.fixture
def source(tmp_path):
    return build_real_source(RealSourceConfig(cache_dir=str(tmp_path / "cache")))


def test_sdss_cutout_of_a1689(source):
    (cutout,) = list(source.cutouts([A1689], "optical"))
    assert isinstance(cutout, Cutout), cutout
    assert cutout.hdul[0].header["BUNIT"] == "nanomaggy"
    assert np.isfinite(cutout.hdul[0].data).mean() > 0.9


def test_chandra_cutout_of_a1689(source):
    (cutout,) = list(source.cutouts([A1689], "xray"))
    assert isinstance(cutout, Cutout), cutout
    h = cutout.hdul[0].header
    assert h["EXPOSURE"] > 1e4 and np.nansum(cutout.hdul[0].data) > 1e4


def test_chandra_from_the_s3_mirror(tmp_path):
    pytest.importorskip("s3fs")
    config = RealSourceConfig(
        cache_dir=str(tmp_path / "cache"),
        chandra={
            "archive_url": "s3://nasa-heasarc/chandra/data/byobsid",
            "storage_options": {"anon": True},
        },
    )
    (cutout,) = list(build_real_source(config).cutouts([A1689], "xray"))
    assert isinstance(cutout, Cutout), cutout


@pytest.mark.slow
def test_planck_cutout_of_a1689(source):
    (cutout,) = list(source.cutouts([A1689], "sz"))
    assert isinstance(cutout, Cutout), cutout
    y = cutout.hdul[0].data
    n = y.shape[0]
    assert y[n // 2 - 3 : n // 2 + 3, n // 2 - 3 : n // 2 + 3].mean() > 1e-5  # a clear SZ decrement
