"""Users read catalogs: read-only SQL and cone searches that prune partitions."""

from __future__ import annotations

import pytest

from survey_mass.catalog.query import cone_search, query
from survey_mass.cli import main
from survey_mass.errors import UserError
from survey_mass.spec.footprint import ConeFootprint

from support.layout import current_root


def test_sql_reads_the_catalog_and_the_quarantine(mock_catalog):
    _, root, summary = mock_catalog
    n = query(str(root), "SELECT count(*) AS n FROM catalog")["n"][0]
    assert n == summary.rows
    q = query(str(root), "SELECT count(*) AS n FROM quarantine")["n"][0]
    assert q == summary.quarantined


@pytest.mark.parametrize(
    "sql",
    [
        "COPY catalog TO 'stolen.csv'",
        "ATTACH 'other.db' AS other",
        "CREATE TABLE t AS SELECT 1",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "SELECT 1; DROP VIEW catalog",
    ],
)
def test_queries_cannot_write_attach_or_read_other_files(mock_catalog, sql):
    _, root, _ = mock_catalog
    with pytest.raises(UserError):
        query(str(root), sql)
    assert not (root / "stolen.csv").exists()


def test_cone_search_matches_a_full_scan_and_reads_fewer_partitions(mock_catalog):
    _, root, _ = mock_catalog
    everything = query(str(root), "SELECT target_id, ra, dec FROM catalog")
    ra, dec, radius = 210.3, -5.2, 0.45
    result = cone_search(str(root), ra, dec, radius)
    inside = ConeFootprint(ra=ra, dec=dec, radius_deg=radius).contains(
        everything["ra"], everything["dec"]
    )
    assert sorted(result.rows["target_id"]) == sorted(everything["target_id"][inside])
    assert len(result.rows) > 0
    # hats itself says which partitions the cone touches: exactly those are read
    import hats

    touched = hats.read_hats(current_root(root) / "masses").filter_by_cone(ra, dec, radius * 3600)
    assert result.partitions_read == len(touched.get_healpix_pixels())
    far = cone_search(str(root), 30.0, 60.0, 0.5)
    assert far.partitions_read == 0 and len(far.rows) == 0


def test_cone_command_prints_partitions_read(mock_catalog, capsys):
    _, root, _ = mock_catalog
    assert main(["query", str(root), "--cone", "210.3", "-5.2", "0.3"]) == 0
    assert "partitions" in capsys.readouterr().out


def test_a_query_with_no_rows_says_so_with_its_columns(mock_catalog, capsys):
    _, root, _ = mock_catalog
    sql = "SELECT target_id, logm500 FROM catalog WHERE logm500 > 99"
    assert main(["query", str(root), sql]) == 0
    assert capsys.readouterr().out == "(no rows; columns: target_id, logm500)\n"
    assert main(["query", str(root), sql, "--csv"]) == 0
    assert capsys.readouterr().out == "target_id,logm500\n"
