"""Crossmatch: identical to astropy's search_around_sky, whole-sky or partition by partition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, match_coordinates_sky, search_around_sky

from survey_mass.catalog.query import cone_search
from survey_mass.catalog.reader import list_partitions, read_mass_catalog
from survey_mass.crossmatch.match import (
    MarginCache,
    MatchError,
    MatchSpec,
    partitioned_sky_match,
    sky_match,
)
from survey_mass.crossmatch.partitions import match_catalog
from survey_mass.pixel_math import healpix

from support.mass_catalog_factory import write_mass_catalog


def _uniform(rng, n):
    return rng.uniform(0.0, 360.0, n), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))


def _hard_sky(
    seed: int, n: int = 1000, edge_order: int = 2, jitter_deg: float = 1.0
) -> pd.DataFrame:
    """Uniform sky plus crowds at both poles, on RA = 0/360 and on HEALPix pixel edges."""
    rng = np.random.default_rng(seed)
    ra, dec = _uniform(rng, n)
    pole_ra = rng.uniform(0, 360, n // 5)
    pole_dec = np.where(rng.random(n // 5) < 0.5, 1, -1) * (90.0 - rng.uniform(0, 1.5, n // 5))
    wrap_ra = rng.normal(0.0, 0.5, n // 5) % 360.0
    wrap_dec = rng.uniform(-60, 60, n // 5)
    hp = healpix(edge_order)
    lon, lat = hp.boundaries_lonlat(rng.integers(0, hp.npix, n // 10), step=2)
    edge_ra = lon.to_value(u.deg).ravel() + rng.normal(0, jitter_deg / 3, lon.size)
    edge_dec = np.clip(
        lat.to_value(u.deg).ravel() + rng.normal(0, jitter_deg / 3, lat.size), -90, 90
    )
    ra = np.concatenate([ra, pole_ra, wrap_ra, edge_ra % 360.0])
    dec = np.concatenate([dec, pole_dec, wrap_dec, edge_dec])
    return pd.DataFrame(
        {
            "ra": ra,
            "dec": dec,
            "z": rng.uniform(0.02, 1.0, ra.size),
            "logm500": rng.uniform(14.0, 15.3, ra.size),
        }
    )


def _astropy_pairs(left, right, seplimit):
    c1 = SkyCoord(left["ra"].to_numpy() * u.deg, left["dec"].to_numpy() * u.deg)
    c2 = SkyCoord(right["ra"].to_numpy() * u.deg, right["dec"].to_numpy() * u.deg)
    i1, i2, sep, _ = search_around_sky(c1, c2, seplimit)
    order = np.lexsort((i2, i1))
    return i1[order], i2[order], sep.to_value(u.arcsec)[order]


@pytest.fixture(scope="module")
def skies():
    return _hard_sky(1), _hard_sky(2)


def test_all_pairs_equal_astropy_including_poles_and_ra_wrap(skies):
    left, right = skies
    spec = MatchSpec(radius=1.0 * u.deg, mode="all")
    i1, i2, sep = _astropy_pairs(left, right, 1.0 * u.deg)
    ours = sky_match(left, right, spec)
    assert len(i1) > 1000
    np.testing.assert_array_equal(ours["left"], i1)
    np.testing.assert_array_equal(ours["right"], i2)
    np.testing.assert_array_equal(ours["sep_arcsec"], sep)
    # the hard regions do produce pairs: across RA = 0/360 and near both poles
    l_ra, r_ra = left["ra"].to_numpy()[i1], right["ra"].to_numpy()[i2]
    assert np.any(np.abs(l_ra - r_ra) > 300)
    assert np.any(left["dec"].to_numpy()[i1] > 89) and np.any(left["dec"].to_numpy()[i1] < -89)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_partitioned_match_loses_no_edge_pair(skies, order):
    left, right = skies
    spec = MatchSpec(radius=1.0 * u.deg, mode="all")
    whole = sky_match(left, right, spec)
    parts = partitioned_sky_match(left, right, spec, order=order)
    pd.testing.assert_frame_equal(parts, whole)


def test_partitioned_per_row_r500_radius_equals_astropy(skies):
    left, right = skies
    spec = MatchSpec(radius=20 * u.arcmin, mode="all", r500_fraction=8.0)
    radii = spec.radii(left)
    assert radii.min() < 10 * u.arcmin < 60 * u.arcmin < radii.max()  # the radius really varies
    i1, i2, sep = _astropy_pairs(left, right, radii)
    whole = sky_match(left, right, spec)
    np.testing.assert_array_equal(whole["left"], i1)
    np.testing.assert_array_equal(whole["right"], i2)
    np.testing.assert_array_equal(whole["sep_arcsec"], sep)
    pd.testing.assert_frame_equal(partitioned_sky_match(left, right, spec, order=2), whole)


def test_nearest_mode_is_astropys_nearest_neighbour_within_radius(skies):
    left, right = skies
    radius = 0.7 * u.deg
    idx, sep, _ = match_coordinates_sky(
        SkyCoord(left["ra"].to_numpy() * u.deg, left["dec"].to_numpy() * u.deg),
        SkyCoord(right["ra"].to_numpy() * u.deg, right["dec"].to_numpy() * u.deg),
    )
    within = np.flatnonzero(sep <= radius)
    spec = MatchSpec(radius=radius, mode="nearest")
    for ours in (sky_match(left, right, spec), partitioned_sky_match(left, right, spec, order=2)):
        np.testing.assert_array_equal(ours["left"], within)
        np.testing.assert_array_equal(ours["right"], idx[within])


def test_redshift_tolerance_absolute_and_scaled(skies):
    left, right = skies
    everything = sky_match(left, right, MatchSpec(radius=1.0 * u.deg, mode="all"))
    z_left = left["z"].to_numpy()[everything["left"]]
    dz = right["z"].to_numpy()[everything["right"]] - z_left
    np.testing.assert_allclose(everything["dz"], dz)
    absolute = sky_match(left, right, MatchSpec(radius=1.0 * u.deg, mode="all", dz=0.1))
    assert len(absolute) == np.sum(np.abs(dz) <= 0.1) > 0
    assert (absolute["dz"].abs() <= 0.1).all()
    scaled = sky_match(
        left, right, MatchSpec(radius=1.0 * u.deg, mode="all", dz=0.1, dz_scaled=True)
    )
    assert len(scaled) == np.sum(np.abs(dz) <= 0.1 * (1 + z_left))
    pd.testing.assert_frame_equal(
        partitioned_sky_match(
            left, right, MatchSpec(radius=1.0 * u.deg, mode="nearest", dz=0.1), order=2
        ),
        sky_match(left, right, MatchSpec(radius=1.0 * u.deg, mode="nearest", dz=0.1)),
    )


def test_missing_redshift_never_passes_a_redshift_test():
    left = pd.DataFrame({"ra": [10.0, 20.0], "dec": [0.0, 0.0], "z": [np.nan, 0.3]})
    right = pd.DataFrame({"ra": [10.0, 20.0], "dec": [0.0, 0.0], "z": [0.3, 0.3]})
    pairs = sky_match(left, right, MatchSpec(radius=1 * u.arcsec, dz=0.5))
    assert pairs["left"].tolist() == [1]
    assert len(sky_match(left, right, MatchSpec(radius=1 * u.arcsec))) == 2


def test_margin_cache_holds_rows_just_outside_a_pixel():
    hp = healpix(2)
    lon, lat = hp.healpix_to_lonlat(5)
    inside = pd.DataFrame({"ra": [lon.to_value(u.deg)], "dec": [lat.to_value(u.deg)]})
    # points 0.9 deg outside pixel 5's edge, found via its boundary
    b_lon, b_lat = hp.boundaries_lonlat(5, step=1)
    corner = SkyCoord(b_lon[0, 0], b_lat[0, 0])
    outward = corner.directional_offset_by(SkyCoord(lon, lat).position_angle(corner), 0.9 * u.deg)
    right = pd.DataFrame(
        {"ra": [outward.ra.deg, inside["ra"][0] + 180.0], "dec": [outward.dec.deg, 0.0]}
    )
    assert hp.lonlat_to_healpix(outward.ra, outward.dec) != 5
    cache = MarginCache(right, order=4, radius=1.0 * u.deg)
    assert cache.rows_for(2, 5).tolist() == [0]  # the far side of the sky is never a candidate
    far = right.assign(ra=right["ra"] + 90.0)
    assert MarginCache(far, order=4, radius=0.5 * u.deg).rows_for(2, 5).tolist() == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(radius=30.0), "astropy angle"),
        (dict(radius=3 * u.Mpc), "astropy angle"),
        (dict(radius=-1 * u.arcsec), "positive"),
        (dict(radius=1 * u.arcsec, mode="first"), "'nearest' or 'all'"),
        (dict(radius=1 * u.arcsec, dz=-0.1), "dz"),
    ],
)
def test_bad_match_spec_names_the_fix(kwargs, message):
    with pytest.raises(MatchError, match=message):
        MatchSpec(**kwargs)


def test_redshift_tolerance_without_z_column_is_an_error():
    frame = pd.DataFrame({"ra": [1.0], "dec": [1.0]})
    with pytest.raises(MatchError, match="'z' column in the left table"):
        sky_match(frame, frame.assign(z=0.1), MatchSpec(radius=1 * u.arcsec, dz=0.1))


@pytest.fixture(scope="module")
def mass_catalog(tmp_path_factory):
    rng = np.random.default_rng(7)
    n = 3000
    ra, dec = _uniform(rng, n)
    rows = pd.DataFrame(
        {
            "target_id": [f"T{i}" for i in range(n)],
            "ra": ra,
            "dec": dec,
            "z": rng.uniform(0.05, 0.9, n),
            "logm500": rng.uniform(14.0, 15.2, n),
        }
    )
    root = write_mass_catalog(tmp_path_factory.mktemp("cat") / "masses", rows, order=2)
    return root, rows


def test_cone_search_reads_only_partitions_it_touches(mass_catalog):
    root, rows = mass_catalog
    all_coords = SkyCoord(rows["ra"].to_numpy() * u.deg, rows["dec"].to_numpy() * u.deg)
    for ra, dec, radius in [(150.0, 2.0, 5.0), (359.5, -10.0, 4.0), (42.0, 89.0, 6.0)]:
        result = cone_search(root, ra, dec, radius)
        expected = all_coords.separation(SkyCoord(ra * u.deg, dec * u.deg)) <= radius * u.deg
        assert sorted(result.rows["target_id"]) == sorted(rows["target_id"][expected])
        assert expected.sum() > 0
        assert 0 < result.partitions_read <= 20 < result.partitions_total == 192


def test_catalog_match_partition_by_partition_equals_whole_sky_match(mass_catalog):
    root, rows = mass_catalog
    reference = _hard_sky(3, n=800)
    spec = MatchSpec(radius=1.5 * u.deg, mode="all", dz=0.3)
    joined = match_catalog(root, reference, spec)
    whole = read_mass_catalog(root)
    expected = sky_match(whole, reference, spec)
    got = set(zip(joined["target_id_pred"], joined["ra_ref"], strict=True))
    want = set(
        zip(
            whole["target_id"].to_numpy()[expected["left"]],
            reference["ra"].to_numpy()[expected["right"]],
            strict=True,
        )
    )
    assert got == want and len(want) > 100
    assert len(list_partitions(root)) == 192
    assert (joined["sep_arcsec"] <= 1.5 * 3600).all()
    assert {"logm500_pred", "logm500_ref", "dz"} <= set(joined.columns)


@pytest.mark.parametrize("mode", ["all", "nearest"])
def test_catalog_match_near_borders_poles_and_ra_wrap_equals_astropy(tmp_path, mode, monkeypatch):
    import survey_mass.crossmatch.match as match_module
    import survey_mass.crossmatch.partitions as partitions_module

    # small groups, so a match spans several groups of partitions as on a large catalog
    monkeypatch.setattr(match_module, "GROUP_ROWS", 150)
    monkeypatch.setattr(partitions_module, "GROUP_ROWS", 150)
    left = _hard_sky(11, n=1500, edge_order=2, jitter_deg=0.3)
    left["target_id"] = [f"L{i}" for i in range(len(left))]
    right = _hard_sky(12, n=1500, edge_order=2, jitter_deg=0.3)
    root = write_mass_catalog(tmp_path / "masses", left, order=2)
    radius = 0.5 * u.deg
    joined = match_catalog(root, right, MatchSpec(radius=radius, mode=mode))
    got = set(zip(joined["target_id_pred"], joined["ra_ref"], strict=True))
    c1 = SkyCoord(left["ra"].to_numpy() * u.deg, left["dec"].to_numpy() * u.deg)
    c2 = SkyCoord(right["ra"].to_numpy() * u.deg, right["dec"].to_numpy() * u.deg)
    if mode == "all":
        i1, i2, _, _ = search_around_sky(c1, c2, radius)
    else:
        i2, sep, _ = match_coordinates_sky(c1, c2)
        i1 = np.flatnonzero(sep <= radius)
        i2 = i2[i1]
    want = set(zip(left["target_id"].to_numpy()[i1], right["ra"].to_numpy()[i2], strict=True))
    assert got == want and len(want) > 300
    # the hard places do produce pairs: across RA = 0/360 and within 1 deg of a pole
    assert (np.abs(joined["ra_pred"] - joined["ra_ref"]) > 300).any()
    assert (np.abs(joined["dec_pred"]) > 89).any()
