"""Stand-ins for the archives, for tests and offline demos of the real fetchers.

No archive is reachable from the machines this is built on, so the fetchers are exercised against

* FITS files built here the way the archives write them: SDSS corrected frames (bzip2, nanomaggies,
  rotated TAN CD-matrix WCS), Planck-style HEALPix y-maps (BINTABLE, NSIDE/ORDERING/COORDSYS, RING
  or NESTED, Galactic or equatorial), and Chandra ACIS level-2 event lists (EVENTS with sky x/y
  columns carrying TCTYP/TCRVL/TCRPX/TCDLT, EXPOSURE, a GTI extension);
* :class:`ScriptedTransport`, a fake of the network seam that answers from a script and records
  every call (astroquery's tests monkeypatch their request layer the same way);
* :class:`ArchiveServer`, a real HTTP server on 127.0.0.1 with scripted failures (503s, slow
  answers, cut-short bodies) and a log of hits, for exercising the real transport and fsspec.
"""

from __future__ import annotations

import bz2
import gzip
import io
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from survey_mass.constants import ACIS_BACKGROUND_RATE, CHANDRA_PIXEL, XRAY_BAND_KEV
from survey_mass.sources.net.retry import TransientError
from survey_mass.sources.net.transport import Response

# --- SDSS corrected frames ----------------------------------------------------------------------


def sdss_frame(
    band: str,
    run: int,
    camcol: int,
    field: int,
    ra: float,
    dec: float,
    *,
    shape: tuple[int, int] = (149, 205),
    pixel_arcsec: float = 4.0,
    rotation_deg: float = 90.0,
    sources=(),
    noise: float = 0.0,
    seed: int = 0,
    rerun: int = 301,
    with_wcs: bool = True,
) -> fits.HDUList:
    """An SDSS ``frame-*.fits`` lookalike centred on (ra, dec).

    Real frames are 2048 x 1489 pixels of 0.396"; tests use fewer, larger pixels over the same
    kind of sky area. ``sources`` are (ra, dec, flux_nmgy, sigma_arcsec) Gaussians. The image is
    in nanomaggies per pixel and sky-subtracted, as the SAS serves it.
    """
    ny, nx = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    scale = pixel_arcsec / 3600.0
    t = np.radians(rotation_deg)
    # scans run along great circles: frames are rotated with respect to north
    wcs.wcs.cd = scale * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    rng = np.random.default_rng([seed, run, camcol, field, "ugriz".index(band)])
    image = rng.normal(0.0, noise, (ny, nx)) if noise else np.zeros((ny, nx))
    yy, xx = np.mgrid[0:ny, 0:nx]
    for sra, sdec, flux, sigma_arcsec in sources:
        px, py = wcs.world_to_pixel_values(sra, sdec)
        s = sigma_arcsec / pixel_arcsec
        image += flux * np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * s**2)) / (2 * np.pi * s**2)
    header = wcs.to_header() if with_wcs else fits.Header()
    for key, value in {
        "TELESCOP": "SDSS 2.5-M",
        "FILTER": band,
        "CAMCOL": camcol,
        "RUN": run,
        "FRAME": field,
        "RERUN": str(rerun),
        "BUNIT": "nanomaggy",
        "EXPTIME": 53.907456,
        "NMGY": 0.00475,
        "SOFTBIAS": 1000,
        "PHOTVSN": "v5_6_5",
        "ASTRVSN": "sky_v1",
        "VERSIDL": "7.1",
    }.items():
        header[key] = value
    calib = fits.ImageHDU(np.full(nx, 0.00475, np.float32), name="CALIB")
    sky = fits.BinTableHDU.from_columns(
        [
            fits.Column("ALLSKY", "64E", dim="(8,8)", array=np.zeros((1, 8, 8), np.float32)),
            fits.Column("XINTERP", f"{ny}E", array=np.zeros((1, ny), np.float32)),
        ]
    )
    return fits.HDUList([fits.PrimaryHDU(image.astype(np.float32), header=header), calib, sky])


