"""Crossmatch a mass catalog partition by partition.

The crossmatch walks the partitions in order (``catalog.reader.iter_partitions``), gathering
consecutive ones into groups of at most ~``GROUP_ROWS`` left rows (a partition is never split), and
matches each group against the reference's margin cache (match.partitioned_match), so memory holds
one group and the matches, whatever the catalog's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from survey_mass.catalog.reader import iter_partitions, read_mass_catalog
from survey_mass.crossmatch.match import (
    GROUP_ROWS,
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
    joined, group, held = [], [], 0
    for part in iter_partitions(catalog, columns):
        group.append(part)
        held += len(part[2])
        if held >= GROUP_ROWS:  # small partitions are matched together, a group at a time
            joined.append(_match_group(group, reference, spec, cache, max_radius, suffixes))
            group, held = [], 0
    if group or not joined:
        joined.append(_match_group(group, reference, spec, cache, max_radius, suffixes))
    kept = [j for j in joined if len(j)] or joined[-1:]  # no match: empty, with every column
    return pd.concat(kept, ignore_index=True) if len(kept) > 1 else kept[0]


def _match_group(group, reference, spec, cache, max_radius, suffixes) -> pd.DataFrame:
    """Joined pairs of a group of partitions: memory holds the group and the matches."""
    pairs = partitioned_match(group, reference, spec, cache=cache, max_radius=max_radius)
    rows = pd.concat([r for _, _, r in group], ignore_index=True) if group else pd.DataFrame()
    return join_pairs(rows, reference, pairs, suffixes)
