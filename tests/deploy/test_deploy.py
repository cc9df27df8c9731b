"""Deployment: the generated Slurm, Kubernetes, systemd and cron files are current and valid, and
``survey-mass run --cluster`` reaches a scheduler and workers started with ``dask scheduler`` and
``dask worker``.

Validation is schema-level: sbatch directives against sbatch's options and the worker script that
dask-jobqueue builds from our config; Kubernetes objects against the Kubernetes API models of the
official Python client (unknown fields and missing required ones fail) and, for the DaskJob, the
Dask operator's CRD schema; systemd units with ``systemd-analyze verify``.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dask
import pyarrow.dataset as ds
import pytest
import yaml

from survey_mass.cli import main
from survey_mass.cli.run import apply_overrides
from survey_mass.errors import UserError
from survey_mass.runner.dask_cluster import make_cluster, slurm_worker_options
from survey_mass.spec.job import ComputeSpec, load_job_spec, parse_job_spec

from support.dask_cli import DaskCLICluster
from support.layout import current_root


def load_render_script():
    """``deploy/render.py``, a script of the repository rather than a module of the package."""
    path = Path(__file__).resolve().parents[2] / "deploy" / "render.py"
    spec = importlib.util.spec_from_file_location("deploy_render", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


deploy_render = load_render_script()
DEPLOY_DIR = deploy_render.DEPLOY_DIR
REPO = DEPLOY_DIR.parent
NIGHTLY = DEPLOY_DIR / "nightly.toml"


def test_the_checked_in_files_are_what_the_generator_renders():
    rendered = deploy_render.render(deploy_render.Deployment(), NIGHTLY.read_text())
    for relative, text in rendered.items():
        assert (DEPLOY_DIR / relative).read_text() == text, (
            f"deploy/{relative} is stale: run `python deploy/render.py`"
        )


@pytest.mark.parametrize("cluster", ["local", "local-cuda", "slurm", "kubernetes", "tcp://s:8786"])
def test_the_nightly_job_takes_every_cluster_and_its_output(cluster):
    spec = apply_overrides(load_job_spec(NIGHTLY), cluster, "s3://catalogs/nightly")
    assert spec.cluster.kind == ("address" if "://" in cluster else cluster)
    assert spec.output.url == "s3://catalogs/nightly"
    assert spec.targets.footprint.area_deg2() > 5000  # a full survey footprint


def test_every_scheduled_run_updates_its_one_output():
    """Each night updates the same output (a new version when something changed), as JSON."""
    rendered = deploy_render.render(deploy_render.Deployment(), NIGHTLY.read_text())
    runs = []
    for text in rendered.values():
        code = " ".join(
            " ".join(line.split())
            for line in text.splitlines()
            if not line.lstrip().startswith("#")
        )  # YAML folds long commands over lines
        runs += re.findall(r"survey-mass run .*?--no-dashboard", code)
    assert len(runs) >= 4
    assert all("--update --json" in run and "$(date" not in run for run in runs)


# --- Slurm ----------------------------------------------------------------------------------------

#: sbatch options (long names) and the short flags dask-jobqueue writes
SBATCH_LONG = {
    "account",
    "array",
    "begin",
    "chdir",
    "constraint",
    "cpus-per-task",
    "dependency",
    "error",
    "exclusive",
    "gpus",
    "gpus-per-node",
    "gres",
    "job-name",
    "mail-type",
    "mail-user",
    "mem",
    "mem-per-cpu",
    "nodes",
    "ntasks",
    "ntasks-per-node",
    "output",
    "partition",
    "qos",
    "requeue",
    "signal",
    "time",
    "tmp",
}
SBATCH_SHORT = {"-A", "-J", "-e", "-o", "-p", "-n", "-N", "-t", "-c"}


def sbatch_directives(script: str) -> list[str]:
    return [line.split(None, 1)[1] for line in script.splitlines() if line.startswith("#SBATCH")]


def assert_valid_sbatch(script: str) -> None:
    assert script.startswith("#!/usr/bin/env bash\n")
    for directive in sbatch_directives(script):
        if directive.startswith("--"):
            assert directive[2:].split("=")[0] in SBATCH_LONG, directive
        else:
            assert directive.split()[0] in SBATCH_SHORT, directive
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_the_slurm_driver_script_is_a_valid_batch_job():
    script = (DEPLOY_DIR / "slurm" / "survey-mass-nightly.sbatch").read_text()
    assert_valid_sbatch(script)
    assert "--dependency=singleton" in sbatch_directives(script)  # never two drivers at once
    assert "export DASK_CONFIG=/opt/survey-mass/deploy/slurm" in script
    assert re.search(
        r"survey-mass run deploy/nightly.toml --cluster slurm --output \S+ --update --json", script
    )


def test_the_gpu_worker_job_dask_jobqueue_submits():
    jobqueue = pytest.importorskip("dask_jobqueue", reason="dask-jobqueue: pip install '.[deploy]'")
    config = yaml.safe_load((DEPLOY_DIR / "slurm" / "jobqueue.yaml").read_text())
    spec = apply_overrides(load_job_spec(NIGHTLY), "slurm", None).cluster
    # merged into dask-jobqueue's defaults, as a DASK_CONFIG file would be
    with dask.config.set(
        {f"jobqueue.slurm.{k}": v for k, v in config["jobqueue"]["slurm"].items()}
    ):
        job = jobqueue.slurm.SLURMJob(scheduler="tcp://10.0.0.1:8786", **slurm_worker_options(spec))
        script = job.job_script()
    assert_valid_sbatch(script)
    directives = sbatch_directives(script)
    assert {"-p gpu", "--gres=gpu:1", "-t 06:00:00", "--cpus-per-task=8", "--mem=32G"} <= set(
        directives
    ), directives
    # one dask-cuda worker process per GPU, with the job spec's threads and memory
    command = script.strip().splitlines()[-1]
    assert re.search(r"python\S* -m dask_cuda.cli tcp://10.0.0.1:8786 ", command), command
    assert (
        f"--nthreads {spec.threads_per_worker}" in command and "--memory-limit 8.00GiB" in command
    )
    assert "source /opt/survey-mass/venv/bin/activate" in script
    assert "export TF_FORCE_GPU_ALLOW_GROWTH=true" in script


# --- Kubernetes -----------------------------------------------------------------------------------


def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY_DIR / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def check_model(value, type_name: str, path: str) -> None:
    """``value`` fits ``type_name`` of the Kubernetes Python client: no unknown field, every
    required one present, scalars of the declared type."""
    import kubernetes.client as k8s

    if type_name.lower().startswith("list["):  # "list[X]" or "List[X]", by client version
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            check_model(item, type_name[5:-1], f"{path}[{i}]")
    elif type_name.lower().startswith(("dict(", "dict[")):  # "dict(str, X)" or "Dict[str, X]"
        assert isinstance(value, dict), path
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check_model(item, inner, f"{path}.{key}")
    elif type_name in ("str", "datetime"):
        assert isinstance(value, str), f"{path}: {value!r} is not a string"
    elif type_name == "int":
        assert isinstance(value, int) and not isinstance(value, bool), path
    elif type_name == "bool":
        assert isinstance(value, bool), path
    elif type_name == "object":
        return
    else:
        model = getattr(k8s, type_name)
        assert isinstance(value, dict), path
        attributes = {json_name: attr for attr, json_name in model.attribute_map.items()}
        unknown = set(value) - set(attributes)
        assert not unknown, f"{path}: unknown field(s) {sorted(unknown)} for {type_name}"
        model(**{attributes[k]: v for k, v in value.items()})  # raises on a missing required field
        for key, item in value.items():
            check_model(item, model.openapi_types[attributes[key]], f"{path}.{key}")


def strict(schema: dict) -> dict:
    """A CRD's structural schema made strict: fields it does not declare are errors, not pruned."""
    schema = dict(schema)
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
    for key in ("properties",):
        if key in schema:
            schema[key] = {k: strict(v) for k, v in schema[key].items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = strict(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = strict(schema["additionalProperties"])
    return schema


BUILT_IN = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("batch/v1", "CronJob"): "V1CronJob",
}


def test_kubernetes_objects_match_the_api_and_the_dask_operator_crd():
    pytest.importorskip("kubernetes", reason="kubernetes client: pip install '.[deploy]'")
    operator = pytest.importorskip("dask_kubernetes", reason="pip install '.[deploy]'")
    jsonschema = pytest.importorskip("jsonschema")

    # the operator's installed CRD (the Helm chart's copy has every \$ref resolved)
    crds = Path(operator.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"
    crd_file = crds / "daskjob.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    kinds = []
    for doc in k8s_documents():
        kinds.append(doc["kind"])
        if doc["kind"] == "DaskJob":
            assert (
                doc["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
            )
            schema = strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
            schema["properties"] |= {k: {"type": "string"} for k in ("apiVersion", "kind")}
            schema["properties"]["metadata"] = {"type": "object"}
            jsonschema.validate(doc, schema)
            check_model(doc["metadata"], "V1ObjectMeta", "metadata")
            cluster = doc["spec"]["cluster"]["spec"]
            for where, pod in [
                ("job", doc["spec"]["job"]["spec"]),
                ("worker", cluster["worker"]["spec"]),
                ("scheduler", cluster["scheduler"]["spec"]),
            ]:
                check_model(pod, "V1PodSpec", f"{where}.spec")
            check_model(cluster["scheduler"]["service"], "V1ServiceSpec", "scheduler.service")
        else:
            check_model(doc, BUILT_IN[(doc["apiVersion"], doc["kind"])], doc["kind"])
    assert sorted(kinds) == sorted(
        ["ConfigMap", "CronJob", "DaskJob", "Role", "RoleBinding", "ServiceAccount"]
    )


def test_kubernetes_manifests_fit_together():
    docs = {d["kind"]: d for d in k8s_documents()}
    config = docs["ConfigMap"]
    parse_job_spec(config["data"]["nightly.toml"])  # the mounted job spec is valid
    dask_config = yaml.safe_load(config["data"]["dask.yaml"])
    defaults = yaml.safe_load(
        (
            Path(pytest.importorskip("dask_kubernetes").__file__).parent / "kubernetes.yaml"
        ).read_text()
    )
    assert set(dask_config["kubernetes"]) <= set(defaults["kubernetes"])  # known config keys
    assert dask_config["kubernetes"]["worker-command"] == "dask cuda worker"
    assert dask_config["kubernetes"]["resources"]["limits"]["nvidia.com/gpu"] == "1"

    cron = docs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    (driver,) = pod["containers"]
    assert "--cluster kubernetes" in driver["args"][0]
    assert {"name": "DASK_CONFIG", "value": "/etc/survey-mass"} in driver["env"]
    assert pod["volumes"][0]["configMap"]["name"] == config["metadata"]["name"]

    job = docs["DaskJob"]
    scheduler = job["spec"]["cluster"]["spec"]["scheduler"]
    assert scheduler["service"]["selector"]["dask.org/cluster-name"] == job["metadata"]["name"]
    (worker,) = job["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"]
    assert worker["args"][:3] == ["dask", "cuda", "worker"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    (runner,) = job["spec"]["job"]["spec"]["containers"]
    assert '--cluster "$DASK_SCHEDULER_ADDRESS"' in runner["args"][0]  # set by the operator
    rules = docs["Role"]["rules"]
    assert any("daskclusters" in r["resources"] and "create" in r["verbs"] for r in rules)


def test_the_container_recipe_runs_any_command_and_copies_what_exists():
    text = (DEPLOY_DIR / "container" / "Containerfile").read_text()
    instructions = [
        line.split()[0]
        for line in text.replace("\\\n", " ").splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(" ")
    ]
    known = {"ARG", "FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "CMD", "LABEL", "EXPOSE"}
    assert set(instructions) <= known and instructions[instructions.index("FROM") - 1] == "ARG"
    assert "ENTRYPOINT" not in instructions  # manifests run dask or survey-mass as their command
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    assert re.search(r"^USER survey-mass$", text, re.M)
    assert 'pip install ".[deploy]"' in text and "dask-cuda" in text


# --- systemd and cron -----------------------------------------------------------------------------


def test_systemd_units_verify():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = sorted(str(p) for p in (DEPLOY_DIR / "systemd").iterdir())
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if "survey-mass" in line]
    assert result.returncode == 0 and not problems, result.stderr
    timer = (DEPLOY_DIR / "systemd" / "survey-mass-nightly.timer").read_text()
    calendar = re.search(r"^OnCalendar=(.+)$", timer, re.M).group(1)
    subprocess.run([analyze, "calendar", calendar], capture_output=True, check=True)
    service = (DEPLOY_DIR / "systemd" / "survey-mass-nightly.service").read_text()
    assert "Type=oneshot" in service and "--update --json" in service


def test_the_crontab_fields_are_valid_and_runs_never_overlap():
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    entries = [
        line
        for line in (DEPLOY_DIR / "cron" / "survey-mass.cron").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert entries
    for entry in entries:
        fields, command = entry.split()[:5], " ".join(entry.split()[5:])
        for field, (lo, hi) in zip(fields, limits, strict=True):
            for part in field.split(","):
                base, _, step = part.partition("/")
                assert not step or step.isdigit()
                if base != "*":
                    for number in base.split("-"):
                        assert lo <= int(number) <= hi, entry
        assert "flock -n" in command
        assert "%" not in command.replace("\\%", "")  # cron would cut the line at a bare %


# --- survey-mass run --cluster --------------------------------------------------------------------


def test_run_against_a_scheduler_and_worker_started_with_the_dask_cli(tmp_path, capsys):
    cluster = DaskCLICluster(tmp_path / "dask", n_workers=1)
    job = tmp_path / "job.toml"
    job.write_text(f"""
name = "cli-cluster"
batch_size = 16
[targets]
footprint = {{ kind = "cone", ra = 150.0, dec = 2.0, radius_deg = 0.6 }}
[source]
mock = {{ seed = 42 }}
[output]
url = "{tmp_path / "unused"}"
""")
    out = tmp_path / "2026-01-31"
    try:
        code = main(
            ["run", str(job), "--cluster", cluster.address, "--output", str(out), "--quiet"]
        )
        workers = cluster.client.run(lambda: 1)
    finally:
        cluster.close()
    assert code == 0, capsys.readouterr().err
    assert "targets weighed" in capsys.readouterr().out
    assert ds.dataset(current_root(out) / "masses" / "dataset", format="parquet").count_rows() > 0
    assert (current_root(out) / "masses" / "dataset" / "_metadata").exists() and not (
        tmp_path / "unused"
    ).exists()
    assert len(workers) == 1


def test_an_unknown_cluster_kind_names_the_choices(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text(NIGHTLY.read_text())
    assert main(["run", str(job), "--cluster", "slurmm"]) == 2
    assert "local, local-cuda, slurm, kubernetes" in capsys.readouterr().err


def test_a_backend_that_is_not_installed_says_which_extra_to_install():
    try:
        import dask_cuda  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"pip install 'survey-mass\[gpu\]'"):
            with make_cluster(ComputeSpec(kind="local-cuda")):
                pass
    else:
        pytest.skip("dask-cuda is installed here")
