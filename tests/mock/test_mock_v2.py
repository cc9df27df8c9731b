"""The simulator's version switch (issue 15): v1 unchanged by default, v2's realistic physics."""

from __future__ import annotations

import numpy as np
import pytest

from survey_mass.mock import RENDERERS, physics_v2, universe, xray
from survey_mass.mock.external import pixel_catalog
from survey_mass.mock.sky_sample import sky_catalog, sky_clusters
from survey_mass.mock.sz_v2 import noise_map_v2
from survey_mass.mock.xray_v2 import exposure_map, fov_arcmin
from survey_mass.preprocess.xray import flat_field, preprocess_xray
from survey_mass.sources.base import Cutout, Target
from survey_mass.spec.universe import UniverseSpec

V1, V2 = UniverseSpec(), UniverseSpec(physics="v2")
PIXEL = 70000


def test_v1_is_the_default_and_serialises_as_before():
    assert V1.physics == "v1" and UniverseSpec(physics="v1") == V1
    assert "physics" not in V1.model_dump() and "physics" not in V1.model_dump(mode="json")
    assert V2.model_dump()["physics"] == "v2"
    assert UniverseSpec.model_validate(V2.model_dump()) == V2
    with pytest.raises(ValueError):
        UniverseSpec(physics="v3")


def test_v2_draws_the_same_clusters_with_other_observables():
    a, b = universe.base_pixel_clusters(V1, PIXEL), universe.base_pixel_clusters(V2, PIXEL)
    assert len(a) == len(b) > 0
    for col in ("ra", "dec", "z", "log10_m500", "stream", "merger"):
        np.testing.assert_array_equal(a[col], b[col])
    assert "physics" not in a.columns and (b["physics"] == "v2").all()
    # hydrostatic bias in the signal: Y of the relation at (1-b) M, ~(0.8)^1.79 of v1's on average
    m = 10 ** b["log10_m500"].to_numpy()
    dev = np.log(b["y500_da2"] / physics_v2.y500_da2_hse(m, b["z"].to_numpy()))
    assert abs(np.mean(dev)) < 0.12 and np.median(b["y500_da2"] / a["y500_da2"]) < 0.9


def test_mock_msz_is_hydrostatic_like():
    sample = sky_clusters(UniverseSpec(physics="v2", log10_m500_min=14.3), 4000.0)
    psz2 = sky_catalog("psz2", V2, sample).dropna(subset=["MSZ"])
    bright = psz2[psz2["SNR"] > 10]
    ratio = np.median(np.log10(bright["MSZ"] * 1e14) - bright["log10_m500_true"])
    # low by (1-b), less the Malmquist bias of an S/N-selected sample: +0.04 dex on 16,000 deg^2
    # (444 detections, 65 at S/N > 10); the median of this sample's ~16 has ~0.03 dex error
    hse = np.log10(physics_v2.HSE_ONE_MINUS_B)
    assert hse - 0.03 < ratio < hse + 0.07 and ratio < -0.02


def test_sdss_depth_scale_matches_the_real_catalogue_floor():
    """S(z) = 1 to z 0.35; above, the real catalogue's lowest lambda per bin / 20 (sdss DR8)."""
    assert physics_v2.depth_scale([0.1, 0.3, 0.35]) == pytest.approx([1, 1, 1])
    real_floor = {0.40: 24.8, 0.45: 31.7, 0.50: 42.8}
    for z, lam_min in real_floor.items():
        assert physics_v2.depth_scale(z) == pytest.approx(lam_min / 20.0, rel=0.1)


def test_k_correction_and_band_fractions():
    assert physics_v2.k_correction(5.0, 0.0) == pytest.approx(1.0)
    frac = physics_v2.band_fraction(5.0, 0.5, 7.0)
    assert 0.5 < frac < 1.0
    # at z = 1 the observed band is rest-frame 1-14 keV: a 2 keV spectrum emits little there
    assert physics_v2.k_correction(2.0, 1.0) < 0.9 < physics_v2.k_correction(8.0, 1.0)


def test_v2_catalogs_have_the_v1_columns():
    for kind in ("psz2", "redmapper", "weak_lensing"):
        a = pixel_catalog(kind, V1, PIXEL, select=False)
        b = pixel_catalog(kind, V2, PIXEL, select=False)
        assert list(a.columns) == list(b.columns) and len(a) == len(b)


def test_v2_y_noise_rms():
    maps = [noise_map_v2(np.random.default_rng(k), 128)[16:-16, 16:-16] for k in range(8)]
    assert np.mean([m.std() for m in maps]) == pytest.approx(1.6e-6, rel=0.1)


def _state(z: float):
    frame = universe.base_pixel_clusters(V2, PIXEL)
    state = frame.iloc[0].copy()
    state["z"] = z
    return state


