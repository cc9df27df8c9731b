"""Chandra fetcher against a recorded HEASARC TAP answer and generated ACIS level-2 event lists."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.wcs import WCS

from survey_mass.constants import ACIS_BACKGROUND_RATE, COSMOLOGY, XRAY_APERTURE
from survey_mass.sources.base import Cutout, CutoutFailure, Target
from survey_mass.sources.chandra import (
    ChandraConfig,
    ChandraFetcher,
    choose_observations,
    newest_evt2,
    observation_query,
    parse_votable,
)
from survey_mass.sources.net.cache import RequestCache
from survey_mass.sources.net.retry import TransientError
from survey_mass.sources.net.transport import DefaultTransport

from support.archives import (
    ArchiveServer,
    ScriptedTransport,
    chandra_evt2,
    evt2_name,
    fits_bytes,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fetch"
RA, DEC = 150.0, 2.0  # the fixture cluster; heasarc_chanmaster.xml lists observations around it
TARGET = Target("CL1", RA, DEC, 0.5)
EXPOSURE = 90132.0  # ObsID 4961, the deepest eligible row of the recorded answer
CLUSTER_COUNTS, CORE_ARCSEC = 5000, 20.0


@pytest.fixture(scope="module")
def evt2():
    return chandra_evt2(
        4961, 150.017, 2.005, exposure=EXPOSURE, cluster=(RA, DEC, CLUSTER_COUNTS, CORE_ARCSEC)
    )


@pytest.fixture(scope="module")
def evt2_gz(evt2):
    return fits_bytes(evt2, "gzip")


def fast_config(**kw) -> ChandraConfig:
    base = dict(rate_per_s=1000.0, backoff_base_s=0.001, backoff_max_s=0.002, max_tries=3)
    base.update(kw)
    return ChandraConfig(**base)


def obs_folder(cfg, obsid):
    return f"{cfg.archive_url}/{obsid % 10}/{obsid}/primary"


def heasarc(cfg, evt2_gz, tap=None, files=None) -> ScriptedTransport:
    transport = ScriptedTransport()
    transport.on("POST", r"/tap/sync$", tap or (FIXTURES / "heasarc_chanmaster.xml").read_bytes())
    folder = obs_folder(cfg, 4961)
    for name, data in (
        files
        or {
            evt2_name(4961, 3): evt2_gz,
            "acisf04961N003_fov1.fits.gz": b"fov",
            "orient.html": b"<html/>",
        }
    ).items():
        transport.file(f"{folder}/{name}", data)
    return transport


def fetcher(tmp_path, transport, cfg=None):
    return ChandraFetcher(
        cfg or fast_config(), cache=RequestCache(tmp_path / "cache"), transport=transport
    )


def band_events_inside(evt2, wcs, npix):
    """Independent count: 0.5-7 keV events whose sky position falls on the cutout grid."""
    ev = evt2["EVENTS"]
    h = ev.header
    ewcs = WCS(naxis=2)
    ewcs.wcs.ctype = [h["TCTYP5"], h["TCTYP6"]]
    ewcs.wcs.crval = [h["TCRVL5"], h["TCRVL6"]]
    ewcs.wcs.crpix = [h["TCRPX5"], h["TCRPX6"]]
    ewcs.wcs.cdelt = [h["TCDLT5"], h["TCDLT6"]]
    ra, dec = ewcs.all_pix2world(ev.data["x"], ev.data["y"], 1)
    col, row = wcs.world_to_pixel_values(ra, dec)
    inside = (np.floor(col + 0.5) >= 0) & (np.floor(col + 0.5) < npix)
    inside &= (np.floor(row + 0.5) >= 0) & (np.floor(row + 0.5) < npix)
    band = (ev.data["energy"] >= 500) & (ev.data["energy"] <= 7000)
    return int((inside & band).sum())


# --- recorded TAP answers -----------------------------------------------------------------------


def test_recorded_chanmaster_answer_and_observation_choice():
    table = parse_votable((FIXTURES / "heasarc_chanmaster.xml").read_bytes())
    chosen = choose_observations(table, RA, DEC, fast_config())
    # 26001 is deeper but not public, 4962 is a grating observation, 4964 is HRC
    assert [r["obsid"] for r in chosen] == [4961, 4963]
    assert chosen[0]["exposure"] == EXPOSURE and chosen[0]["offset_arcmin"] == pytest.approx(
        1.06, abs=0.01
    )
    assert choose_observations(table, RA, DEC, fast_config(min_exposure_ks=50)) == chosen[:1]
    assert choose_observations(table, RA + 1.0, DEC, fast_config()) == []
    assert len(parse_votable((FIXTURES / "heasarc_chanmaster_empty.xml").read_bytes())) == 0
    with pytest.raises(Exception, match="server_error"):
        parse_votable((FIXTURES / "heasarc_tap_error.xml").read_bytes())


def test_query_and_file_names():
    adql = observation_query("chanmaster", RA, DEC, 5 / 60)
    assert adql.startswith(
        "SELECT obsid, name, ra, dec, detector, grating, exposure, status FROM chanmaster"
    )
    assert "CIRCLE('ICRS',150.0000000,2.0000000,0.083333)" in adql
    names = [
        "acisf04961N002_evt2.fits.gz",
        "acisf04961N003_evt2.fits.gz",
        "acisf04961N003_fov1.fits.gz",
        "acisf14961N001_evt2.fits.gz",
    ]
    assert newest_evt2(names, 4961) == "acisf04961N003_evt2.fits.gz"
    assert newest_evt2(names, 5000) is None


# --- the cutout ---------------------------------------------------------------------------------


def test_chandra_cutout_counts_exposure_and_background(tmp_path, evt2, evt2_gz):
    cfg = fast_config()
    (cutout,) = list(fetcher(tmp_path, heasarc(cfg, evt2_gz), cfg).cutouts([TARGET], "xray"))
    assert isinstance(cutout, Cutout), cutout
    hdu = cutout.hdul[0]
    h = hdu.header
    assert h["BUNIT"] == "count" and h["EXPOSURE"] == EXPOSURE and h["OBS_ID"] == 4961
    assert (h["ENERG_LO"], h["ENERG_HI"]) == (0.5, 7.0)
    assert h["BKGRATE"] == pytest.approx(ACIS_BACKGROUND_RATE, rel=0.15)
    wcs = WCS(h)
    n = hdu.data.shape[0]
    assert hdu.data.shape == (n, n)
    assert wcs.pixel_to_world_values((n - 1) / 2, (n - 1) / 2) == pytest.approx((RA, DEC))
    aperture = (XRAY_APERTURE / COSMOLOGY.angular_diameter_distance(TARGET.z) * u.rad).to_value(
        u.deg
    )
    assert n * abs(wcs.wcs.cdelt[0]) >= aperture
    # every 0.5-7 keV photon on the grid is in the image, and nothing else
    assert np.nansum(hdu.data) == band_events_inside(evt2, wcs, n)
    # the cluster: counts within 2' above the background expectation match what was put in
    yy, xx = np.mgrid[0:n, 0:n]
    r_arcsec = np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) * abs(wcs.wcs.cdelt[0]) * 3600
    inside = r_arcsec < 120
    background = h["BKGRATE"] * EXPOSURE * inside.sum() * (abs(wcs.wcs.cdelt[0]) * 60) ** 2
    expected = CLUSTER_COUNTS * (1 - (1 + (120 / CORE_ARCSEC) ** 2) ** -0.5)
    assert np.nansum(hdu.data[inside]) - background == pytest.approx(expected, rel=0.05)
    assert h["COVERAGE"] > 0.9


def test_observation_shared_by_targets_is_read_once_and_a_rerun_fetches_nothing(tmp_path, evt2_gz):
    cfg = fast_config()
    transport = heasarc(cfg, evt2_gz)
    targets = [TARGET, Target("CL2", RA + 1 / 60, DEC, 0.8)]
    first = list(fetcher(tmp_path, transport, cfg).cutouts(targets, "xray"))
    assert all(isinstance(r, Cutout) for r in first)
    assert transport.count("FILE") == 1 and transport.count("LIST") == 1
    assert transport.count("POST") == 2
    before = len(transport.calls)
    again = list(fetcher(tmp_path, transport, cfg).cutouts(targets, "xray"))
    assert len(transport.calls) == before
    np.testing.assert_array_equal(first[1].hdul[0].data, again[1].hdul[0].data)


def test_chandra_over_http_from_a_local_heasarc(tmp_path, evt2_gz):
    with ArchiveServer() as server:
        recorded = (FIXTURES / "heasarc_chanmaster.xml").read_bytes()
        server.post["/xamin/vo/tap/sync"] = lambda form: (
            200 if form["LANG"] == "ADQL" and "chanmaster" in form["QUERY"] else 400,
            recorded,
        )
        server.files["/FTP/chandra/data/byobsid/1/4961/primary/" + evt2_name(4961, 3)] = evt2_gz
        server.files["/FTP/chandra/data/byobsid/1/4961/primary/acisf04961N003_fov1.fits.gz"] = b"x"
        server.faults["/FTP/chandra/data/byobsid/1/4961/primary/" + evt2_name(4961, 3)] = [503]
        cfg = fast_config(
            tap_url=f"{server.url}/xamin/vo/tap",
            archive_url=f"{server.url}/FTP/chandra/data/byobsid",
        )
        f = ChandraFetcher(
            cfg, cache=RequestCache(tmp_path / "cache"), transport=DefaultTransport()
        )
        (cutout,) = list(f.cutouts([TARGET], "xray"))
        assert isinstance(cutout, Cutout), cutout
        assert cutout.hdul[0].header["EXPOSURE"] == EXPOSURE
        hits = server.count()
        assert hits == 4  # query, folder listing, a 503, the event file
        again = ChandraFetcher(
            cfg, cache=RequestCache(tmp_path / "cache"), transport=DefaultTransport()
        )
        list(again.cutouts([TARGET], "xray"))
        assert server.count() == hits


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_event_files_from_a_local_tree_or_an_object_store(tmp_path, evt2_gz, kind):
    """The by-ObsID tree read through fsspec: a local mirror, or an object store (memory:// stands
    in for s3://nasa-heasarc, which needs s3fs and the network)."""
    import fsspec

    rel = "chandra/data/byobsid/1/4961/primary/" + evt2_name(4961, 3)
    if kind == "file":
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).write_bytes(evt2_gz)
        root = f"file://{tmp_path}/chandra/data/byobsid"
    else:
        fsspec.filesystem("memory").pipe(f"/nasa-heasarc/{rel}", evt2_gz)
        root = "memory://nasa-heasarc/chandra/data/byobsid"
    try:
        cfg = fast_config(archive_url=root)
        transport = DefaultTransport()
        tap = (FIXTURES / "heasarc_chanmaster.xml").read_bytes()
        scripted = ScriptedTransport().on("POST", "tap/sync", tap)
        transport.request = scripted.request  # only the TAP query is scripted
        f = ChandraFetcher(
            cfg,
            cache=RequestCache(tmp_path / "cache"),
            transport=transport,
            allowed_protocols=["https", "file", "memory"],
        )
        (cutout,) = list(f.cutouts([TARGET], "xray"))
        assert isinstance(cutout, Cutout), cutout
        assert cutout.hdul[0].header["OBS_ID"] == 4961
    finally:
        if kind == "memory":
            fsspec.filesystem("memory").rm("/nasa-heasarc", recursive=True)


