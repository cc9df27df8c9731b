"""Deployment files for scheduled survey jobs: Slurm, Kubernetes (Dask operator), systemd and cron.

One :class:`Deployment` says what runs where; :func:`render` turns it into every generated file
of ``deploy/`` (``python deploy/render.py`` rewrites them, and a test checks that the checked-in
files are what this script renders). A repository script, not part of the package: it needs only
PyYAML (the ``deploy`` extra). Every variant runs the same command,

    survey-mass run JOB --cluster KIND --output ROOT --update --json --no-dashboard

into one output whose catalog versions grow night by night: a night whose targets or models
changed writes a new version (weighing only what changed), a night without changes finds the
catalog complete, and a run that dies is retried and resumes its unfinished version. The output's
lease refuses a second writer, and the schedulers never start two runs (Slurm dependency on the
job name, CronJob ``concurrencyPolicy: Forbid``, systemd ``Type=oneshot``, ``flock`` under cron).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: where the rendered files live: the repository's deploy/ folder, which holds this script
DEPLOY_DIR = Path(__file__).resolve().parent
#: the job spec mounted into Kubernetes pods (the ConfigMap also holds the Dask config)
K8S_CONFIG_DIR = "/etc/survey-mass"


@dataclass(frozen=True)
class Deployment:
    """What a nightly run needs: the job, the image or install, resources and the schedule."""

    job: str = "deploy/nightly.toml"
    #: the job's output: its catalog versions (v1, v2, ...) and the pointer to the current one
    output: str = "s3://survey-mass-catalogs/nightly"
    image: str = "registry.example.org/survey-mass:0.1.0"
    install_dir: str = "/opt/survey-mass"
    #: cron schedule (UTC) of the nightly run
    schedule: str = "0 2 * * *"
    workers: int = 4
    gpus_per_worker: int = 1
    cores_per_worker: int = 8
    threads_per_worker: int = 2
    memory_per_worker: str = "32GiB"
    slurm_partition: str = "gpu"
    slurm_account: str | None = None
    slurm_walltime: str = "06:00:00"
    namespace: str = "survey-mass"
    s3_secret: str = "survey-mass-s3"
    name: str = "survey-mass-nightly"
    extra_env: dict[str, str] = field(
        default_factory=lambda: {
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # no stack sampling on batch workers: its history grows with the run (runner.dask_cluster)
            "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
        }
    )

    def command(self, cluster: str, job: str | None = None) -> str:
        return (
            f"survey-mass run {job or self.job} --cluster {cluster} "
            f'--output "{self.output}" --update --json --no-dashboard'
        )


def _yaml(*documents: dict) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, width=100) for d in documents)


# --- Slurm (dask-jobqueue, dask-cuda workers on GPU nodes) ---------------------------------------


def slurm_jobqueue_config(d: Deployment) -> dict:
    """Dask config ``jobqueue.slurm``: one GPU worker job per worker, run by dask-cuda."""
    slurm = {
        "name": "survey-mass-worker",
        "queue": d.slurm_partition,
        "account": d.slurm_account,
        "walltime": d.slurm_walltime,
        "job-cpu": d.cores_per_worker,
        "job-mem": d.memory_per_worker.replace("iB", ""),
        "job-extra-directives": [f"--gres=gpu:{d.gpus_per_worker}"],
        # `python -m dask_cuda.cli` starts one worker per GPU the job was given
        "worker-command": "dask_cuda.cli",
        "job-script-prologue": [
            f"source {d.install_dir}/venv/bin/activate",
            *[f"export {k}={v}" for k, v in d.extra_env.items()],
        ],
        "local-directory": "$TMPDIR",
        "log-directory": "logs/dask-workers",
        "death-timeout": 120,
    }
    return {"jobqueue": {"slurm": slurm}}


def slurm_driver_script(d: Deployment) -> str:
    """The driver job: a small CPU allocation running the job, which submits the GPU worker jobs."""
    account = f"#SBATCH --account={d.slurm_account}\n" if d.slurm_account else ""
    return f"""#!/usr/bin/env bash