def test_acis_field_of_view_at_low_and_high_z():
    low = RENDERERS["xray"](_state(0.03), 42)
    emap = low["EXPMAP"].data
    assert emap.shape == low[0].data.shape
    assert (emap == 0).mean() > 0.5  # 4 Mpc at z 0.03 is ~110': ACIS-I's 16.9' sees a corner
    assert not low[0].data[emap == 0].any()  # no photons where no chip looks
    high = RENDERERS["xray"](_state(0.6), 42)
    assert (high["EXPMAP"].data > 0.5).mean() > 0.9  # 4 Mpc at z 0.6 is ~10': on the chips
    assert fov_arcmin() == pytest.approx(16.9, abs=0.05)
    # chip gaps: with no roll and no aim offset, the pixels along the array's cross see nothing
    state = _state(0.5)
    state["xray_roll"], state["xray_aim_dx"], state["xray_aim_dy"] = 0.0, 0.0, 0.0
    fine = exposure_map(state, 400, 0.05)  # 20' at 0.05' pixels
    assert not fine[199:201].any() and not fine[:, 199:201].any()
    assert fine[100, 100] > 0.85 and not fine[0, 0]  # on a chip; off the 16.9' array


def _exposure_by_formula(state, npix, pixel_arcmin):
    """The exposure map written out as array expressions: what the compiled loop must equal."""
    offsets = ((np.arange(4) + 0.5) / 4 - 0.5) * pixel_arcmin
    grid = (np.arange(npix) - (npix - 1) / 2) * pixel_arcmin
    x = grid[None, :, None, None] + offsets[None, None, None, :] - state.xray_aim_dx
    y = grid[:, None, None, None] + offsets[None, None, :, None] - state.xray_aim_dy
    c, s = np.cos(state.xray_roll), np.sin(state.xray_roll)
    u, v = c * x + s * y, -s * x + c * y
    half, gap = 1024 * 0.492 / 60 + 9 * 0.492 / 60, 9 * 0.492 / 60
    on_chip = (np.abs(u) <= half) & (np.abs(v) <= half) & (np.abs(u) >= gap) & (np.abs(v) >= gap)
    return (on_chip * (1 - 0.15 * np.hypot(u, v) / 10)).mean(axis=(2, 3))


@pytest.mark.parametrize("z", [0.03, 0.2, 0.6])
def test_exposure_map_equals_its_formula(z):
    state = _state(z)
    state["xray_roll"], state["xray_aim_dx"], state["xray_aim_dy"] = 0.7, 0.4, -0.3
    pixel_arcmin = xray._pixel_arcmin(state, 128)
    fast = exposure_map(state, 128, pixel_arcmin)
    expected = _exposure_by_formula(state, 128, pixel_arcmin)
    np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(fast.astype(np.float32), expected.astype(np.float32))
    assert 0 < fast.max() <= 1 and fast.min() == 0  # the chip gaps cross every cutout


def test_preprocessing_flat_fields_and_zeroes_unobserved_sky():
    state = _state(0.03)
    hdul = RENDERERS["xray"](state, 42)
    target = Target(state.target_id, state.ra, state.dec, state.z)
    cutout = Cutout(target, "xray", hdul)
    flat = flat_field(cutout)
    emap = hdul["EXPMAP"].data
    assert np.isfinite(flat.hdul[0].data).all() and "EXPMAP" not in flat.hdul
    prepared = preprocess_xray([cutout], np)
    assert not prepared.failures
    image = prepared.inputs[0, ..., 0]
    corners = emap == 0
    assert np.abs(image[corners]).max() < 1e-3  # off-chip: background level, i.e. no signal
    v1 = RENDERERS["xray"](universe.base_pixel_clusters(V1, PIXEL).iloc[0], 42)
    plain = Cutout(target, "xray", v1)
    assert flat_field(plain) is plain  # no EXPMAP: untouched (what xray-v1 was trained on)


def test_a_planck_detection_is_seen_in_its_own_y_map_cutout():
    """The catalogue's noise is the cutout's own, so a cluster that PSZ2 detects (S/N >= 4.5) is
    bright in its cutout too: with independent noise, 1 in 8 scored below 3 there."""
    from survey_mass.infer.sz_snr import matched_filter_snr
    from survey_mass.mock.external import mock_psz
    from survey_mass.mock.source import MockSource
    from survey_mass.preprocess.sz import preprocess_sz
    from survey_mass.spec.footprint import ConeFootprint
    from survey_mass.validate.truth import mock_truth

    spec = UniverseSpec(seed=11, physics="v2", log10_m500_min=14.4, z_max=0.6)
    cone = ConeFootprint(ra=200.0, dec=40.0, radius_deg=15.0)
    detected = mock_psz(spec, cone).query("SNR >= 4.5")
    truth = mock_truth(spec, cone).set_index("target_id").loc[detected["target_id"]]
    targets = [Target(i, r.ra, r.dec, r.z) for i, r in truth.iterrows()]
    maps = preprocess_sz(list(MockSource(spec).cutouts(targets, "sz")), np).inputs
    snr = matched_filter_snr(maps, np)
    assert len(snr) >= 20
    assert np.mean(snr < 3.0) <= 0.05
    assert np.std(np.log(np.clip(snr, 0.5, None) / detected["SNR"].to_numpy())) < 0.2
