"""Mock redMaPPer, weak-lensing and PSZ2 catalogs: columns like the real ones, physics, selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u

from survey_mass.constants import (
    PLANCK_HYDROSTATIC_BIAS,
    PSZ2_SNR_MIN,
    REDMAPPER_LAMBDA_MIN,
    REDMAPPER_Z_RANGE,
)
from survey_mass.mock import external
from survey_mass.mock.universe import (
    LAMBDA_SLOPE,
    UNIVERSE_ORDER,
    UniverseSpec,
    clusters_in,
)
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import ConeFootprint

SPEC = UniverseSpec(seed=21, density_scale=30)
#: Planck sees only massive clusters: a dense universe of them
MASSIVE = UniverseSpec(seed=21, log10_m500_min=14.8, z_min=0.05, z_max=0.4, density_scale=3000)
FOOTPRINT = ConeFootprint(ra=120.0, dec=10.0, radius_deg=0.8)


def _all_rows(kind: str, spec: UniverseSpec = SPEC) -> pd.DataFrame:
    """Every cluster's catalog entry before the survey selection, joined to the truth."""
    pixels = footprint_pixels(FOOTPRINT, UNIVERSE_ORDER)
    rows = pd.concat(
        [external.pixel_catalog(kind, spec, p, FOOTPRINT, select=False) for p in pixels],
        ignore_index=True,
    )
    truth = pd.concat(
        [clusters_in(spec, FOOTPRINT, UNIVERSE_ORDER, p) for p in pixels], ignore_index=True
    )
    return rows.merge(truth, on="target_id")


@pytest.mark.parametrize(
    ("kind", "real_file"), [("redmapper", "sdss_redmapper.csv.gz"), ("psz2", "psz2.csv.gz")]
)
def test_columns_are_those_of_the_real_catalogs(shared_data, kind, real_file):
    real = pd.read_csv(shared_data / "clusterdb" / real_file, nrows=5)
    mock = external.pixel_catalog(kind, SPEC, footprint_pixels(FOOTPRINT, UNIVERSE_ORDER)[0])
    assert set(real.columns) <= set(mock.columns)
    for column in real.columns:  # same kinds of values
        assert pd.api.types.is_numeric_dtype(mock[column]) == pd.api.types.is_numeric_dtype(
            real[column]
        )


@pytest.mark.parametrize(
    "make", [external.mock_redmapper, external.mock_weak_lensing, external.mock_psz]
)
def test_every_column_has_a_parseable_unit(make):
    catalog = make(MASSIVE, FOOTPRINT)
    assert len(catalog) > 0
    assert set(catalog.attrs["units"]) == set(catalog.columns)
    for unit in catalog.attrs["units"].values():
        u.Unit(unit)


def test_redmapper_lambda_m_slope_and_selection():
    rows = _all_rows("redmapper")
    massive = rows[rows.log10_m500 > np.log10(2e14)]
    x, y = np.log(10**massive.log10_m500), np.log(massive["lambda"].clip(lower=1))
    slope, intercept = np.polyfit(x, y, 1)
    assert slope == pytest.approx(LAMBDA_SLOPE, abs=0.12)
    assert 0.25 < np.std(y - slope * x - intercept) < 0.45  # 0.25 intrinsic + Poisson + projection
    dz = (rows.redshift - rows.z) / (1 + rows.z)
    assert np.std(dz) == pytest.approx(0.01, rel=0.15)
    selected = external.mock_redmapper(SPEC, FOOTPRINT)
    assert (selected["lambda"] >= REDMAPPER_LAMBDA_MIN).all()
    assert selected.redshift.between(*REDMAPPER_Z_RANGE).all()


def test_weak_lensing_masses_are_nearly_unbiased_with_20_30_percent_scatter():
    rows = _all_rows("weak_lensing")
    ln_ratio = np.log(rows.M500 * 1e14 / 10**rows.log10_m500)
    assert ln_ratio.mean() == pytest.approx(-0.05, abs=0.04)
    assert 0.2 < ln_ratio.std() < 0.35
    subset = external.mock_weak_lensing(SPEC, FOOTPRINT)
    assert 0 < len(subset) < 0.5 * len(rows)


def test_psz2_msz_carries_the_hydrostatic_bias():
    rows = _all_rows("psz2", MASSIVE)
    known = rows[rows.MSZ.notna()]  # before the SNR cut: the median is free of Eddington bias
    assert len(known) >= 40
    ratio = np.exp(np.median(np.log(known.MSZ * 1e14 / 10**known.log10_m500)))
    assert ratio == pytest.approx(PLANCK_HYDROSTATIC_BIAS, abs=0.05)
    selected = external.mock_psz(MASSIVE, FOOTPRINT)
    assert (selected.SNR >= PSZ2_SNR_MIN).all()
    assert selected.redshift.isna().mean() == pytest.approx(0.25, abs=0.2)


def test_a_cluster_entry_does_not_depend_on_the_footprint():
    small = ConeFootprint(ra=120.0, dec=10.0, radius_deg=0.3)
    for make, spec in ((external.mock_redmapper, SPEC), (external.mock_psz, MASSIVE)):
        inner = make(spec, small).set_index("target_id")
        outer = make(spec, FOOTPRINT).set_index("target_id")
        assert len(inner) > 0
        pd.testing.assert_frame_equal(inner, outer.loc[inner.index])


def test_unknown_catalog_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        external.pixel_catalog("act", SPEC, 0)