# The nightly driver: plans the shards and submits cluster.n_workers GPU worker jobs through
# dask-jobqueue (deploy/slurm/jobqueue.yaml). Submit it from cron or scrontab:
#   sbatch deploy/slurm/{d.name}.sbatch
# Each night updates the one output (a new catalog version when targets or models changed); a
# requeued run resumes its version; --dependency=singleton keeps runs from overlapping.
#SBATCH --job-name={d.name}
{account}#SBATCH --time=12:00:00
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --dependency=singleton
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
cd {d.install_dir}
source {d.install_dir}/venv/bin/activate
export DASK_CONFIG={d.install_dir}/deploy/slurm
mkdir -p logs/dask-workers
exec {d.command("slurm")}
"""


# --- Kubernetes (Dask operator) -------------------------------------------------------------------


def _env(d: Deployment) -> list[dict]:
    return [{"name": k, "value": v} for k, v in d.extra_env.items()]


def _container(d: Deployment, name: str, args: list[str], **extra) -> dict:
    return {
        "name": name,
        "image": d.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": _env(d),
        "envFrom": [{"secretRef": {"name": d.s3_secret}}],
        **extra,
    }


def _config_volume(d: Deployment) -> tuple[dict, dict]:
    volume = {"name": "config", "configMap": {"name": f"{d.name}-config"}}
    mount = {"name": "config", "mountPath": K8S_CONFIG_DIR, "readOnly": True}
    return volume, mount


def k8s_dask_config(d: Deployment) -> dict:
    """Dask config ``kubernetes``: what ``--cluster kubernetes`` (operator KubeCluster) starts."""
    return {
        "kubernetes": {
            "name": f"{d.name}-{{uuid}}",
            "namespace": d.namespace,
            "image": d.image,
            "worker-command": "dask cuda worker",
            "resources": {
                "limits": {"nvidia.com/gpu": str(d.gpus_per_worker), "memory": d.memory_per_worker},
                "requests": {"cpu": str(d.cores_per_worker), "memory": d.memory_per_worker},
            },
            "env": d.extra_env,
            "shutdown-on-close": True,
        }
    }


def k8s_config_map(d: Deployment, job_text: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{d.name}-config", "namespace": d.namespace},
        "data": {
            "nightly.toml": job_text,
            "dask.yaml": yaml.safe_dump(k8s_dask_config(d), sort_keys=False),
        },
    }


def k8s_rbac(d: Deployment) -> list[dict]:
    """A service account allowed to create the DaskCluster of a nightly run, and nothing else."""
    meta = {"name": d.name, "namespace": d.namespace}
    rules = [
        {
            "apiGroups": ["kubernetes.dask.org"],
            "resources": ["daskclusters", "daskworkergroups", "daskjobs"],
            "verbs": ["get", "list", "watch", "create", "patch", "delete"],
        },
        {
            "apiGroups": [""],
            "resources": ["pods", "services", "pods/log"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": d.name},
            "subjects": [{"kind": "ServiceAccount", "name": d.name, "namespace": d.namespace}],
        },
    ]


def _k8s_driver(d: Deployment, name: str, cluster: str) -> tuple[dict, dict]:
    """A pod's (container, config volume) running the mounted job spec on ``cluster``."""
    volume, mount = _config_volume(d)
    container = _container(
        d,
        name,
        [f"exec {d.command(cluster, f'{K8S_CONFIG_DIR}/nightly.toml')}"],
        command=["/bin/sh", "-c"],
        volumeMounts=[mount],
        resources={"requests": {"cpu": "1", "memory": "4Gi"}},
    )
    return container, volume


def _k8s_scheduler(d: Deployment, cluster_name: str) -> dict:
    """The DaskJob's scheduler: its pod and the Service the runner and workers reach it by."""
    container = _container(
        d,
        "scheduler",
        ["dask", "scheduler", "--host", "0.0.0.0"],
        ports=[
            {"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
            {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"},
        ],
        readinessProbe={
            "httpGet": {"port": "http-dashboard", "path": "/health"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
        resources={"requests": {"cpu": "1", "memory": "2Gi"}},
    )
    ports = [
        {"name": port, "protocol": "TCP", "port": number, "targetPort": port}
        for port, number in [("tcp-comm", 8786), ("http-dashboard", 8787)]
    ]
    service = {
        "type": "ClusterIP",
        "selector": {"dask.org/cluster-name": cluster_name, "dask.org/component": "scheduler"},
        "ports": ports,
    }
    return {"spec": {"containers": [container]}, "service": service}


def _k8s_worker(d: Deployment) -> dict:
    """A DaskJob GPU worker container: ``dask cuda worker`` with the deployment's resources."""
    args = ["dask", "cuda", "worker", "--name", "$(DASK_WORKER_NAME)"]
    args += ["--nthreads", str(d.threads_per_worker), "--memory-limit", d.memory_per_worker]
    return _container(d, "worker", args, resources=k8s_dask_config(d)["kubernetes"]["resources"])


def k8s_daskjob(d: Deployment) -> dict:
    """One run now: a DaskJob whose runner pod drives a scheduler and GPU workers (dask-cuda)."""
    name = f"{d.name.removesuffix('-nightly')}-run"
    runner, volume = _k8s_driver(d, "job", '"$DASK_SCHEDULER_ADDRESS"')
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskJob",
        "metadata": {"name": name, "namespace": d.namespace},
        "spec": {
            "job": {
                "spec": {
                    "restartPolicy": "OnFailure",  # a driver that dies restarts and resumes
                    "containers": [runner],
                    "volumes": [volume],
                }
            },
            "cluster": {
                "spec": {
                    "worker": {"replicas": d.workers, "spec": {"containers": [_k8s_worker(d)]}},
                    "scheduler": _k8s_scheduler(d, name),
                }
            },
        },
    }


def k8s_cronjob(d: Deployment) -> dict:
    """Every night: a driver pod runs the job with ``--cluster kubernetes`` (the operator's
    KubeCluster, configured by the ConfigMap's dask.yaml) and removes the cluster when done."""
    driver, volume = _k8s_driver(d, "driver", "kubernetes")
    driver["env"] = [*driver["env"], {"name": "DASK_CONFIG", "value": K8S_CONFIG_DIR}]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": d.name, "namespace": d.namespace},
        "spec": {
            "schedule": d.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",  # two drivers must never share a catalog
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 3,  # each retry resumes the unfinished version
                    "activeDeadlineSeconds": 12 * 3600,
                    "template": {
                        "spec": {
                            "serviceAccountName": d.name,
                            "restartPolicy": "Never",
                            "containers": [driver],
                            "volumes": [volume],
                        }
                    },
                }
            },
        },
    }


