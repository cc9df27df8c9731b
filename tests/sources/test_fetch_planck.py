"""Planck fetcher against generated HEALPix y-maps: ordering, frames, fsspec URLs, failures."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.wcs import WCS

from survey_mass.constants import PLANCK_PIXEL, SZ_GRID
from survey_mass.sources.base import Cutout, CutoutFailure, Target
from survey_mass.sources.net.cache import RequestCache
from survey_mass.sources.net.transport import DefaultTransport
from survey_mass.sources.planck import PlanckConfig, PlanckFetcher

from support.archives import ArchiveServer, fits_bytes, healpix_ymap

RA, DEC = 150.0, 30.0
PEAK, SIGMA = 1e-4, 0.4  # y, deg
TARGETS = [
    Target("c1", RA, DEC, 0.2),
    Target("c2", RA + 0.5, DEC - 0.3, 0.3),
    Target("c3", 20.0, -40.0, 0.1),
]


def write_map(path, **kw):
    kw.setdefault("blobs", [(RA, DEC, PEAK, SIGMA)])
    healpix_ymap(kw.pop("nside", 256), **kw).writeto(path, overwrite=True)
    return str(path)


def planck(tmp_path, map_url, transport=None, allowed=None, **kw):
    cfg = PlanckConfig(map_url=map_url, backoff_base_s=0.001, backoff_max_s=0.002, **kw)
    return PlanckFetcher(
        cfg,
        cache=RequestCache(tmp_path / "cache"),
        transport=transport or DefaultTransport(),
        allowed_protocols=allowed,
    )


def first(fetcher, targets=TARGETS[:1]):
    return list(fetcher.cutouts(targets, "sz"))[0]


def centroid_offset_pix(image):
    n = image.shape[0]
    yy, xx = np.mgrid[0:n, 0:n]
    w = np.clip(np.nan_to_num(image) - 0.5 * np.nanmax(image), 0, None)
    return (w * xx).sum() / w.sum() - (n - 1) / 2, (w * yy).sum() / w.sum() - (n - 1) / 2


def test_y_cutout_grid_header_and_centring(tmp_path):
    cutout = first(planck(tmp_path, write_map(tmp_path / "y.fits")))
    assert isinstance(cutout, Cutout), cutout
    hdu = cutout.hdul[0]
    assert hdu.data.shape == (SZ_GRID, SZ_GRID)
    assert hdu.header["BUNIT"] == "Compton-y"
    wcs = WCS(hdu.header)
    assert list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"] and wcs.wcs.radesys == "ICRS"
    assert abs(wcs.wcs.cdelt[0]) == pytest.approx(PLANCK_PIXEL.to_value(u.deg))
    assert wcs.pixel_to_world_values((SZ_GRID - 1) / 2, (SZ_GRID - 1) / 2) == pytest.approx(
        (RA, DEC)
    )
    assert np.nanmax(hdu.data) == pytest.approx(PEAK, rel=0.05)
    dx, dy = centroid_offset_pix(hdu.data)
    assert abs(dx) < 0.5 and abs(dy) < 0.5  # the blob sits on the target: frames handled right
    assert hdu.header["MAPFRAME"] == "G" and hdu.header["NSIDE"] == 256


def test_ring_and_nested_orderings_give_the_same_cutout(tmp_path):
    ring = first(planck(tmp_path / "r", write_map(tmp_path / "ring.fits", ordering="RING")))
    nest = first(planck(tmp_path / "n", write_map(tmp_path / "nest.fits", ordering="NESTED")))
    np.testing.assert_allclose(nest.hdul[0].data, ring.hdul[0].data, rtol=1e-6, atol=1e-12)


def test_galactic_and_equatorial_maps_agree_and_the_frame_matters(tmp_path):
    gal = first(planck(tmp_path / "g", write_map(tmp_path / "g.fits", coordsys="G")))
    equ = first(planck(tmp_path / "c", write_map(tmp_path / "c.fits", coordsys="C")))
    a, b = gal.hdul[0].data, equ.hdul[0].data
    assert np.abs(a - b).max() < 0.1 * PEAK  # same sky, different pixelisations
    # a Galactic map read as if it were equatorial puts the cluster tens of degrees away
    wrong = write_map(tmp_path / "wrong.fits", coordsys="G", header_keys={"COORDSYS": "C"})
    lost = first(planck(tmp_path / "w", wrong))
    assert np.nanmax(lost.hdul[0].data) < 1e-3 * PEAK


def test_vector_columns_and_column_choice(tmp_path):
    path = write_map(tmp_path / "v.fits", vector=1024)
    full = first(planck(tmp_path / "a", path)).hdul[0]
    half = first(planck(tmp_path / "b", path, column="FIRST")).hdul[0]
    assert half.header["MAPCOL"] == "FIRST"
    np.testing.assert_allclose(half.data, 1.01 * full.data, rtol=1e-5)


def test_unseen_pixels_are_nan_and_an_unseen_target_is_no_coverage(tmp_path):
    path = write_map(tmp_path / "u.fits", unseen_within=(RA + 1.3, DEC, 0.8))
    results = list(
        planck(tmp_path, path).cutouts([TARGETS[0], Target("masked", RA + 1.3, DEC, 0.2)], "sz")
    )
    partial = results[0].hdul[0]
    assert np.isnan(partial.data).any() and np.isfinite(partial.data).any()
    assert 0 < partial.header["COVERAGE"] < 1
    assert isinstance(results[1], CutoutFailure) and results[1].reason == "no_coverage"


def test_remote_map_is_downloaded_once_and_not_again_on_a_rerun(tmp_path):
    data = fits_bytes(healpix_ymap(64, blobs=[(RA, DEC, PEAK, 2.0)]))
    with ArchiveServer() as server:
        server.files["/planck/milca_ymaps.fits"] = data
        server.faults["/planck/milca_ymaps.fits"] = [503]
        url = f"{server.url}/planck/milca_ymaps.fits"
        results = list(planck(tmp_path, url).cutouts(TARGETS, "sz"))
        assert all(isinstance(r, Cutout) for r in results)
        assert server.count("GET") == 2  # a 503, then the map once for all targets
        rerun = list(planck(tmp_path, url).cutouts(TARGETS, "sz"))
        assert server.count() == 2
        np.testing.assert_array_equal(results[0].hdul[0].data, rerun[0].hdul[0].data)


def test_map_from_an_object_store_url(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/maps/nilc_ymaps.fits", fits_bytes(healpix_ymap(64, blobs=[(RA, DEC, PEAK, 2.0)])))
    try:
        url = "memory://maps/nilc_ymaps.fits"
        refused = first(planck(tmp_path / "a", url, allowed=["file", "https"]))
        assert isinstance(refused, CutoutFailure) and refused.reason == "protocol_not_allowed"
        cutout = first(planck(tmp_path / "b", url, allowed=["file", "memory"]))
        assert isinstance(cutout, Cutout) and np.nanmax(cutout.hdul[0].data) > 0.5 * PEAK
    finally:
        fs.rm("/maps", recursive=True)


def test_map_failures_fail_every_target_without_crashing(tmp_path):
    good = fits_bytes(healpix_ymap(64))
    with ArchiveServer() as server:
        server.files["/cut.fits"] = good[: len(good) // 2]
        server.files["/down.fits"] = good
        server.faults["/down.fits"] = [503] * 10
        cut = list(planck(tmp_path / "a", f"{server.url}/cut.fits").cutouts(TARGETS, "sz"))
        assert [r.reason for r in cut] == ["bad_fits"] * 3
        assert server.count("GET", "/cut.fits") == 1  # not retried per target, not cached
        down = list(
            planck(tmp_path / "b", f"{server.url}/down.fits", max_tries=2).cutouts(TARGETS, "sz")
        )
        assert [r.reason for r in down] == ["server_error"] * 3
        assert server.count("GET", "/down.fits") == 2
        gone = list(planck(tmp_path / "c", f"{server.url}/gone.fits").cutouts(TARGETS[:1], "sz"))
        assert gone[0].reason == "no_coverage" and "not at" in gone[0].detail


def test_map_without_healpix_ordering_is_missing_wcs(tmp_path):
    path = write_map(tmp_path / "o.fits", nside=16, header_keys={"ORDERING": None})
    failure = first(planck(tmp_path, path))
    assert isinstance(failure, CutoutFailure) and failure.reason == "missing_wcs"
    missing = first(planck(tmp_path, str(tmp_path / "nope.fits")))
    assert missing.reason == "no_coverage"
