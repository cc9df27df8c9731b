"""Crossmatch a mass catalog partition by partition.

The crossmatch walks the partitions one at a time (``catalog.reader.iter_partitions``) against a
reference catalog's margin cache (match.partitioned_match), so memory holds one partition and the
matches, whatever the catalog's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from survey_mass.catalog.reader import iter_partitions, read_mass_catalog
from survey_mass.crossmatch.match import (
    MarginCache,
    MatchSpec,
    join_pairs,
    margin_order,
    partitioned_match,
)


def match_catalog(
    catalog: str,
    reference: pd.DataFrame,
    spec: MatchSpec,
    *,
    columns: Sequence[str] | None = None,
    suffixes: tuple[str, str] = ("_pred", "_ref"),
) -> pd.DataFrame:
    """Crossmatch a mass catalog against a reference table, partition by partition with margins.

    Returns the joined pairs (see match.join_pairs). With ``spec.r500_fraction`` the largest radius
    is found first from the catalog's mass and z columns, so the margins are wide enough.
    """
    max_radius = spec.radius
    if spec.r500_fraction is not None:
        sizes = read_mass_catalog(catalog, [spec.mass_column, "z"])
        if len(sizes):
            max_radius = max(spec.radii(sizes).max(), spec.radius)
    cache = MarginCache(reference, margin_order(max_radius), max_radius)
    joined = []
    for order, pixel, rows in iter_partitions(catalog, columns):
        pairs = partitioned_match(
            [(order, pixel, rows)], reference, spec, cache=cache, max_radius=max_radius
        )
        if len(pairs):  # keep only matched rows: memory stays one partition + the matches
            joined.append(join_pairs(rows, reference, pairs, suffixes))
    if not joined:
        return join_pairs(rows, reference, pairs, suffixes)  # no match: empty, with every column
    return pd.concat(joined, ignore_index=True)