# --- failures -----------------------------------------------------------------------------------


def only(f, target=TARGET) -> CutoutFailure:
    (result,) = list(f.cutouts([target], "xray"))
    assert isinstance(result, CutoutFailure), result
    assert result.instrument == "xray" and result.target == target
    return result


def test_no_observation_cases(tmp_path, evt2_gz):
    cfg = fast_config()
    empty = heasarc(cfg, evt2_gz, tap=(FIXTURES / "heasarc_chanmaster_empty.xml").read_bytes())
    assert only(fetcher(tmp_path / "a", empty, cfg)).reason == "no_observation"
    # the archive has no folder for either candidate
    transport = ScriptedTransport().on(
        "POST", "tap/sync", (FIXTURES / "heasarc_chanmaster.xml").read_bytes()
    )
    failure = only(fetcher(tmp_path / "b", transport, cfg))
    assert (
        failure.reason == "no_observation" and "4961" in failure.detail and "4963" in failure.detail
    )
    # a folder without an ACIS evt2 file
    no_evt = heasarc(cfg, evt2_gz, files={"acisf04961N003_fov1.fits.gz": b"x"})
    assert "no ACIS evt2" in only(fetcher(tmp_path / "c", no_evt, cfg)).detail


def test_tap_errors_and_timeouts(tmp_path, evt2_gz):
    cfg = fast_config(max_tries=2)
    error = heasarc(cfg, evt2_gz, tap=(FIXTURES / "heasarc_tap_error.xml").read_bytes())
    failure = only(fetcher(tmp_path / "a", error, cfg))
    assert failure.reason == "server_error" and "chanmastr" in failure.detail
    slow = ScriptedTransport().on("POST", "tap/sync", TransientError("timeout", "no answer"))
    assert only(fetcher(tmp_path / "b", slow, cfg)).reason == "timeout"
    assert slow.count("POST") == 2
    down = ScriptedTransport().on("POST", "tap/sync", 503)
    failure = only(fetcher(tmp_path / "c", down, cfg))
    assert failure.reason == "server_error" and "2 tries" in failure.detail


