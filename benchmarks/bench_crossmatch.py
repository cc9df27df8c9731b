"""Crossmatch cost against astropy's ``search_around_sky`` on the same two tables, in one run.

    python benchmarks/bench_crossmatch.py --left 200000 --right 20000
    python benchmarks/bench_crossmatch.py --real --lsdb 1000000 100000
    python benchmarks/bench_crossmatch.py --smoke      # seconds: the paths run, pairs checked

The tables are random clusters over a quarter of the sky with z; the right table is a perturbed
subset of the left (so most rows match) plus unrelated rows. Timed: astropy's pair search alone,
the project's ``sky_match`` (the same search plus redshift test and nearest pick), and
``partitioned_sky_match`` (HEALPix partitions with margin caches, as catalogs are matched), with
the ratios to astropy and a check that all three find the same pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd


def tables(n_left: int, n_right: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 180, n_left)
    dec = np.degrees(np.arcsin(rng.uniform(-0.5, 0.5, n_left)))
    left = pd.DataFrame({"ra": ra, "dec": dec, "z": rng.uniform(0.05, 1.0, n_left)})
    pick = rng.choice(n_left, n_right // 2, replace=False)
    near = left.iloc[pick].copy()
    near["ra"] = (near["ra"] + rng.normal(0, 20 / 3600, len(near))) % 360
    near["dec"] = np.clip(near["dec"] + rng.normal(0, 20 / 3600, len(near)), -90, 90)
    near["z"] += rng.normal(0, 0.01, len(near))
    other = pd.DataFrame(
        {
            "ra": rng.uniform(0, 180, n_right - len(near)),
            "dec": np.degrees(np.arcsin(rng.uniform(-0.5, 0.5, n_right - len(near)))),
            "z": rng.uniform(0.05, 1.0, n_right - len(near)),
        }
    )
    return left, pd.concat([near, other], ignore_index=True)


def timed(fn, repeat: int = 3):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def synthetic(n_left: int, n_right: int, radius_arcsec: float) -> dict:
    """astropy, sky_match and partitioned_sky_match on the same random tables."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    from survey_mass.crossmatch.match import MatchSpec, partitioned_sky_match, sky_match

    left, right = tables(n_left, n_right)
    radius = radius_arcsec * u.arcsec

    def astropy_only():
        c1 = SkyCoord(left["ra"].to_numpy() * u.deg, left["dec"].to_numpy() * u.deg)
        c2 = SkyCoord(right["ra"].to_numpy() * u.deg, right["dec"].to_numpy() * u.deg)
        return search_around_sky(c1, c2, radius)

    every = MatchSpec(radius=radius, mode="all")
    nearest = MatchSpec(radius=radius, dz=0.05, mode="nearest")
    (i1, i2, _, _), t_astropy = timed(astropy_only)
    pairs_all, t_all = timed(lambda: sky_match(left, right, every))
    pairs_near, t_near = timed(lambda: sky_match(left, right, nearest))
    pairs_part, t_part = timed(lambda: partitioned_sky_match(left, right, nearest, order=3))
    return {
        "benchmark": f"crossmatch {len(left)} x {len(right)} rows, {radius_arcsec:g} arcsec",
        "astropy_search_around_sky_s": round(t_astropy, 3),
        "sky_match_all_pairs_s": round(t_all, 3),
        "sky_match_nearest_dz_s": round(t_near, 3),
        "partitioned_nearest_dz_s": round(t_part, 3),
        "ratio_all_pairs_vs_astropy": round(t_all / t_astropy, 2),
        "ratio_nearest_dz_vs_astropy": round(t_near / t_astropy, 2),
        "ratio_partitioned_vs_astropy": round(t_part / t_astropy, 2),
        "pairs": int(len(i1)),
        "same_pairs_as_astropy": _pairs(i1, i2) == _pairs(pairs_all["left"], pairs_all["right"]),
        "partitioned_same_as_whole": pairs_part[["left", "right"]].equals(
            pairs_near[["left", "right"]]
        ),
    }


def _pairs(a, b) -> set:
    return set(zip(np.asarray(a).tolist(), np.asarray(b).tolist(), strict=True))


def _write_catalog(folder: Path, frame: pd.DataFrame, order: int) -> str:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.mass_catalog_factory import write_mass_catalog

    rows = frame.assign(target_id=[f"T{i}" for i in range(len(frame))])
    if "logm500" not in rows:
        rows["logm500"] = 14.5
    return write_mass_catalog(folder, rows.reset_index(drop=True), order=order)


