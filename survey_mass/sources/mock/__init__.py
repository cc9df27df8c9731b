"""The mock survey: a simulated universe of clusters seen by Chandra-, Planck- and SDSS-like
instruments, with mock external catalogs and summary-statistic baselines (see README, issue 3)."""

from survey_mass.sources.mock.baselines import Baseline, ScalingRelation, make_baseline
from survey_mass.sources.mock.external import mock_psz, mock_redmapper, mock_weak_lensing
from survey_mass.sources.mock.source import RENDERERS, MockSource
from survey_mass.sources.mock.universe import UniverseSpec, cluster, clusters_in

__all__ = [
    "RENDERERS",
    "Baseline",
    "MockSource",
    "ScalingRelation",
    "UniverseSpec",
    "cluster",
    "clusters_in",
    "make_baseline",
    "mock_psz",
    "mock_redmapper",
    "mock_weak_lensing",
]
