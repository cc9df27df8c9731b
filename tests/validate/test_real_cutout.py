"""The SZ entries on the real Planck y cutout: the geometry and units of real data pass through."""

from __future__ import annotations

import json

import pytest

from survey_mass.cli import main
from survey_mass.validate.real_cutout import weigh_real_planck_cutout


@pytest.mark.parametrize("entry", ["sz-v1", "sz-v2"])
def test_an_sz_entry_weighs_the_real_cutout_near_its_planck_mass(entry, shared_data):
    row = weigh_real_planck_cutout(shared_data / "deepplanck", entry)
    assert row["msz_log10_m500"] == pytest.approx(14.674, abs=1e-3)  # DeepPlanck.csv
    assert row["deepplanck_log10_m500"] == pytest.approx(14.644, abs=1e-3)
    assert row["z"] == pytest.approx(0.1496, abs=1e-4)
    # a massive, well-detected cluster: real noise and a real beam must not send the entry astray
    # (its true mass is unknown: MSZ is hydrostatic, about 0.1 dex low)
    assert abs(row["log10_m500"] - row["msz_log10_m500"]) < 0.3
    assert not row["prior_dominated"] and 0 < row["sigma_dex"] < 0.3


def test_the_cli_prints_the_row_and_names_a_missing_folder(shared_data, tmp_path, capsys):
    assert (
        main(
            ["zoo", "real-cutout", "--model", "sz-v1", "--source", str(shared_data / "deepplanck")]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["cluster"] == "PSZ2G359.07-32.12"
    assert main(["zoo", "real-cutout", "--source", str(tmp_path)]) == 2
    assert "pass --source DIR" in capsys.readouterr().err
