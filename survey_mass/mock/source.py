"""The mock survey as a :class:`~survey_mass.sources.base.Source`: cutouts of known clusters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pandas as pd
from astropy.io import fits

from survey_mass.mock import universe
from survey_mass.mock.optical import optical_hdul
from survey_mass.mock.sz import sz_hdul
from survey_mass.mock.xray import xray_hdul
from survey_mass.sources.base import Cutout, CutoutFailure, Target
from survey_mass.spec.universe import UniverseSpec
from survey_mass.targets.rows import TARGET_COLUMNS

#: instrument -> renderer(hidden cluster state, seed) -> FITS
RENDERERS: dict[str, Callable[[pd.Series, int], fits.HDUList]] = {
    "xray": xray_hdul,
    "sz": sz_hdul,
    "optical": optical_hdul,
}


class MockSource:
    """Serves simulated cutouts for targets drawn from the mock universe."""

    name = "mock"

    def __init__(self, spec: UniverseSpec):
        self.spec = spec

    def targets_per_deg2(self) -> float:
        return universe.clusters_per_deg2(self.spec)

    def draw_targets(self, footprint, order: int, pixel: int) -> pd.DataFrame:
        """The universe's clusters inside ``footprint`` and shard pixel, as target rows."""
        clusters = universe.clusters_in(self.spec, footprint, order, pixel)
        return clusters[TARGET_COLUMNS].copy()

    def cutouts(
        self, targets: Iterable[Target], instrument: str
    ) -> Iterator[Cutout | CutoutFailure]:
        render = RENDERERS.get(instrument)
        for target in targets:
            if render is None:
                yield CutoutFailure(
                    target,
                    instrument,
                    "instrument_unavailable",
                    f"the mock survey does not simulate {instrument!r}",
                )
                continue
            try:
                state = universe.cluster(self.spec, target.target_id)
            except (ValueError, IndexError):
                yield CutoutFailure(
                    target,
                    instrument,
                    "not_in_mock_universe",
                    f"{target.target_id!r} is not a cluster of the mock universe "
                    f"(seed {self.spec.seed}); use source = 'real' for catalog targets",
                )
                continue
            yield Cutout(target, instrument, render(state, self.spec.seed))