def test_truncated_and_wcs_less_event_files(tmp_path, evt2_gz):
    cfg = fast_config()
    cut = gzip.compress(gzip.decompress(evt2_gz)[:-20000])
    truncated = heasarc(cfg, evt2_gz, files={evt2_name(4961, 3): cut})
    failure = only(fetcher(tmp_path / "a", truncated, cfg))
    assert failure.reason == "bad_fits"
    assert not list((tmp_path / "a" / "cache" / "chandra").rglob("*.fits.gz"))  # not cached
    no_wcs = fits_bytes(chandra_evt2(4961, 150.017, 2.005, exposure=1e4, with_wcs=False), "gzip")
    failure = only(
        fetcher(tmp_path / "b", heasarc(cfg, evt2_gz, files={evt2_name(4961, 3): no_wcs}), cfg)
    )
    assert failure.reason == "missing_wcs"


def test_target_off_the_chips_is_no_coverage(tmp_path):
    cfg = fast_config()
    small = fits_bytes(chandra_evt2(4961, 150.017, 2.005, exposure=2e4, fov_arcmin=1.5), "gzip")
    transport = heasarc(cfg, small)
    transport.file(f"{obs_folder(cfg, 4963)}/{evt2_name(4963, 1)}", small)
    failure = only(fetcher(tmp_path, transport, cfg))
    assert failure.reason == "no_coverage" and "off the chips" in failure.detail
