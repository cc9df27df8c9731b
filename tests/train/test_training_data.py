"""Training sets: the mass-function sample plus a massive tail, never the same cluster twice."""

from __future__ import annotations

import numpy as np
import pytest

from survey_mass.spec.universe import UniverseSpec
from survey_mass.train.data import TAIL_ID_PREFIX, training_set
from survey_mass.train.spec import TailSpec, TrainSpec


def test_a_tail_adds_massive_clusters_with_their_own_ids():
    universe = UniverseSpec(seed=1001, physics="v2", z_max=0.3)
    tail = TailSpec(n_clusters=12, log10_m500_min=14.6)
    images, table = training_set(universe, 30, "sz", progress=False, tail=tail)
    assert len(images) == len(table) and table["target_id"].is_unique
    main, extra = table[~table["tail"]], table[table["tail"]]
    assert len(main) == 30 and len(extra) == 12
    assert extra["target_id"].str.startswith(TAIL_ID_PREFIX).all()
    assert (extra["log10_m500"] >= 14.6).all()
    assert np.median(main["log10_m500"]) < 14.3  # the mass function: mostly small clusters
    plain, _ = training_set(universe, 30, "sz", progress=False)
    np.testing.assert_array_equal(plain, images[:30])  # the main sample is unchanged by a tail


def test_the_manifest_prior_names_the_population_and_its_tail():
    spec = TrainSpec(
        instrument="xray",
        ensemble="xray-test",
        out="unused",
        universe=UniverseSpec(seed=7, physics="v2"),
        tail=TailSpec(n_clusters=50),
    )
    prior = spec.prior()
    assert prior["log10_m500"] == [13.9, 15.4] and prior["physics"] == "v2"
    assert prior["tail"] == {"n_clusters": 50, "log10_m500_min": 14.5}
    with pytest.raises(ValueError, match="n_clusters"):
        TailSpec(n_clusters=0)


def test_held_out_metrics_leave_the_tail_out():
    from survey_mass.train.evaluate import mass_function_part

    record = {"file": "fold0.keras", "test_ids": ["MOCK-1", "tail:MOCK-2", "MOCK-3"]}
    record["test_pred"] = [14.0, 14.9, 14.2]
    part = mass_function_part(record)
    assert part["test_ids"] == ["MOCK-1", "MOCK-3"] and part["test_pred"] == [14.0, 14.2]
    assert record["test_ids"][1] == "tail:MOCK-2"  # the record itself is unchanged
