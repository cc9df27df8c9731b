"""Interpretation maps: the X-ray ensemble looks past the core, as in Ntampaka et al. (2019)."""

from __future__ import annotations

import numpy as np

from survey_mass.validate.interpret import xray_maps
from survey_mass.validate.metrics import radial_dn_over_n


def test_input_gradients_weigh_the_outskirts_more_than_the_core(mock_catalog):
    _, root, _ = mock_catalog
    maps = xray_maps(str(root), n=3)
    assert len(maps) == 3
    core, outskirts = [], []
    for m in maps:
        assert m.image.shape == m.change.shape == (128, 128)
        assert 10 < m.r500_pix < 50  # R500 of 0.3-1.5 Mpc on the 31 kpc grid
        edges, profile = radial_dn_over_n(m.image, m.change, m.r500_pix)
        centres = 0.5 * (edges[1:] + edges[:-1])
        core.append(np.nanmean(np.abs(profile[centres < 0.2])))
        outskirts.append(np.nanmean(np.abs(profile[(centres > 0.3) & (centres < 1.0)])))
    assert np.mean(outskirts) > 2 * np.mean(core)
