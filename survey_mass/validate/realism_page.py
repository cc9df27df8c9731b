"""The realism report's page: figures (matplotlib PNGs) and HTML tables of
:func:`survey_mass.validate.realism.realism_numbers`."""

from __future__ import annotations

import json

import numpy as np


def figures(numbers: dict) -> dict[str, bytes]:
    import matplotlib.pyplot as plt

    from survey_mass.validate.plots import to_png

    figs = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in zip(
        axes, ("psz2_counts", "redmapper_counts"), ("PSZ2", "redMaPPer"), strict=True
    ):
        rows = numbers[key]
        mid = [0.5 * sum(r["z"]) for r in rows]
        ax.errorbar(
            mid,
            [r["real"] for r in rows],
            fmt="ko",
            label="real",
            yerr=[r["real"] / np.sqrt(max(r["n_real"], 1)) for r in rows],
        )
        ax.plot(mid, [r["mock"] for r in rows], "C1s-", label="mock")
        ax.set(xlabel="z", ylabel="clusters per 1000 deg$^2$", title=title)
        ax.legend()
    figs["counts"] = to_png(fig)
    sc = numbers["_scatter"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(sc["real_psz2"]["z"], sc["real_psz2"]["logm500"], "k.", ms=2, label="real PSZ2")
    axes[0].plot(
        sc["mock_psz2"]["z"], sc["mock_psz2"]["logm500"], "C1.", ms=2, alpha=0.5, label="mock"
    )
    axes[0].set(xlabel="z", ylabel="log10 MSZ [Msun]", title="MSZ vs z")
    axes[1].loglog(10 ** sc["real_lambda"][0], sc["real_lambda"][1], "k.", ms=3, label="real")
    axes[1].loglog(
        10 ** np.asarray(sc["mock_lambda"][0]),
        sc["mock_lambda"][1],
        "C1.",
        ms=2,
        alpha=0.5,
        label="mock",
    )
    axes[1].set(xlabel="MSZ [Msun]", ylabel="lambda", title="PSZ2 x redMaPPer")
    for ax in axes:
        ax.legend()
    figs["mass"] = to_png(fig)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    rows = numbers["y500_at_msz"]
    mid = [0.5 * sum(r["log10_msz"]) for r in rows]
    axes[0].plot(mid, [r["real"] for r in rows], "ko", label="DeepPlanck")
    axes[0].plot(mid, [r["mock"] for r in rows], "C1s", label="mock")
    axes[0].set(xlabel="log10 MSZ", ylabel="median log10 Y_500", title="Y_500 at fixed MSZ")
    ym = numbers["y_maps"]
    for key, style in (("real", "k-"), ("mock", "C1--")):
        ell, cl = np.array(ym[key]["ell"]), np.array(ym[key]["cl"], dtype=float)
        axes[1].loglog(ell, ell * (ell + 1) * cl / (2 * np.pi), style, label=key)
        axes[2].plot(ym[key]["acf_profile"], style, label=key)
    axes[1].set(xlabel="multipole l", ylabel="l(l+1)C_l/2pi", title="y noise power")
    axes[2].set(xlabel="lag [px]", ylabel="autocorrelation", title="y noise autocorrelation")
    for ax in axes:
        ax.legend()
    figs["ymaps"] = to_png(fig)
    return figs


def _table(rows: list[dict], keys: list[str]) -> str:
    head = "".join(f"<th>{k}</th>" for k in keys)

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, list):
            return "-".join(f"{x:g}" for x in v)
        return str(v)

    body = "".join(
        "<tr>" + "".join(f"<td>{cell(r.get(k))}</td>" for k in keys) + "</tr>" for r in rows
    )
    return f"<table border=1 cellpadding=3><tr>{head}</tr>{body}</table>"


def page(numbers: dict, figure_files: dict[str, str]) -> str:
    count_keys = ["z", "real", "mock", "n_real", "n_mock", "ratio", "allowed", "ok"]
    med_keys = ["log10_msz", "real", "mock", "n_real", "n_mock", "diff_dex", "allowed", "ok"]
    noise = [{"quantity": k, **v} for k, v in numbers["y_noise"].items()]
    xr = numbers["xray_vs_mcxc"]["per_z_bin"]
    return "\n".join(
        [
            "<html><head><meta charset='utf-8'><title>Mock survey realism</title></head><body>",
            f"<h1>How realistic is the mock survey ({numbers['universe']['physics']})</h1>",
            f"<p>Tolerances: {json.dumps(numbers['tolerance'])} (+2 sigma, Poisson / medians).</p>",
            "<h2>PSZ2 counts per 1000 deg2 (clusters with z)</h2>",
            _table(numbers["psz2_counts"], count_keys),
            "<h2>SDSS redMaPPer counts per 1000 deg2</h2>",
            _table(numbers["redmapper_counts"], count_keys),
            f"<img src='{figure_files['counts']}'>",
            "<h2>median lambda at fixed MSZ (log10)</h2>",
            _table(numbers["lambda_at_msz"], med_keys),
            "<h2>median Y_500 at fixed MSZ (log10, DeepPlanck units)</h2>",
            _table(numbers["y500_at_msz"], med_keys),
            f"<p>DeepPlanck Y_500 relation: {json.dumps(numbers['deepplanck_y_relation'])}</p>",
            f"<img src='{figure_files['mass']}'>",
            "<h2>y-map noise outside the cluster</h2>",
            _table(noise, ["quantity", "real", "mock", "ratio", "ok"]),
            f"<p>aperture Y (10 px) real / mock twin: "
            f"{numbers['y_maps']['aperture_y_real_over_mock_twin']:.3f}</p>",
            f"<img src='{figure_files['ymaps']}'>",
            "<h2>X-ray: ACIS-I count rates implied by MCXC L500 vs the mock</h2>",
            _table(xr, ["z", "n", "median_rate_real", "median_log10_mock_over_real"]),
            f"<p>{numbers['xray_vs_mcxc']['note']}</p></body></html>",
        ]
    )
