"""Summary-statistic baselines: calibrated on training clusters only, then predict held-out masses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from survey_mass.mock import RENDERERS, optical
from survey_mass.mock.universe import UNIVERSE_ORDER, clusters_in
from survey_mass.physics.cosmology import efunc
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import ConeFootprint
from survey_mass.spec.universe import UniverseSpec
from survey_mass.validate.baselines import ScalingRelation, make_baseline, richness_count


def _sample(spec: UniverseSpec, n: int) -> pd.DataFrame:
    footprint = ConeFootprint(ra=200.0, dec=30.0, radius_deg=1.5)
    frames = [
        clusters_in(spec, footprint, UNIVERSE_ORDER, p)
        for p in footprint_pixels(footprint, UNIVERSE_ORDER)
    ]
    return pd.concat(frames, ignore_index=True).head(n)


def _held_out_residuals(instrument: str, spec: UniverseSpec, sample: pd.DataFrame) -> np.ndarray:
    cutouts = [RENDERERS[instrument](state, spec.seed) for _, state in sample.iterrows()]
    train = np.arange(len(sample)) % 2 == 0
    baseline = make_baseline(instrument)
    baseline.fit(
        [c for c, t in zip(cutouts, train, strict=True) if t],
        sample.z[train],
        sample.log10_m500[train],
    )
    fitted = (baseline.relation.intercept, baseline.relation.slope)
    predicted = baseline.predict(
        [c for c, t in zip(cutouts, train, strict=True) if not t], sample.z[~train]
    )
    assert (baseline.relation.intercept, baseline.relation.slope) == fitted  # predict never refits
    return predicted - sample.log10_m500[~train].to_numpy()


def test_scaling_relation_recovers_a_known_law():
    rng = np.random.default_rng(1)
    z = rng.uniform(0.1, 0.8, 200)
    log_m = rng.uniform(14, 15, 200)
    proxy = 10 ** ((log_m - 2.0) / 0.5) * efunc(z) ** (7 / 3)  # log M = 2 + 0.5 log(O / E^7/3)
    relation = ScalingRelation(7 / 3).fit(proxy, z, log_m)
    assert (relation.intercept, relation.slope) == pytest.approx((2.0, 0.5))
    np.testing.assert_allclose(relation.predict(proxy, z), log_m)


def test_scaling_relation_says_what_is_missing():
    with pytest.raises(RuntimeError, match="call fit"):
        ScalingRelation(0.0).predict([10.0], [0.2])
    with pytest.raises(ValueError, match="at least 3"):
        ScalingRelation(0.0).fit([1.0, -1.0], [0.1, 0.2], [14.0, 14.5])
    with pytest.raises(ValueError, match="xray, sz or optical"):
        make_baseline("radio")


def test_core_excised_lx_baseline_predicts_held_out_masses():
    spec = UniverseSpec(seed=5, density_scale=30)
    sample = _sample(spec, 200)
    delta = _held_out_residuals("xray", spec, sample)
    assert abs(delta.mean()) < 0.03
    assert delta.std() < 0.13  # ~0.1 dex: core-excised L_X scatter 0.2 in ln over slope 1.6
    assert delta.std() < 0.7 * sample.log10_m500.std()


def test_aperture_y_baseline_predicts_massive_clusters():
    spec = UniverseSpec(seed=5, log10_m500_min=14.6, z_max=0.5, density_scale=300)
    sample = _sample(spec, 120)
    delta = _held_out_residuals("sz", spec, sample)
    assert abs(delta.mean()) < 0.04
    assert delta.std() < 0.8 * sample.log10_m500.std()  # informative, but Planck noise hurts


def test_richness_count_baseline_at_low_redshift():
    """Weak but real: the count tracks the members (lambda), hence mass, where SDSS reaches 0.2 L*."""
    spec = UniverseSpec(seed=5, z_max=0.35, density_scale=30)
    sample = _sample(spec, 160)
    delta = _held_out_residuals("optical", spec, sample)
    assert abs(delta.mean()) < 0.04
    assert delta.std() < 0.92 * sample.log10_m500.std()
    rich = sample[sample.richness_true > 30].head(40)
    counts = [richness_count(RENDERERS["optical"](s, spec.seed), s.z) for _, s in rich.iterrows()]
    members = [
        optical.lambda_members(s.stream, s.richness_true, spec.seed) for _, s in rich.iterrows()
    ]
    assert np.corrcoef(np.log(np.clip(counts, 1, None)), np.log(members))[0, 1] > 0.5