def fits_bytes(hdul: fits.HDUList, compress: str | None = None) -> bytes:
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    data = buffer.getvalue()
    if compress == "bz2":
        return bz2.compress(data)
    if compress == "gzip":
        return gzip.compress(data, mtime=0)
    return data


def skyserver_csv(fields) -> bytes:
    """SkyServer's CSV answer to the field search, for [(run, rerun, camcol, field)]."""
    rows = "".join(f"{r},{rr},{c},{f}\n" for r, rr, c, f in fields)
    return f"#Table1\nrun,rerun,camcol,field\n{rows}".encode()


# --- Planck HEALPix y-maps ----------------------------------------------------------------------


def healpix_ymap(
    nside: int = 64,
    *,
    ordering: str = "RING",
    coordsys: str = "G",
    blobs=((0.0, 0.0, 1e-4, 1.0),),
    columns=("FULL", "FIRST", "LAST"),
    vector: int = 1,
    unseen_within=None,
    header_keys: dict | None = None,
) -> fits.HDUList:
    """A full-sky y-map in the Planck PR2 layout: PRIMARY + BINTABLE with HEALPix keywords.

    ``blobs`` are (ra, dec, peak_y, sigma_deg) Gaussians placed by their ICRS position, whatever
    the map's frame; ``unseen_within`` = (ra, dec, radius_deg) marks a disk UNSEEN. ``vector``
    > 1 stores the map as ``{vector}E`` rows, as healpy writes large maps.
    """
    from astropy_healpix import HEALPix

    from survey_mass.sources.planck import FRAMES, UNSEEN

    hp = HEALPix(nside=nside, order=ordering.lower(), frame=FRAMES[coordsys.upper()])
    centres = hp.healpix_to_skycoord(np.arange(hp.npix)).icrs
    y = np.zeros(hp.npix)
    for ra, dec, peak, sigma in blobs:
        sep = centres.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
        y += peak * np.exp(-(sep**2) / (2 * sigma**2))
    if unseen_within is not None:
        ra, dec, radius = unseen_within
        y[centres.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg < radius] = UNSEEN
    cols = []
    for k, name in enumerate(columns):
        values = (y * (1.0 + 0.01 * k)).astype(np.float32)  # half-ring maps differ a little
        if vector > 1:
            cols.append(
                fits.Column(name, f"{vector}E", unit="y_sz", array=values.reshape(-1, vector))
            )
        else:
            cols.append(fits.Column(name, "E", unit="y_sz", array=values))
    table = fits.BinTableHDU.from_columns(cols, name="COMP-MAP")
    h = table.header
    for key, value in {
        "PIXTYPE": "HEALPIX",
        "ORDERING": ordering.upper(),
        "COORDSYS": coordsys.upper(),
        "NSIDE": nside,
        "FIRSTPIX": 0,
        "LASTPIX": hp.npix - 1,
        "INDXSCHM": "IMPLICIT",
        "OBJECT": "FULLSKY",
        "POLAR": False,
        "BAD_DATA": UNSEEN,
        "AST-COMP": "Compton-SZ",
        "METHOD": "MILCA",
    }.items():
        h[key] = value
    for key, value in (header_keys or {}).items():
        if value is None:
            h.remove(key, ignore_missing=True)
        else:
            h[key] = value
    return fits.HDUList([fits.PrimaryHDU(), table])


# --- Chandra ACIS level-2 events ----------------------------------------------------------------


