"""The stratified calibration sample: the wide cone's massive clusters replace the cone's own,
weighted by the ratio of the areas, so the sample still follows the mass function."""

from __future__ import annotations

import pandas as pd
import pytest

from survey_mass.errors import UserError
from survey_mass.validate.calibrate import cone_area, stratified


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["target_id", "z", "log10_m500"])


def test_massive_and_nearby_clusters_come_from_the_wide_cone_at_the_area_ratio():
    cone = frame([("a", 0.3, 14.0), ("b", 0.2, 14.7), ("c", 0.6, 14.8), ("g", 0.05, 14.0)])
    wide = frame(  # b is massive at low z, g and h are nearby: all three from the wide cone
        [("b", 0.2, 14.7), ("d", 0.1, 14.9), ("e", 0.35, 14.6), ("f", 0.3, 14.2)]
        + [("g", 0.05, 14.0), ("h", 0.08, 13.95)]
    )
    sample, weight = stratified(cone, wide, radius=5.0, wide_radius=20.0)
    assert list(sample["target_id"]) == ["a", "c", "b", "d", "e", "g", "h"]  # f: in the bulk
    ratio = cone_area(5.0) / cone_area(20.0)
    assert list(weight) == [1.0, 1.0, ratio, ratio, ratio, ratio, ratio]
    assert cone_area(90.0) == pytest.approx(41252.96 / 2, rel=1e-4)  # half the sky


def test_a_wide_cone_narrower_than_the_calibration_cone_is_refused():
    with pytest.raises(UserError, match="ask --massive for more clusters"):
        stratified(frame([]), frame([]), radius=8.0, wide_radius=5.0)


def test_planck_detections_of_any_mass_and_redshift_come_from_the_wide_cone_too():
    cone = frame([("a", 0.5, 14.3), ("c", 0.6, 14.1)])
    wide = frame([("a", 0.5, 14.3), ("i", 0.7, 14.4), ("j", 0.7, 14.0)])
    sample, weight = stratified(cone, wide, 5.0, 20.0, detected=frozenset({"a", "i"}))
    assert list(sample["target_id"]) == ["c", "a", "i"]  # j: bulk, not detected
    assert list(weight)[1:] == [cone_area(5.0) / cone_area(20.0)] * 2
