"""SDSS fetcher against a recorded SkyServer answer and generated corrected frames."""

from __future__ import annotations

import bz2
import re
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.wcs import WCS

from survey_mass.constants import COSMOLOGY, OPTICAL_APERTURE, SDSS_BANDS
from survey_mass.sources.base import Cutout, CutoutFailure, Source, Target
from survey_mass.sources.net.cache import RequestCache
from survey_mass.sources.net.transport import DefaultTransport
from survey_mass.sources.sdss import SDSSConfig, SDSSFetcher, field_query, frame_url, parse_fields

from support.archives import (
    ArchiveServer,
    ScriptedTransport,
    fits_bytes,
    sdss_frame,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fetch"
RA, DEC = 180.0, 20.0
COSD = np.cos(np.radians(DEC))
#: as in skyserver_fields.csv: two camcols x two fields, overlapping around (RA, DEC)
FIELDS = [(3705, 301, 2, 210), (3705, 301, 2, 211), (3705, 301, 3, 210), (3705, 301, 3, 211)]
BCG = (RA, DEC, 100.0, 2.0)  # ra, dec, nanomaggies, sigma arcsec
GALAXY = (RA + 1.5 / 60 / COSD, DEC + 0.5 / 60, 50.0, 1.5)  # in the overlap of two camcols
TARGET = Target("A1", RA, DEC, 1.0)


def fast_config(**kw) -> SDSSConfig:
    base = dict(
        rate_per_s=1000.0,
        frames_rate_per_s=1000.0,
        backoff_base_s=0.001,
        backoff_max_s=0.002,
        max_tries=3,
    )
    base.update(kw)
    return SDSSConfig(**base)


def frame_bytes(band, run, rerun, camcol, field, **kw):
    ra = RA + (camcol - 2.5) * 2 * 2.2 / 60 / COSD  # camcols 4.4' apart in RA, 5' wide: overlap
    dec = DEC + (field - 210.5) * 2 * 3.0 / 60  # fields 6' apart in Dec, 6.8' long: overlap
    ra += SDSS_BANDS.index(band) * 0.3 / 3600  # bands' frames are offset a little on the sky
    frame = sdss_frame(
        band,
        run,
        camcol,
        field,
        ra,
        dec,
        shape=(250, 340),
        pixel_arcsec=1.2,
        sources=[BCG, GALAXY],
        **kw,
    )
    return fits_bytes(frame, "bz2")


def frame_pattern(cfg, band, run, rerun, camcol, field):
    return re.escape(frame_url(cfg.frames_url, band, run, rerun, camcol, field)) + "$"


def sdss_archive(cfg, sql_answer=None, frames=None) -> ScriptedTransport:
    """SkyServer answers ``sql_answer`` (default: the recorded four fields); the SAS serves the
    generated frames, or for (band, field) in ``frames`` that list of answers in turn."""
    transport = ScriptedTransport()
    transport.on(
        "POST", "x_results", sql_answer or (FIXTURES / "skyserver_fields.csv").read_bytes()
    )
    for band in SDSS_BANDS:
        for f in FIELDS:
            answers = (frames or {}).get((band, f)) or [frame_bytes(band, *f)]
            transport.on("GET", frame_pattern(cfg, band, *f), *answers)
    return transport


def fetcher(tmp_path, transport, cfg=None):
    return SDSSFetcher(
        cfg or fast_config(), cache=RequestCache(tmp_path / "cache"), transport=transport
    )


def aperture_flux(cutout: Cutout, ra, dec, radius_arcsec):
    hdu = cutout.hdul[0]
    wcs = WCS(hdu.header).celestial
    px, py = wcs.world_to_pixel_values(ra, dec)
    n = hdu.data.shape[-1]
    yy, xx = np.mgrid[0:n, 0:n]
    inside = np.hypot(xx - px, yy - py) < radius_arcsec / (abs(wcs.wcs.cdelt[0]) * 3600)
    return np.array([np.nansum(band[inside]) for band in hdu.data])


def centroid(image, px, py, radius):
    n = image.shape[-1]
    yy, xx = np.mgrid[0:n, 0:n]
    w = np.where(np.hypot(xx - px, yy - py) < radius, np.nan_to_num(image), 0.0)
    return (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()


# --- recorded SkyServer answers -----------------------------------------------------------------


def test_parse_recorded_skyserver_answers():
    assert parse_fields((FIXTURES / "skyserver_fields.csv").read_bytes()) == FIELDS
    assert parse_fields((FIXTURES / "skyserver_empty.csv").read_bytes()) == []
    with pytest.raises(Exception, match="server_error"):
        parse_fields((FIXTURES / "skyserver_error.html").read_bytes())


def test_field_query_asks_for_primary_fields_around_the_target():
    sql = field_query(RA, DEC, 5.0)
    assert "fGetNearbyObjEq(180.0000000, 20.0000000, 5.0000)" in sql
    assert "PhotoPrimary" in sql and "DISTINCT" in sql


# --- the cutout ---------------------------------------------------------------------------------


def test_sdss_cutout_is_an_aligned_ugriz_cube_in_nanomaggies(tmp_path):
    cfg = fast_config()
    f = fetcher(tmp_path, sdss_archive(cfg), cfg)
    assert isinstance(f, Source)
    (cutout,) = list(f.cutouts([TARGET], "optical"))
    assert isinstance(cutout, Cutout), cutout
    hdu = cutout.hdul[0]
    assert hdu.data.ndim == 3 and hdu.data.shape[0] == 5
    assert hdu.header["BANDS"] == "ugriz" and hdu.header["BUNIT"] == "nanomaggy"
    assert hdu.header["NFRAMES"] == 4
    wcs = WCS(hdu.header).celestial
    assert list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    n = hdu.data.shape[-1]
    assert wcs.pixel_to_world_values((n - 1) / 2, (n - 1) / 2) == pytest.approx((RA, DEC))
    # covers at least the model aperture at the target's redshift
    aperture = (OPTICAL_APERTURE / COSMOLOGY.angular_diameter_distance(TARGET.z) * u.rad).to_value(
        u.deg
    )
    assert n * abs(wcs.wcs.cdelt[0]) >= aperture
    assert np.isfinite(hdu.data).all()  # the four fields tile the whole cutout
    # flux is conserved through the mosaic, in every band (one source lies in a frame overlap)
    assert aperture_flux(cutout, *BCG[:2], 8.0) == pytest.approx(np.full(5, 100.0), rel=0.03)
    assert aperture_flux(cutout, *GALAXY[:2], 6.0) == pytest.approx(np.full(5, 50.0), rel=0.05)
    # the bands are aligned: each source sits at the same pixel in every band
    px, py = wcs.world_to_pixel_values(*GALAXY[:2])
    centres = np.array([centroid(band, px, py, 6) for band in hdu.data])
    assert np.ptp(centres, axis=0).max() < 0.3
    assert centres.mean(axis=0) == pytest.approx([float(px), float(py)], abs=0.3)


def test_frames_shared_by_targets_are_fetched_once_and_a_rerun_fetches_nothing(tmp_path):
    cfg = fast_config()
    transport = sdss_archive(cfg)
    targets = [TARGET, Target("A2", RA + 0.3 / 60, DEC - 0.2 / 60, 1.1), Target("A3", RA, DEC, 0.9)]
    results = list(fetcher(tmp_path, transport, cfg).cutouts(targets, "optical"))
    assert [r.target.target_id for r in results] == ["A1", "A2", "A3"]
    assert all(isinstance(r, Cutout) for r in results)
    assert transport.count("GET") == 20  # 4 fields x 5 bands, each once
    assert transport.count("POST") == 3  # one field search per target
    before = len(transport.calls)
    rerun = list(fetcher(tmp_path, transport, cfg).cutouts(targets, "optical"))
    assert len(transport.calls) == before  # second run: everything from the cache
    for a, b in zip(results, rerun, strict=True):
        np.testing.assert_array_equal(a.hdul[0].data, b.hdul[0].data)


# --- failures -----------------------------------------------------------------------------------


def only(fetcher_, target=TARGET) -> CutoutFailure:
    (result,) = list(fetcher_.cutouts([target], "optical"))
    assert isinstance(result, CutoutFailure), result
    assert result.instrument == "optical" and result.target == target
    return result


def test_empty_field_search_is_no_coverage_and_is_remembered(tmp_path):
    cfg = fast_config()
    transport = sdss_archive(cfg, (FIXTURES / "skyserver_empty.csv").read_bytes())
    assert only(fetcher(tmp_path, transport, cfg)).reason == "no_coverage"
    assert only(fetcher(tmp_path, transport, cfg)).reason == "no_coverage"
    assert transport.count("POST") == 1 and transport.count("GET") == 0


def test_skyserver_error_page_is_a_server_error_not_cached(tmp_path):
    cfg = fast_config()
    transport = sdss_archive(cfg, (FIXTURES / "skyserver_error.html").read_bytes())
    failure = only(fetcher(tmp_path, transport, cfg))
    assert failure.reason == "server_error" and "PhotoPrimry" in failure.detail
    only(fetcher(tmp_path, transport, cfg))
    assert transport.count("POST") == 2


def test_503_until_the_last_try_is_a_server_error_after_n_tries(tmp_path):
    cfg = fast_config(max_tries=3)
    transport = ScriptedTransport().on("POST", "x_results", 503)
    failure = only(fetcher(tmp_path, transport, cfg))
    assert failure.reason == "server_error"
    assert "HTTP 503" in failure.detail and "3 tries" in failure.detail
    assert transport.count("POST") == 3


def test_503_then_success_recovers(tmp_path):
    cfg = fast_config(max_tries=3)
    transport = sdss_archive(cfg)
    transport.routes[0][2].extendleft([503, 503])  # SkyServer fails twice, then answers
    assert isinstance(
        list(fetcher(tmp_path, transport, cfg).cutouts([TARGET], "optical"))[0], Cutout
    )
    assert transport.count("POST") == 3


def test_timeouts_end_as_timeout(tmp_path):
    from survey_mass.sources.net.retry import TransientError

    cfg = fast_config(max_tries=2)
    transport = ScriptedTransport().on("POST", "x_results", TransientError("timeout", "no answer"))
    failure = only(fetcher(tmp_path, transport, cfg))
    assert failure.reason == "timeout" and transport.count("POST") == 2


def test_truncated_frame_is_bad_fits_and_is_fetched_again_next_run(tmp_path):
    cfg = fast_config()
    good = frame_bytes("r", *FIELDS[0])
    cut = bz2.compress(bz2.decompress(good)[:-5000])
    transport = sdss_archive(cfg, frames={("r", FIELDS[0]): [cut, good]})
    failure = only(fetcher(tmp_path, transport, cfg))
    assert failure.reason == "bad_fits" and "frame-r-003705-2-0210" in failure.detail
    assert isinstance(
        list(fetcher(tmp_path, transport, cfg).cutouts([TARGET], "optical"))[0], Cutout
    )
    assert transport.count("GET", "frame-r-003705-2-0210") == 2


def test_frame_without_wcs_is_missing_wcs(tmp_path):
    cfg = fast_config()
    no_wcs = fits_bytes(
        sdss_frame("g", 3705, 2, 211, RA, DEC, shape=(20, 20), with_wcs=False), "bz2"
    )
    transport = sdss_archive(cfg, frames={("g", FIELDS[1]): [no_wcs]})
    assert only(fetcher(tmp_path, transport, cfg)).reason == "missing_wcs"


def test_frame_missing_on_the_sas_and_uncovered_centre_are_no_coverage(tmp_path):
    cfg = fast_config()
    one_field = b"#Table1\nrun,rerun,camcol,field\n3705,301,2,210\n"
    transport = sdss_archive(cfg, one_field)  # the field covers only the target's south-east
    failure = only(fetcher(tmp_path / "a", transport, cfg), Target("edge", RA + 6 / 60, DEC, 1.0))
    assert failure.reason == "no_coverage" and "not imaged" in failure.detail
    transport = ScriptedTransport().on("POST", "x_results", one_field).on("GET", "frame-", 404)
    failure = only(fetcher(tmp_path / "b", transport, cfg))
    assert failure.reason == "no_coverage" and "missing on the SAS" in failure.detail


def test_bad_redshift_and_too_many_fields(tmp_path):
    cfg = fast_config(max_fields=2)
    transport = sdss_archive(cfg)
    assert (
        only(fetcher(tmp_path, transport, cfg), Target("z0", RA, DEC, 0.0)).reason == "bad_target"
    )
    assert only(fetcher(tmp_path, transport, cfg)).reason == "aperture_too_large"


# --- through the real transport, against a local archive ----------------------------------------


def test_sdss_over_http_from_a_local_archive(tmp_path):
    with ArchiveServer() as server:
        server.post["/dr17/en/tools/search/x_results.aspx"] = lambda form: (
            200,
            (FIXTURES / "skyserver_fields.csv").read_bytes()
            if "fGetNearbyObjEq" in form["cmd"] and form["format"] == "csv"
            else b"bad",
        )
        cfg = fast_config(
            skyserver_url=f"{server.url}/dr17/en/tools/search/x_results.aspx",
            frames_url=f"{server.url}/sas/dr17/eboss/photoObj/frames",
        )
        for band in SDSS_BANDS:
            for f in FIELDS:
                path = frame_url(cfg.frames_url, band, *f)[len(server.url) :]
                server.files[path] = frame_bytes(band, *f)
        server.faults["/dr17/en/tools/search/x_results.aspx"] = [503]
        f = SDSSFetcher(cfg, cache=RequestCache(tmp_path / "cache"), transport=DefaultTransport())
        (cutout,) = list(f.cutouts([TARGET], "optical"))
        assert isinstance(cutout, Cutout), cutout
        assert aperture_flux(cutout, *BCG[:2], 8.0) == pytest.approx(np.full(5, 100.0), rel=0.03)
        assert server.count("POST") == 2 and server.count("GET") == 20
        again = SDSSFetcher(
            cfg, cache=RequestCache(tmp_path / "cache"), transport=DefaultTransport()
        )
        list(again.cutouts([TARGET], "optical"))
        assert server.count() == 22