def chandra_evt2(
    obsid: int,
    ra_pnt: float,
    dec_pnt: float,
    *,
    exposure: float = 40e3,
    cluster=None,
    bkg_rate: float = ACIS_BACKGROUND_RATE,
    fov_arcmin: float = 16.9,
    roll_deg: float = 30.0,
    seed: int = 0,
    with_wcs: bool = True,
    detnam: str = "ACIS-0123",
) -> fits.HDUList:
    """An ``acisf*_evt2.fits`` lookalike: events over a square field of view, rolled.

    ``cluster`` = (ra, dec, n_counts, core_radius_arcsec): a beta = 2/3 model, all in band.
    Background is flat over the field with ``bkg_rate`` counts/s/arcmin^2 in 0.5-7 keV (its
    energies are log-uniform over 0.3-10 keV, so a quarter falls outside the band).
    """
    rng = np.random.default_rng([seed, obsid])
    pix_deg = CHANDRA_PIXEL.to_value(u.deg)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra_pnt, dec_pnt]
    wcs.wcs.crpix = [4096.5, 4096.5]
    wcs.wcs.cdelt = [-pix_deg, pix_deg]
    lo, hi = 300.0, 10000.0
    band_fraction = np.log(XRAY_BAND_KEV[1] * 1e3 / (XRAY_BAND_KEV[0] * 1e3)) / np.log(hi / lo)
    n_bkg = rng.poisson(bkg_rate / band_fraction * fov_arcmin**2 * exposure)
    half = fov_arcmin / 60.0 / 2 / pix_deg
    u_, v_ = rng.uniform(-half, half, (2, n_bkg))
    t = np.radians(roll_deg)
    dx, dy = np.cos(t) * u_ - np.sin(t) * v_, np.sin(t) * u_ + np.cos(t) * v_
    energy = np.exp(rng.uniform(np.log(lo), np.log(hi), n_bkg))
    xs, ys, es = [4096.5 + dx], [4096.5 + dy], [energy]
    if cluster is not None:
        cra, cdec, n_counts, rc = cluster
        cx, cy = wcs.world_to_pixel_values(cra, cdec)
        r = rc / CHANDRA_PIXEL.to_value(u.arcsec) * np.sqrt((1 - rng.random(n_counts)) ** -2 - 1)
        phi = rng.uniform(0, 2 * np.pi, n_counts)
        xs.append(cx + 1 + r * np.cos(phi))
        ys.append(cy + 1 + r * np.sin(phi))
        es.append(rng.uniform(600.0, 6500.0, n_counts))
    x, y, energy = (np.concatenate(a) for a in (xs, ys, es))
    # keep what fell on the (rolled) field of view
    ddx, ddy = x - 4096.5, y - 4096.5
    uu, vv = np.cos(t) * ddx + np.sin(t) * ddy, -np.sin(t) * ddx + np.cos(t) * ddy
    on = (np.abs(uu) <= half) & (np.abs(vv) <= half)
    x, y, energy = x[on], y[on], energy[on]
    n = x.size
    order = rng.permutation(n)
    x, y, energy = x[order], y[order], energy[order]
    time_ = np.sort(rng.uniform(0, exposure, n)) + 2.5e8
    cols = [
        fits.Column("time", "D", unit="s", array=time_),
        fits.Column("ccd_id", "I", array=rng.integers(0, 4, n)),
        fits.Column("chipx", "I", unit="pixel", array=rng.integers(1, 1025, n)),
        fits.Column("chipy", "I", unit="pixel", array=rng.integers(1, 1025, n)),
        fits.Column("x", "E", unit="pixel", array=x.astype(np.float32)),
        fits.Column("y", "E", unit="pixel", array=y.astype(np.float32)),
        fits.Column("energy", "E", unit="eV", array=energy.astype(np.float32)),
        fits.Column("pi", "J", unit="chan", array=np.clip(energy / 14.6, 1, 1024).astype(np.int32)),
        fits.Column("grade", "I", array=np.zeros(n, np.int16)),
        fits.Column("status", "32X", array=np.zeros((n, 32), bool)),
    ]
    events = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    h = events.header
    if with_wcs:
        for k in (5, 6):  # x and y are columns 5 and 6
            a = k - 5
            h[f"TCTYP{k}"] = wcs.wcs.ctype[a]
            h[f"TCRVL{k}"] = wcs.wcs.crval[a]
            h[f"TCRPX{k}"] = wcs.wcs.crpix[a]
            h[f"TCDLT{k}"] = wcs.wcs.cdelt[a]
            h[f"TCUNI{k}"] = "deg"
            h[f"TLMIN{k}"] = 0.5
            h[f"TLMAX{k}"] = 8192.5
    for key, value in {
        "HDUCLASS": "OGIP",
        "HDUCLAS1": "EVENTS",
        "HDUCLAS2": "ALL",
        "TELESCOP": "CHANDRA",
        "INSTRUME": "ACIS",
        "DETNAM": detnam,
        "GRATING": "NONE",
        "OBS_ID": str(obsid),
        "OBJECT": "FIXTURE",
        "DATE-OBS": "2004-05-02T10:00:00",
        "TSTART": 2.5e8,
        "TSTOP": 2.5e8 + exposure * 1.02,
        "ONTIME": exposure * 1.013,
        "LIVETIME": exposure,
        "EXPOSURE": exposure,
        "RA_NOM": ra_pnt,
        "DEC_NOM": dec_pnt,
        "ROLL_NOM": roll_deg,
        "RA_PNT": ra_pnt,
        "DEC_PNT": dec_pnt,
        "MJDREF": 50814.0,
        "TIMESYS": "TT",
        "ASCDSVER": "10.12.2",
    }.items():
        h[key] = value
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column("START", "D", unit="s", array=[2.5e8]),
            fits.Column("STOP", "D", unit="s", array=[2.5e8 + exposure]),
        ],
        name="GTI",
    )
    gti.header["CCD_ID"] = 3
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "CHANDRA"
    primary.header["OBS_ID"] = str(obsid)
    return fits.HDUList([primary, events, gti])