def catalog_vs_astropy(left: pd.DataFrame, right: pd.DataFrame, radius_arcsec, order, folder):
    """match_catalog (a HATS catalog, partition groups, margin cache) vs astropy, same pairs."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    from survey_mass.catalog.reader import read_mass_catalog
    from survey_mass.crossmatch.match import MatchSpec, partitioned_sky_match
    from survey_mass.crossmatch.partitions import match_catalog

    left = left.dropna(subset=["ra", "dec"]).reset_index(drop=True)
    right = right.dropna(subset=["ra", "dec"]).reset_index(drop=True)
    root = _write_catalog(folder, left[["ra", "dec", "z"]].fillna({"z": 0.1}), order)
    radius = radius_arcsec * u.arcsec

    def astropy_only():
        c1 = SkyCoord(left["ra"].to_numpy() * u.deg, left["dec"].to_numpy() * u.deg)
        c2 = SkyCoord(right["ra"].to_numpy() * u.deg, right["dec"].to_numpy() * u.deg)
        return search_around_sky(c1, c2, radius)

    def read_then_astropy():  # the same input as match_catalog's: the catalog on disk
        frame = read_mass_catalog(root, ["ra", "dec"])
        c1 = SkyCoord(frame["ra"].to_numpy() * u.deg, frame["dec"].to_numpy() * u.deg)
        c2 = SkyCoord(right["ra"].to_numpy() * u.deg, right["dec"].to_numpy() * u.deg)
        return search_around_sky(c1, c2, radius)

    spec = MatchSpec(radius=radius, mode="all")
    (i1, i2, _, _), t_astropy = timed(astropy_only)
    _, t_read_astropy = timed(read_then_astropy)
    ours, t_ours = timed(
        lambda: match_catalog(root, right, spec, columns=["target_id", "ra", "dec"])
    )
    parts, t_parts = timed(lambda: partitioned_sky_match(left, right, spec, order=order))
    want = _pairs(np.char.add("T", i1.astype(str)), i2)
    got = set(zip(ours["target_id_pred"], _right_positions(ours, right), strict=True))
    return {
        "benchmark": f"match_catalog {len(left)} x {len(right)} rows, {radius_arcsec:g} arcsec",
        "astropy_s": round(t_astropy, 3),
        "match_catalog_s": round(t_ours, 3),
        "ratio_vs_astropy": round(t_ours / t_astropy, 2),
        "read_then_astropy_s": round(t_read_astropy, 3),
        "ratio_vs_read_then_astropy": round(t_ours / t_read_astropy, 2),
        "partitioned_in_memory_s": round(t_parts, 3),
        "ratio_partitioned_in_memory_vs_astropy": round(t_parts / t_astropy, 2),
        "partition_order": order,
        "pairs": len(want),
        "same_pairs_as_astropy": got == want
        and _pairs(parts["left"], parts["right"]) == _pairs(i1, i2),
    }


def _right_positions(joined: pd.DataFrame, right: pd.DataFrame) -> list:
    key = pd.Series(np.arange(len(right)), index=pd.MultiIndex.from_arrays([right.ra, right.dec]))
    return key.loc[list(zip(joined["ra_ref"], joined["dec_ref"], strict=True))].tolist()


def real_catalogs(folder: Path, order: int = 1) -> list[dict]:
    """redMaPPer (SDSS, 26k) as a HATS mass catalog against PSZ2 and MCXC, 5 arcmin."""
    from survey_mass.references import load_definition, read_catalog

    repo = Path(__file__).resolve().parents[1]

    def read(name):
        local = repo / load_definition(name).file.local
        return read_catalog(name, paths={name: str(local)})

    redmapper = read("sdss_redmapper")
    return [
        catalog_vs_astropy(redmapper, read(name), 300.0, order, folder / name)
        for name in ("psz2", "mcxc")
    ]


def against_lsdb(n_left: int, n_right: int, radius_arcsec: float, folder: Path) -> dict:
    """match_catalog (nearest) vs lsdb's crossmatch (n_neighbors=1) on the same HATS catalog."""
    import lsdb
    from astropy import units as u

    from survey_mass.catalog.paths import MASSES
    from survey_mass.crossmatch.match import MatchSpec
    from survey_mass.crossmatch.partitions import match_catalog

    left, right = tables(n_left, n_right)
    root = _write_catalog(folder / "lsdb", left, 3)
    spec = MatchSpec(radius=radius_arcsec * u.arcsec, mode="nearest")
    reference = lsdb.from_dataframe(
        right.assign(rid=np.arange(len(right))),
        ra_column="ra",
        dec_column="dec",
        margin_threshold=radius_arcsec,
    )
    opened = lsdb.open_catalog(Path(folder / "lsdb") / MASSES)

    def with_lsdb():
        return opened.crossmatch(reference, radius_arcsec=radius_arcsec, n_neighbors=1).compute()

    theirs, t_lsdb = timed(with_lsdb, repeat=2)
    ours, t_ours = timed(
        lambda: match_catalog(root, right, spec, columns=["target_id", "ra", "dec"]), 2
    )
    rid = next(c for c in theirs.columns if c.startswith("rid"))
    tid = next(c for c in theirs.columns if c.startswith("target_id"))
    return {
        "benchmark": f"match_catalog vs lsdb crossmatch, {n_left} x {n_right}, nearest",
        "lsdb_s": round(t_lsdb, 3),
        "match_catalog_s": round(t_ours, 3),
        "ratio_vs_lsdb": round(t_ours / t_lsdb, 2),
        "same_pairs_as_lsdb": set(
            zip(ours["target_id_pred"], _right_positions(ours, right), strict=True)
        )
        == set(zip(theirs[tid], theirs[rid], strict=True)),
    }


def main(argv=None) -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--left", type=int, default=200_000)
    parser.add_argument("--right", type=int, default=20_000)
    parser.add_argument("--radius-arcsec", type=float, default=60.0)
    parser.add_argument("--real", action="store_true", help="also redMaPPer x PSZ2 / MCXC")
    parser.add_argument("--lsdb", type=int, nargs=2, metavar=("LEFT", "RIGHT"))
    parser.add_argument("--smoke", action="store_true", help="tiny tables, seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.left, args.right, args.lsdb = 3000, 600, (3000, 600)
    print(json.dumps(machine_line()))
    results = [synthetic(args.left, args.right, args.radius_arcsec)]
    with tempfile.TemporaryDirectory(prefix="bench-xmatch-") as tmp:
        if args.real:
            results += real_catalogs(Path(tmp))
        if args.smoke:
            left, right = tables(args.left, args.right, seed=3)
            results.append(catalog_vs_astropy(left, right, 600.0, 2, Path(tmp) / "smoke"))
        if args.lsdb:
            results.append(against_lsdb(*args.lsdb, args.radius_arcsec, Path(tmp)))
    for result in results:
        print(json.dumps(result))
    return results


def machine_line() -> dict:
    return {
        "cores_usable": len(os.sched_getaffinity(0)),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    main()
