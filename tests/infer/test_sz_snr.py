"""The y map's matched-filter S/N: unit spread on noise, and the cluster's amplitude over it."""

from __future__ import annotations

import numpy as np
import pytest

from survey_mass.constants import SZ_GRID
from survey_mass.infer.sz_snr import _filter_tables, matched_filter_snr
from survey_mass.mock.sz_v2 import noise_map_v2


def noise_maps(seed: int, n: int) -> np.ndarray:
    """Crops of the v2 noise (the real Planck cutout's power spectrum), as the mock's maps."""
    rng = np.random.default_rng(seed)
    pad = 16
    return np.array([noise_map_v2(rng, SZ_GRID + 2 * pad)[pad:-pad, pad:-pad] for _ in range(n)])


def test_noise_alone_has_unit_spread_and_rarely_reaches_the_detection_class():
    snr = matched_filter_snr(noise_maps(1, 300)[..., None], np)
    assert snr.std() == pytest.approx(1.0, abs=0.15)
    assert abs(np.median(snr)) < 0.5
    assert np.mean(snr >= 3.0) < 0.02


def test_a_cluster_in_the_map_is_measured_as_its_amplitude_over_the_noise():
    noise = noise_maps(2, 200)
    unresolved = np.fft.ifft2(_filter_tables(SZ_GRID)[0][0]).real  # the beam at the centre
    base = matched_filter_snr(noise, np)
    rms = noise.std()
    strong = matched_filter_snr(noise + 3 * rms * unresolved, np)
    stronger = matched_filter_snr(noise + 6 * rms * unresolved, np)
    assert np.median(strong - base) > 3.0  # the beam-sized source stands out of the noise
    assert np.median(stronger - base) == pytest.approx(2 * np.median(strong - base), rel=0.1)
    assert matched_filter_snr(np.zeros((0, SZ_GRID, SZ_GRID)), np).shape == (0,)


def test_a_bright_cluster_does_not_count_as_its_own_noise():
    """S/N grows with the amplitude up to the brightest Planck clusters (~100 sigma): measured
    on the map with the cluster in, the noise of the few lowest-l modes would cap it near 30."""
    noise = noise_maps(3, 100)
    unresolved = np.fft.ifft2(_filter_tables(SZ_GRID)[0][0]).real
    unit = noise.std() * unresolved
    gain = {a: np.median(matched_filter_snr(noise + a * unit, np)) / a for a in (10, 30, 100)}
    assert gain[30] == pytest.approx(gain[10], rel=0.1)
    assert gain[100] == pytest.approx(gain[10], rel=0.1)


def snr_of_mock_clusters(radius_deg: float, **universe) -> np.ndarray:
    """The S/N of v2 mock y-map cutouts of a universe's clusters, through the production
    preprocessing (the model grid)."""
    from survey_mass.mock.source import MockSource
    from survey_mass.preprocess.sz import preprocess_sz
    from survey_mass.sources.base import Target
    from survey_mass.spec.footprint import ConeFootprint
    from survey_mass.spec.universe import UniverseSpec
    from survey_mass.validate.truth import mock_truth

    spec = UniverseSpec(seed=3, physics="v2", **universe)
    truth = mock_truth(spec, ConeFootprint(ra=150.0, dec=20.0, radius_deg=radius_deg)).head(40)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in truth.itertuples()]
    prepared = preprocess_sz(list(MockSource(spec).cutouts(targets, "sz")), np)
    assert len(prepared.cutouts) == len(targets)
    return matched_filter_snr(prepared.inputs, np)


def test_planck_like_maps_detect_massive_nearby_clusters_and_not_the_distant_bulk():
    # dense universes (density_scale) give 40 clusters in a small cone: drawing a 30 deg cone of
    # the rare massive ones took 35 s, for the same population
    massive = snr_of_mock_clusters(
        3.0, density_scale=100, log10_m500_min=14.7, z_min=0.1, z_max=0.3
    )
    bulk = snr_of_mock_clusters(1.0, density_scale=25, log10_m500_max=14.1, z_min=0.5)
    assert np.median(massive) > 5.0 and np.mean(massive >= 4.5) > 0.6
    assert abs(np.median(bulk)) < 1.0 and np.mean(bulk >= 4.5) < 0.05