def evt2_name(obsid: int, version: int = 2, gz: bool = True) -> str:
    return f"acisf{obsid:05d}N{version:03d}_evt2.fits" + (".gz" if gz else "")


def chanmaster_votable(rows) -> bytes:
    """HEASARC TAP's VOTable answer for chanmaster rows (dicts of obsid, ra, dec, ...)."""
    from astropy.io.votable.tree import VOTableFile
    from astropy.table import Table

    names = ["obsid", "name", "ra", "dec", "detector", "grating", "exposure", "status"]
    dtypes = [np.int32, "U24", np.float64, np.float64, "U8", "U6", np.float64, "U10"]
    table = Table(names=names, dtype=dtypes)
    for row in rows:
        table.add_row(
            [
                row.get(n, d)
                for n, d in zip(
                    names, [0, "", 0.0, 0.0, "ACIS-I", "NONE", 0.0, "archived"], strict=True
                )
            ]
        )
    vot = VOTableFile.from_table(table)
    buffer = io.BytesIO()
    vot.to_xml(buffer)
    return buffer.getvalue()


# --- test doubles of the network ----------------------------------------------------------------


class ScriptedTransport:
    """A fake :class:`~survey_mass.sources.net.transport.Transport` answering from a script.

    ``on(method, pattern, *outcomes)`` adds a route (``pattern`` a regex searched in the URL, or for
    POSTs in the URL plus the form body); each call takes the next outcome, the last one repeats.
    An outcome is bytes (HTTP 200), an int status, a Response, or an exception to raise. Method
    "FILE" answers ``download`` (``file(url, ...)`` adds one); ``list`` names the ``file`` URLs one
    level below the folder, or what ``listings[folder]`` says.
    Every call is recorded in ``calls`` as (method, url).
    """

    def __init__(self):
        self.routes: list[tuple[str, re.Pattern, deque]] = []
        self.calls: list[tuple[str, str]] = []
        self.listings: dict[str, list[str]] = {}
        self._file_urls: set[str] = set()
        self._lock = threading.Lock()

    def on(self, method: str, pattern: str, *outcomes) -> ScriptedTransport:
        self.routes.append((method.upper(), re.compile(pattern), deque(outcomes)))
        return self

    def file(self, url: str, *outcomes) -> ScriptedTransport:
        """Serve ``url`` to ``download`` (and list it in its folder)."""
        self._file_urls.add(url)
        return self.on("FILE", re.escape(url) + "$", *outcomes)

    def _next(self, method: str, url: str, body: str = ""):
        with self._lock:
            self.calls.append((method, url))
            for m, pattern, outcomes in self.routes:
                if m == method and (pattern.search(url) or (body and pattern.search(body))):
                    return outcomes.popleft() if len(outcomes) > 1 else outcomes[0]
        return 404

    def count(self, method: str | None = None, pattern: str = "") -> int:
        return sum(
            1
            for m, url in self.calls
            if (method is None or m == method) and re.search(pattern, url)
        )

    def request(self, method, url, *, params=None, data=None, timeout):
        outcome = self._next(method.upper(), url, str(data or params or ""))
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, Response):
            return outcome
        if isinstance(outcome, int):
            return Response(outcome, f"<html>HTTP {outcome}</html>".encode(), url)
        return Response(200, outcome, url)

    def download(self, url, dest, *, timeout, storage_options=None):
        outcome = self._next("FILE", url)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, int):
            if outcome == 404:
                raise FileNotFoundError(url)
            raise TransientError("http", f"HTTP {outcome} from {url}", outcome)
        Path(dest).write_bytes(outcome)

    def list(self, url, *, timeout, storage_options=None):
        with self._lock:
            self.calls.append(("LIST", url))
        if url.rstrip("/") in self.listings:
            return self.listings[url.rstrip("/")]
        prefix = url.rstrip("/") + "/"
        names = sorted(
            {u[len(prefix) :].split("/")[0] for u in self._file_urls if u.startswith(prefix)}
        )
        if not names:
            raise FileNotFoundError(url)
        return names


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that hang up are part of the script
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class ArchiveServer:
    """A scripted HTTP archive on 127.0.0.1: static files, folder listings, POST handlers, faults.

    ``files[path] = bytes`` serves a file (folders list their children as HTML links, as Apache
    does); ``post[path] = fn(form) -> (status, bytes)`` answers POSTs; ``faults[path]`` is a list
    of per-request faults consumed in order: an int status, ("slow", seconds) or ("truncate",
    n_bytes). ``hits`` logs (method, path). Use as a context manager.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.post: dict[str, Callable[[dict], tuple[int, bytes]]] = {}
        self.faults: dict[str, list] = {}
        self.hits: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _fault(self, path):
                with server._lock:
                    server.hits.append((self.command, path))
                    queue = server.faults.get(path)
                    return queue.pop(0) if queue else None

            def _send(
                self,
                status,
                body: bytes,
                ctype="application/octet-stream",
                head=False,
                truncate: int | None = None,
            ):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if truncate is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if head:
                    return
                self.wfile.write(body if truncate is None else body[:truncate])
                if truncate is not None:
                    self.wfile.flush()
                    self.close_connection = True

            def _serve(self, head=False):
                path = self.path.split("?", 1)[0]
                fault = self._fault(path)
                truncate = None
                if isinstance(fault, int):
                    return self._send(fault, f"<html>{fault}</html>".encode(), "text/html", head)
                if isinstance(fault, tuple) and fault[0] == "slow":
                    time.sleep(fault[1])
                if isinstance(fault, tuple) and fault[0] == "truncate":
                    truncate = fault[1]
                if path in server.files:
                    return self._send(200, server.files[path], head=head, truncate=truncate)
                folder = path.rstrip("/") + "/"
                children = sorted(
                    {p[len(folder) :].split("/")[0] for p in server.files if p.startswith(folder)}
                )
                if children:
                    links = "".join(f'<a href="{c}">{c}</a>\n' for c in children)
                    body = f"<html><body><h1>Index of {folder}</h1>\n{links}</body></html>"
                    return self._send(200, body.encode(), "text/html", head)
                return self._send(404, b"<html>404 Not Found</html>", "text/html", head)

            def do_GET(self):
                self._serve()

            def do_HEAD(self):
                self._serve(head=True)

            def do_POST(self):
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                fault = self._fault(path)
                if isinstance(fault, int):
                    return self._send(fault, f"<html>{fault}</html>".encode(), "text/html")
                if isinstance(fault, tuple) and fault[0] == "slow":
                    time.sleep(fault[1])
                handler = server.post.get(path)
                if handler is None:
                    return self._send(404, b"no such service", "text/plain")
                status, body = handler(form)
                self._send(status, body, "text/plain")

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def count(self, method: str | None = None, path_pattern: str = "") -> int:
        with self._lock:
            return sum(
                1
                for m, p in self.hits
                if (method is None or m == method) and re.search(path_pattern, p)
            )

    def __enter__(self) -> ArchiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        return False