# --- systemd and cron (one machine, or a login node submitting the Slurm driver) -----------------


def systemd_escape(command: str) -> str:
    """``%`` and ``$`` doubled: systemd expands specifiers and variables in ExecStart itself."""
    return command.replace("%", "%%").replace("$", "$$")


def systemd_units(d: Deployment) -> dict[str, str]:
    env = " ".join(f"{k}={v}" for k, v in d.extra_env.items())
    service = f"""[Unit]
Description=survey-mass nightly mass catalog ({d.job})
Wants=network-online.target
After=network-online.target

[Service]
# oneshot: the timer never starts a second run while one is active
Type=oneshot
User=survey-mass
WorkingDirectory={d.install_dir}
Environment=PATH={d.install_dir}/venv/bin:/usr/bin:/bin
Environment={env}
ExecStart=/bin/sh -c 'exec {systemd_escape(d.command("local"))}'
Nice=5
TimeoutStartSec=12h
"""
    hour, minute = d.schedule.split()[1], d.schedule.split()[0]
    timer = f"""[Unit]
Description=Run survey-mass nightly at {int(hour):02d}:{int(minute):02d} UTC

[Timer]
OnCalendar=*-*-* {int(hour):02d}:{int(minute):02d}:00 UTC
# a night missed while the machine was off runs at the next boot
Persistent=true
RandomizedDelaySec=10min
Unit={d.name}.service

[Install]
WantedBy=timers.target
"""
    return {f"{d.name}.service": service, f"{d.name}.timer": timer}


def crontab(d: Deployment) -> str:
    lock = f"/tmp/{d.name}.lock"
    return f"""# survey-mass nightly runs (UTC). Install with `crontab deploy/cron/survey-mass.cron`.
# flock -n: a run still going at the next start time makes the new one exit, not overlap.
CRON_TZ=UTC
SHELL=/bin/bash
PATH={d.install_dir}/venv/bin:/usr/bin:/bin

# on this machine (a LocalCluster with the job's [cluster] settings)
{d.schedule} cd {d.install_dir} && flock -n {lock} {d.command("local").replace("%", chr(92) + "%")} >> logs/nightly.log 2>&1

# or on a Slurm cluster: submit the driver job from a login node
# {d.schedule} cd {d.install_dir} && sbatch deploy/slurm/{d.name}.sbatch
"""


def render(d: Deployment, job_text: str) -> dict[str, str]:
    """Every generated file of ``deploy/``: relative path -> text."""
    header = "# Generated by `python deploy/render.py`; edit Deployment there, not here.\n"
    files = {
        "slurm/jobqueue.yaml": header + _yaml(slurm_jobqueue_config(d)),
        f"slurm/{d.name}.sbatch": slurm_driver_script(d),
        "kubernetes/config.yaml": header + _yaml(k8s_config_map(d, job_text)),
        "kubernetes/rbac.yaml": header + _yaml(*k8s_rbac(d)),
        "kubernetes/daskjob.yaml": header + _yaml(k8s_daskjob(d)),
        "kubernetes/cronjob.yaml": header + _yaml(k8s_cronjob(d)),
        "cron/survey-mass.cron": crontab(d),
    }
    files |= {f"systemd/{name}": text for name, text in systemd_units(d).items()}
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEPLOY_DIR, help="folder to write into")
    parser.add_argument("--settings", type=Path, help="JSON of Deployment fields to change")
    args = parser.parse_args(argv)
    settings = json.loads(args.settings.read_text()) if args.settings else {}
    d = Deployment(**settings)
    job_text = (DEPLOY_DIR.parent / d.job).read_text()
    for relative, text in render(d, job_text).items():
        path = args.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
