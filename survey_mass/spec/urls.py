"""fsspec URLs in job specs: which protocols a URL would open, checked against an allow-list."""

from __future__ import annotations


def url_protocols(url: str) -> list[str]:
    """Every fsspec protocol a URL would use, chained ones included.

    ``"simplecache::s3://b/k"`` -> ``["simplecache", "s3"]``, ``"zip://a.csv::https://h/x.zip"``
    -> ``["zip", "https"]``; a plain path is ``["file"]``. fsspec opens each link of a chain, so an
    allow-list must hold for all of them, not only the first or the last.
    """
    parts = url.split("::")
    protocols = []
    for i, part in enumerate(parts):
        if "://" in part:
            protocols.append(part.split("://", 1)[0].lower())
        elif i < len(parts) - 1:
            protocols.append(part.lower())  # a chained layer named alone, e.g. "simplecache::"
        else:
            protocols.append("file")
    return protocols


def check_protocols(key: str, url: str, allowed: list[str]) -> None:
    """ValueError naming ``key`` if any protocol of ``url`` (chains included) is not allowed."""
    for protocol in url_protocols(url):
        if protocol not in allowed:
            raise ValueError(
                f"{key} {url!r}: protocol {protocol!r} is not allowed; use one of {allowed} "
                "(or add it to allowed_protocols beside that key)"
            )
