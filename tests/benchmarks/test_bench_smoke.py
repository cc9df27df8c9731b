"""Benchmarks that cannot rot: each ``benchmarks/bench_*.py --smoke`` runs in seconds here, and
the test checks that it measured the path it names (a stub really called, the stacked graph really
traced, the same pairs found), never its timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def smoke(name: str) -> list[dict]:
    """The JSON lines a benchmark prints in its smoke mode (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(ln) for ln in done.stdout.splitlines() if ln.startswith("{")]


def test_every_benchmark_has_a_smoke_test():
    covered = {"bench_crossmatch.py", "bench_inference.py", "bench_scale.py"}
    covered |= {"bench_gpu_path.py", "bench_mock_survey.py", "bench_warm.py", "bench_stages.py"}
    assert {p.name for p in BENCHMARKS.glob("bench_*.py")} == covered


def test_crossmatch_smoke_checks_pairs_against_astropy_and_lsdb():
    lines = smoke("bench_crossmatch.py")
    by_name = {ln.get("benchmark", "").split(" ")[0]: ln for ln in lines}
    assert by_name["crossmatch"]["same_pairs_as_astropy"]
    assert by_name["crossmatch"]["partitioned_same_as_whole"]
    catalog = [ln for ln in lines if "ratio_vs_astropy" in ln]
    assert catalog and all(ln["same_pairs_as_astropy"] and ln["pairs"] > 0 for ln in catalog)
    assert [ln["same_pairs_as_lsdb"] for ln in lines if "ratio_vs_lsdb" in ln] == [True]


def test_inference_smoke_runs_the_stacked_graph_with_the_eager_masses():
    last = smoke("bench_inference.py")[-1]
    assert last["benchmark"].startswith("stacked graph vs member by member")
    check = last["rows"][-1]
    assert check["graphs_traced"] >= 2  # with and without TTA: the stacked path really ran
    assert check["max_mass_difference_dex"] <= 1e-5
    assert all(row["stacked_images_per_s"] > 0 for row in last["rows"][:-1])


def test_gpu_path_smoke_runs_the_cpu_side_through_the_stacked_graph():
    result = smoke("bench_gpu_path.py")[-1]
    assert result["clusters"] == 8 and result["stacked_graphs_traced"] >= 1


def test_mock_survey_smoke_renders_every_instrument_and_streams():
    result = smoke("bench_mock_survey.py")[-1]
    assert result["rendered_instruments"] == ["optical", "sz", "xray"]
    assert result["painter_matches_naive"] and result["streamed_truth_rows"] > 0


def test_scale_smoke_weighs_through_the_targets_only_stub():
    machine, result = smoke("bench_scale.py")
    assert machine["cores_usable"] >= 1
    # the stub patched survey_mass.runner.shard.weigh on the workers and weighed every target
    assert result["mode"] == "targets-only"
    assert 0 < result["stub_weighed_targets"] == result["weighed"] == result["targets"]


def test_warm_smoke_keeps_models_loaded_across_jobs_on_one_cluster():
    result = smoke("bench_warm.py")[-1]
    assert result["targets"] > 0 and result["same_rows_every_run"]
    assert len(result["warm_seconds"]) == 2 and result["pure_compute_seconds"] > 0
    assert result["models_kept_loaded"]  # the same ensemble objects before and after the jobs
    assert result["ensembles_per_worker"] == [1, 1]


def test_stages_smoke_times_every_stage_of_the_production_path():
    result = smoke("bench_stages.py")[-1]
    assert result["rows"] > 0
    # every stage's production function was called on the clock (the script raises otherwise)
    assert all(n > 0 for n in result["calls"].values())
    shares = result["share"]
    assert abs(sum(shares.values()) - 1.0) < 1e-2 and min(shares.values()) > -1e-3
    without_render = shares["inference"] / (1.0 - shares["render"])
    assert abs(result["inference_share_without_render"] - without_render) < 5e-3
    assert all(result["ms_per_row"][s] > 0 for s in ("render", "preprocess", "inference"))
