"""Sky + redshift matching of two cluster tables, whole or HEALPix partition by partition.

Pairs are found with astropy's ``search_around_sky``, so the sky test is exactly astropy's on the
same inputs. The partitioned version matches one left partition at a time against the right rows
inside that partition or within the match radius of its boundary (a *margin cache* built once per
right catalog), so a pair across a partition edge is found exactly as in a whole-sky match, while
a partition never needs the whole right catalog.

Result of every match: a DataFrame of pairs with ``left`` and ``right`` (positions in the inputs),
``sep_arcsec`` and ``dz`` (z_right - z_left); see :func:`join_pairs` for the joined table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky

from survey_mass.errors import UserError
from survey_mass.physics.relations import theta500
from survey_mass.pixel_math import (
    SPATIAL_INDEX_COLUMN,
    healpix,
    pixel_cone,
    pixels_at_order,
    radec_to_pixels,
    unit_vectors,
)

Mode = Literal["nearest", "all"]
PAIR_COLUMNS = ("left", "right", "sep_arcsec", "dz")
#: Left rows searched at once: consecutive small partitions are matched together up to this
GROUP_ROWS = 50_000
#: Margins are built this much wider than the radius, so rounding can only add candidates.
_MARGIN_SLACK = 1.0 + 1e-6


class MatchError(UserError):
    """Match inputs that cannot work as given; the message names the fix."""


@dataclass(frozen=True)
class MatchSpec:
    """How two tables match.

    ``radius``: an astropy angle. ``r500_fraction``: when set, each left row's radius is that
    fraction of its R500 angle (from ``mass_column`` and ``z``, ``constants.COSMOLOGY``); rows
    without mass or z use ``radius``. ``dz``: maximum |z_right - z_left| (``dz_scaled``: divided
    by 1 + z_left); rows without z never pass a redshift test. ``mode``: ``nearest`` keeps, per
    left row, the closest right row that passes (ties to the lower right position); ``all`` keeps
    every pair.
    """

    radius: u.Quantity
    dz: float | None = None
    dz_scaled: bool = False
    mode: Mode = "nearest"
    r500_fraction: float | None = None
    mass_column: str = "logm500"

    def __post_init__(self):
        if not isinstance(self.radius, u.Quantity) or self.radius.unit.physical_type != "angle":
            raise MatchError(
                f"match radius must be an astropy angle, e.g. 60 * u.arcsec; got {self.radius!r}"
            )
        if not self.radius.isscalar or self.radius <= 0 * u.arcsec:
            raise MatchError(f"match radius must be one positive angle; got {self.radius}")
        if self.mode not in ("nearest", "all"):
            raise MatchError(f"match mode must be 'nearest' or 'all'; got {self.mode!r}")
        if self.dz is not None and not self.dz >= 0:
            raise MatchError(f"redshift tolerance dz must be >= 0; got {self.dz}")
        if self.r500_fraction is not None and not self.r500_fraction > 0:
            raise MatchError(f"r500_fraction must be > 0; got {self.r500_fraction}")

    def read_columns(self, frame: pd.DataFrame) -> list[str]:
        """The columns of ``frame`` a pair search reads (positions, z, mass)."""
        wanted = ("ra", "dec", "z", self.mass_column) if self.r500_fraction else ("ra", "dec", "z")
        return [c for c in wanted if c in frame]

    def needs(self, frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
        """The read columns of ``frames`` stacked into one narrow table (no attrs): a wide table's
        other columns are never copied, partition by partition."""
        columns = self.read_columns(frames[0])
        return pd.DataFrame(
            {c: np.concatenate([_floats(f[c]) for f in frames]) for c in columns}, copy=False
        )

    def radii(self, left: pd.DataFrame) -> u.Quantity:
        """Per-row match radius of the left table (arcsec)."""
        radius = np.full(len(left), self.radius.to_value(u.arcsec))
        if self.r500_fraction is not None:
            if self.mass_column not in left or "z" not in left:
                raise MatchError(
                    f"r500_fraction needs columns {self.mass_column!r} and 'z' in the left table"
                )
            mass = left[self.mass_column].to_numpy(dtype=float)
            z = left["z"].to_numpy(dtype=float)
            ok = np.isfinite(mass) & (z > 0)
            radius[ok] = self.r500_fraction * theta500(mass[ok], z[ok]).to_value(u.arcsec)
        return radius * u.arcsec


def _floats(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=float, na_value=np.nan)


def sky_match(left: pd.DataFrame, right: pd.DataFrame, spec: MatchSpec) -> pd.DataFrame:
    """All pairs (or nearest per left row) within the radius and redshift tolerance."""
    _check_positions(left, "left")
    _check_positions(right, "right")
    _check_redshifts(left, right, spec)
    return _match_block(left, right, spec.radii(left), spec)


def _check_redshifts(left: pd.DataFrame, right: pd.DataFrame, spec: MatchSpec) -> None:
    if spec.dz is None:
        return
    for side, frame in (("left", left), ("right", right)):
        if "z" not in frame:
            raise MatchError(
                f"a redshift tolerance (dz) needs a 'z' column in the {side} table; drop dz or add z"
            )


def _check_positions(frame: pd.DataFrame, side: str) -> None:
    missing = {"ra", "dec"} - set(frame.columns)
    if missing:
        raise MatchError(
            f"the {side} table has no {sorted(missing)} column(s) [deg]; it has {list(frame.columns)}"
        )


def _coords(frame: pd.DataFrame) -> SkyCoord:
    return SkyCoord(
        frame["ra"].to_numpy(dtype=float) * u.deg, frame["dec"].to_numpy(dtype=float) * u.deg
    )


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "left": np.array([], int),
            "right": np.array([], int),
            "sep_arcsec": np.array([], float),
            "dz": np.array([], float),
        }
    )


def _match_block(
    left: pd.DataFrame, right: pd.DataFrame, radii: u.Quantity, spec: MatchSpec
) -> pd.DataFrame:
    """Pairs between two in-memory tables; positions are local to them."""
    left_ok = np.flatnonzero(
        np.isfinite(left["ra"].to_numpy(float)) & np.isfinite(left["dec"].to_numpy(float))
    )
    right_ok = np.flatnonzero(
        np.isfinite(right["ra"].to_numpy(float)) & np.isfinite(right["dec"].to_numpy(float))
    )
    if left_ok.size == 0 or right_ok.size == 0:
        return _empty_pairs()
    c1 = _coords(left.iloc[left_ok])
    c2 = _coords(right.iloc[right_ok])
    # one code path per spec (scalar or per-row radius), so a partition decides every pair
    # exactly as the whole-sky search does
    seplimit = radii[left_ok] if spec.r500_fraction is not None else spec.radius
    i1, i2, sep, _ = search_around_sky(c1, c2, seplimit)
    pairs = pd.DataFrame(
        {"left": left_ok[i1], "right": right_ok[i2], "sep_arcsec": sep.to_value(u.arcsec)}
    )
    z_left = left["z"].to_numpy(float)[pairs["left"].to_numpy()] if "z" in left else np.nan
    z_right = right["z"].to_numpy(float)[pairs["right"].to_numpy()] if "z" in right else np.nan
    pairs["dz"] = z_right - z_left
    if spec.dz is not None:
        tolerance = spec.dz * (1.0 + z_left) if spec.dz_scaled else spec.dz
        pairs = pairs[np.abs(pairs["dz"].to_numpy()) <= tolerance]
    pairs = pairs.sort_values(["left", "sep_arcsec", "right"], kind="stable")
    if spec.mode == "nearest":
        pairs = pairs.drop_duplicates("left", keep="first")
    return pairs.sort_values(["left", "right"], kind="stable").reset_index(drop=True)


def pixels_at(frame: pd.DataFrame, order: int) -> np.ndarray:
    """Nested HEALPix pixel of each row at ``order`` (from the spatial index when present)."""
    if SPATIAL_INDEX_COLUMN in frame:
        return pixels_at_order(frame[SPATIAL_INDEX_COLUMN].to_numpy(np.int64), order)
    return radec_to_pixels(frame["ra"].to_numpy(float), frame["dec"].to_numpy(float), order)


class MarginCache:
    """For any HEALPix partition, the right rows that can lie within ``radius`` of it.

    Built once per right catalog as a k-d tree of the rows' unit vectors (no per-row work); a
    partition's candidates are the rows inside the cone that holds the whole pixel
    (``pixel_math.pixel_cone``) widened by the radius: every row within the radius of the pixel,
    and a few more, which the exact pair search then drops. ``order`` is kept as the order the
    catalog is partitioned at for the caller; any partition order works.
    """

    def __init__(self, right: pd.DataFrame, order: int, radius: u.Quantity):
        from scipy.spatial import cKDTree

        _check_positions(right, "right")
        self.order = order
        self.radius = radius.to(u.arcsec)
        ra = right["ra"].to_numpy(float)
        dec = right["dec"].to_numpy(float)
        self._rows = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
        vectors = unit_vectors(ra[self._rows], dec[self._rows])
        self._tree = cKDTree(vectors) if self._rows.size else None

    def rows_for(self, order: int, pixel: int) -> np.ndarray:
        """Sorted right-row positions that can match a left row inside (order, pixel)."""
        if self._tree is None:
            return np.array([], np.int64)
        ra, dec, reach = pixel_cone(int(order), int(pixel))
        angle = min(reach + self.radius.to_value(u.deg) * _MARGIN_SLACK, 180.0)
        chord = 2.0 * np.sin(np.radians(angle) / 2.0) * _MARGIN_SLACK
        found = self._tree.query_ball_point(unit_vectors([ra], [dec])[0], chord)
        return np.sort(self._rows[np.asarray(found, dtype=np.int64)])


def margin_order(radius: u.Quantity, max_order: int = 10) -> int:
    """The deepest order (<= max_order) whose pixels are still wider than ``radius``.

    Deeper cache pixels give tighter candidate sets; pixels much smaller than the radius only make
    each cone search return more pixels.
    """
    for order in range(max_order, -1, -1):
        if healpix(order).pixel_resolution >= radius:
            return order
    return 0


def partitioned_match(
    partitions: Iterable[tuple[int, int, pd.DataFrame]],
    right: pd.DataFrame,
    spec: MatchSpec,
    *,
    cache: MarginCache | None = None,
    max_radius: u.Quantity | None = None,
) -> pd.DataFrame:
    """Match left partitions ``(order, pixel, rows)`` one at a time against the right table.

    The rows of each partition must lie in its pixel; their ``left`` positions in the result count
    rows over the partitions in the order given (as if they were concatenated). ``max_radius``
    bounds every left row's radius (needed with ``r500_fraction``; defaults to ``spec.radius``).
    """
    _check_positions(right, "right")
    if spec.dz is not None and "z" not in right:
        raise MatchError(
            "a redshift tolerance (dz) needs a 'z' column in the right table; drop dz or add z"
        )
    max_radius = (max_radius if max_radius is not None else spec.radius).to(u.arcsec)
    if cache is None:
        cache = MarginCache(right, margin_order(max_radius), max_radius)
    elif cache.radius < max_radius:
        raise MatchError(
            f"margin cache radius {cache.radius} is smaller than the match radius {max_radius}"
        )
    right = spec.needs([right])
    out, group, offset, held = [], [], 0, 0
    for order, pixel, rows in partitions:
        _check_positions(rows, "left")
        radii = spec.radii(rows)
        if len(rows) and radii.max() > max_radius:
            raise MatchError(
                f"a left row in partition {order}/{pixel} needs radius {radii.max():.1f} > max_radius "
                f"{max_radius:.1f}; pass a larger max_radius"
            )
        if len(rows):
            group.append((rows, radii, cache.rows_for(order, pixel)))
            held += len(rows)
        if held >= GROUP_ROWS:  # small partitions are searched together: one search per group
            out.append(_match_group(group, right, spec, offset))
            offset, group, held = offset + held, [], 0
    if group:
        out.append(_match_group(group, right, spec, offset))
    out = [pairs for pairs in out if len(pairs)]
    if not out:
        return _empty_pairs()
    return pd.concat(out, ignore_index=True)


def _match_group(group: list, right: pd.DataFrame, spec: MatchSpec, offset: int) -> pd.DataFrame:
    """Pairs of consecutive left partitions against the union of their margins (exact: the
    search is the same on any superset of a row's candidates)."""
    candidates = np.unique(np.concatenate([c for _, _, c in group]))
    if candidates.size == 0:
        return _empty_pairs()
    rows = spec.needs([r for r, _, _ in group])
    radii = np.concatenate([rad.to_value(u.arcsec) for _, rad, _ in group]) * u.arcsec
    pairs = _match_block(rows, right.iloc[candidates].reset_index(drop=True), radii, spec)
    pairs["left"] += offset
    pairs["right"] = candidates[pairs["right"].to_numpy()]
    return pairs


def split_partitions(
    frame: pd.DataFrame, order: int
) -> tuple[list[tuple[int, int, pd.DataFrame]], np.ndarray]:
    """A table cut into HEALPix partitions at ``order``, and each partition row's original position."""
    _check_positions(frame, "left")
    pix = pixels_at(frame, order)
    order_idx = np.argsort(pix, kind="stable")
    sorted_pix = pix[order_idx]
    in_order = frame.iloc[order_idx]  # one take; each partition is then a cheap slice of it
    bounds = [0, *(np.flatnonzero(np.diff(sorted_pix)) + 1), len(frame)]
    parts = [
        (order, int(sorted_pix[a]), in_order.iloc[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        if b > a
    ]
    return parts, order_idx


def partitioned_sky_match(
    left: pd.DataFrame, right: pd.DataFrame, spec: MatchSpec, order: int = 3
) -> pd.DataFrame:
    """:func:`sky_match` computed partition by partition (same result), for tables in memory."""
    _check_positions(left, "left")
    finite = np.isfinite(left["ra"].to_numpy(float)) & np.isfinite(left["dec"].to_numpy(float))
    kept = np.flatnonzero(finite)
    parts, order_idx = split_partitions(spec.needs([left]).iloc[kept], order)
    max_radius = spec.radii(left).max() if len(left) else spec.radius
    pairs = partitioned_match(parts, right, spec, max_radius=max(max_radius, spec.radius))
    pairs["left"] = kept[order_idx[pairs["left"].to_numpy()]]
    return pairs.sort_values(["left", "right"], kind="stable").reset_index(drop=True)


def join_pairs(
    left: pd.DataFrame,
    right: pd.DataFrame,
    pairs: pd.DataFrame,
    suffixes: tuple[str, str] = ("_pred", "_ref"),
) -> pd.DataFrame:
    """One row per pair: left columns + ``suffixes[0]``, right columns + ``suffixes[1]``, sep, dz."""
    a = left.iloc[pairs["left"].to_numpy()].reset_index(drop=True).add_suffix(suffixes[0])
    b = right.iloc[pairs["right"].to_numpy()].reset_index(drop=True).add_suffix(suffixes[1])
    joined = pd.concat([a, b, pairs[["sep_arcsec", "dz"]].reset_index(drop=True)], axis=1)
    joined.attrs = {}
    return joined
