"""The mock survey: a simulated universe of clusters seen by Chandra-, Planck- and SDSS-like
instruments, with mock external catalogs of the same clusters (see README).

Imported by the mock source (``sources.build_source``), training and validation; never by the
job path itself.
"""

from survey_mass.mock.external import mock_psz, mock_redmapper, mock_weak_lensing
from survey_mass.mock.source import RENDERERS, MockSource
from survey_mass.mock.universe import cluster, clusters_in

__all__ = [
    "RENDERERS",
    "MockSource",
    "cluster",
    "clusters_in",
    "mock_psz",
    "mock_redmapper",
    "mock_weak_lensing",
]
