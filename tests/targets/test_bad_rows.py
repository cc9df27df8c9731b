"""Bad rows cost no other row: each lands in the quarantine table with a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from survey_mass.mock.source import MockSource
from survey_mass.mock.universe import base_pixel_clusters
from survey_mass.preprocess.xray import preprocess_xray
from survey_mass.sources.base import Cutout, Target
from survey_mass.spec.job import parse_job_spec
from survey_mass.spec.universe import UniverseSpec

from support.shards import weigh_in_process

SPEC = UniverseSpec(seed=11)


def good_rows(n: int) -> pd.DataFrame:
    clusters = base_pixel_clusters(SPEC, 120000)
    for pixel in range(120001, 120100):
        if len(clusters) >= n:
            break
        clusters = pd.concat([clusters, base_pixel_clusters(SPEC, pixel)])
    return clusters.head(n)[["target_id", "ra", "dec", "z"]].rename(columns={"target_id": "id"})


def test_catalog_job_quarantines_bad_rows_and_keeps_the_rest(tmp_path):
    good = good_rows(6)
    bad = pd.DataFrame(
        {
            "id": ["no-position", "bad-z", good["id"].iloc[0], "far-away", "not-mock", None, None],
            "ra": [
                np.nan,
                good["ra"].iloc[1],
                good["ra"].iloc[0],
                (good["ra"].iloc[0] + 180) % 360,
                good["ra"].iloc[2],
                good["ra"].iloc[3],
                good["ra"].iloc[4],
            ],
            "dec": [
                0.0,
                good["dec"].iloc[1],
                good["dec"].iloc[0],
                -good["dec"].iloc[0],
                good["dec"].iloc[2],
                good["dec"].iloc[3],
                good["dec"].iloc[4],
            ],
            "z": [0.3, -1.0, 0.3, 0.3, 0.4, 0.3, 0.3],
        }
    )
    catalog = tmp_path / "targets.csv"
    pd.concat([good, bad]).to_csv(catalog, index=False)
    ra0, dec0 = float(good["ra"].mean()), float(good["dec"].mean())
    spec = parse_job_spec(f"""
name = "bad-rows"
[targets]
catalog = "{catalog}"
footprint = {{ kind = "cone", ra = {ra0}, dec = {dec0}, radius_deg = 5.0 }}
shard_order = 3
[source]
mock = {{ seed = 11 }}
[output]
url = "{tmp_path / "out"}"
""")
    cat, q = weigh_in_process(spec)
    assert sorted(cat["target_id"]) == sorted(good["id"])
    # two rows without an id (empty CSV cells): each quarantined, neither a duplicate of the other
    assert list(q.loc[q["target_id"] == "", "reason"]) == ["missing_id", "missing_id"]
    reasons = dict(zip(q["target_id"], q["reason"], strict=True))
    reasons.pop("")
    assert reasons == {
        "no-position": "invalid_coordinates",
        "bad-z": "invalid_redshift",
        good["id"].iloc[0]: "duplicate_id",
        "far-away": "outside_footprint",
        "not-mock": "xray:not_in_mock_universe",
    }
    assert q["detail"].str.len().min() > 10  # every reason says what to fix


def _cutouts(n: int) -> list[Cutout]:
    rows = good_rows(n)
    targets = [Target(r.id, r.ra, r.dec, r.z) for r in rows.itertuples()]
    return list(MockSource(SPEC).cutouts(targets, "xray"))


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda h: h[0].data.__setitem__((5, 5), np.nan), "nonfinite_pixels"),
        (lambda h: h[0].data.__setitem__(slice(None), 0), "empty_cutout"),
        (lambda h: h[0].header.remove("EXPOSURE"), "missing_header"),
        (lambda h: [h[0].header.remove(k) for k in ("CTYPE1", "CTYPE2")], "invalid_wcs"),
        (
            lambda h: h[0].header.__setitem__("CRVAL1", (h[0].header["CRVAL1"] + 1) % 360),
            "partial_coverage",
        ),
    ],
)
def test_a_bad_cutout_leaves_its_batch_with_a_reason(spoil, reason):
    cutouts = _cutouts(4)
    spoil(cutouts[1].hdul)
    prepared = preprocess_xray(cutouts, np)
    assert [f.reason for f in prepared.failures] == [reason]
    assert prepared.failures[0].target.target_id == cutouts[1].target.target_id
    assert [c.target.target_id for c in prepared.cutouts] == [
        cutouts[i].target.target_id for i in (0, 2, 3)
    ]
    assert prepared.inputs.shape == (3, 128, 128, 1) and np.isfinite(prepared.inputs).all()


def test_resampling_onto_the_cutouts_own_grid_keeps_every_photon():
    from survey_mass.preprocess.resample import celestial_wcs, grid_coordinates, resample_batch
    from survey_mass.preprocess.xray import GRID

    cutout = _cutouts(1)[0]
    t = cutout.target
    coords, ratio = grid_coordinates(
        celestial_wcs(cutout.hdul[0].header), GRID.wcs(t.ra, t.dec, t.z), GRID.npix
    )
    out = resample_batch([cutout.hdul[0].data[None].astype(float)], [coords], [ratio], np, True)
    np.testing.assert_allclose(out[0, 0], cutout.hdul[0].data, atol=1e-6)


def test_resampling_a_finer_image_conserves_counts():
    from survey_mass.preprocess.resample import celestial_wcs, grid_coordinates, resample_batch
    from survey_mass.preprocess.xray import GRID

    cutout = _cutouts(1)[0]
    t = cutout.target
    header = cutout.hdul[0].header.copy()
    header["CDELT1"] /= 2
    header["CDELT2"] /= 2
    header["CRPIX1"] = header["CRPIX2"] = 128.5
    fine = np.full((256, 256), 3.0)  # 3 counts per fine pixel -> 12 per model pixel
    hdul = fits.HDUList([fits.PrimaryHDU(fine, header=header)])
    coords, ratio = grid_coordinates(
        celestial_wcs(hdul[0].header), GRID.wcs(t.ra, t.dec, t.z), GRID.npix
    )
    out = resample_batch([fine[None]], [coords], [ratio], np, True)
    np.testing.assert_allclose(out[0, 0][2:-2, 2:-2], 12.0, rtol=1e-3)
