"""The sweep's stages in containers, exactly as the Argo pods run them, against real S3 and Prometheus.

argo/sweep.yaml is walked in DAG order (tests/container/argo.py) and every pod runs with podman
(tests/container/podman.py): the image's entry point with the template's command and args, its
env (the rendered sd1job-config ConfigMap with the test's S3 endpoint, the test credentials as
the sd1job-s3 Secret), its security context, the /tmp emptyDir and the config mount holding a
tiny config. The demo recordings are written first by the image's own `synth` command.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scripts import services
from sd1job.config import Config
from tests.container import argo, podman
from tests.container.conftest import make_cluster, new_bucket
from tests.helpers import job_env, run_job, small_config

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1800)]

EPOCHS = 6  # enough epochs after the first checkpoint for the kill to land mid-training
SYNTH_ARGS = ["--seconds", "2", "--riff-seconds", "0.5"]
BAD_CONFIG = "dataset:\n  contxts: [8, 16]\n"


def list_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix`` (relative to it)."""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
    return keys


def read(client: Any, bucket: str, key: str) -> bytes:
    """One object's bytes."""
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


@dataclass
class KillAfterCheckpoint:
    """Kills the first train container (attempt 0) once its first checkpoint is in the store."""

    client: Any
    bucket: str
    prefix: str
    killed: list[str] = field(default_factory=list)

    def __call__(self, pod: argo.Pod, attempt: int, name: str, process: subprocess.Popen[str]) -> None:
        """Wait for a checkpoint object of this run, then `podman kill` the container."""
        if pod.args[:1] != ["train"] or attempt != 0 or self.killed:
            return
        deadline = time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline:
            if any(key.endswith("checkpoint.npz") for key in list_keys(self.client, self.bucket, self.prefix)):
                subprocess.run([podman.PODMAN, "kill", name], capture_output=True, check=True)
                self.killed.append(pod.node)
                return
            time.sleep(0.1)


@dataclass
class SweepRun:
    """One walk of argo/sweep.yaml in containers, and where it wrote."""

    walk: argo.Walk
    synth: argo.PodResult
    config: Config
    run_id: str
    bucket: str
    run_prefix: str
    killed: list[str]
    argvs: list[list[str]]

    def keys(self, client: Any) -> list[str]:
        """Every key the run wrote under runs/<run_id>/."""
        return list_keys(client, self.bucket, self.run_prefix)


def subcommand_template(template: dict[str, Any], subcommand: str) -> str:
    """The name of the container template whose args start with ``subcommand``."""
    names = [
        t["name"]
        for t in template["spec"]["templates"]
        if "container" in t and t["container"].get("args", [])[:1] == [subcommand]
    ]
    assert len(names) == 1, f"{subcommand}: {names}"
    return names[0]


def sweep_parameters(template: dict[str, Any], values: dict[str, str], config: Config) -> dict[str, str]:
    """The test's workflow parameters: image, store, run-id, Pushgateway, and contexts where the file declares it."""
    declared = {p["name"] for p in template["spec"]["arguments"]["parameters"]}
    if "contexts" in declared:
        values = {**values, "contexts": json.dumps(config.dataset.contexts)}
    return values


def option(args: list[str], name: str) -> str | None:
    """The value following ``name`` in a command line, if any."""
    return args[args.index(name) + 1] if name in args else None


@pytest.fixture(scope="module")
def sweep(
    image: str,
    image_config: dict[str, Any],
    sweep_template: dict[str, Any],
    k8s_objects: list[dict[str, Any]],
    s3_server: services.S3Server,
    pushgateway: services.Service,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SweepRun]:
    """Synth, then the whole sweep in containers, the first train container killed once mid-training."""
    bucket = new_bucket(s3_server)
    store = f"s3://{bucket}/store"
    run_id = f"container-{uuid.uuid4().hex[:8]}"
    # A grid (two LSTM sizes at one context): the fan-out takes arm-named units (lu4-c8-s25) as it takes c8-s25.
    config = small_config(
        store,
        recordings__sample_rate=22050,
        dataset__contexts=[8],
        train__epochs=EPOCHS,
        train__patience=EPOCHS,
        sweep={"grid": {"train.lstm_units": [4, 8]}},
    )
    cluster = make_cluster(k8s_objects, s3_server, config.to_yaml(), tmp_path_factory.mktemp("pods"))
    run_prefix = f"store/runs/{run_id}/"
    killer = KillAfterCheckpoint(s3_server.client(), bucket, run_prefix)
    runner = podman.PodmanRunner(cluster, image_user=image_config.get("User", ""), during=killer)
    values = {"image": image, "store": store, "run-id": run_id, "pushgateway": pushgateway.url}
    walker = argo.Walker(sweep_template, sweep_parameters(sweep_template, values, config), runner)

    data_pod = walker.pod(subcommand_template(sweep_template, "data"))
    synth_pod = dataclasses.replace(
        data_pod, node="synth", args=["synth", "--config", option(data_pod.args, "--config") or "", *SYNTH_ARGS]
    )
    synth = runner(synth_pod, 0)
    assert synth.exit_code == 0, synth.stderr
    walk = walker.run()
    yield SweepRun(walk, synth, config, run_id, bucket, run_prefix, killer.killed, runner.argvs)


def _failures(walk: argo.Walk) -> str:
    """The failed attempts and the end of their stderr, for an assertion message."""
    failed = [run for run in walk.runs if run.result.exit_code]
    return "\n".join(f"{r.pod.node} #{r.attempt}: exit {r.result.exit_code}\n{r.result.stderr[-3000:]}" for r in failed)


def test_every_container_template_ran_in_dag_order(sweep: SweepRun, sweep_template: dict[str, Any], image: str) -> None:
    walk = sweep.walk
    assert walk.status == argo.SUCCEEDED, _failures(walk)
    containers = {t["name"] for t in sweep_template["spec"]["templates"] if "container" in t}
    assert {run.pod.template for run in walk.runs} == containers
    assert walk.runs[0].pod.args[0] == "data"
    assert walk.runs[-1].pod.template == sweep_template["spec"]["onExit"] and argo.SUCCEEDED in walk.runs[-1].pod.args

    position = {id(run): index for index, run in enumerate(walk.runs)}
    trains = [run for run in walk.pods("train") if run.result.exit_code == 0]
    for evaluation in walk.pods("eval"):
        unit = option(evaluation.pod.args, "--unit")
        before = [t for t in trains if unit is None or option(t.pod.args, "--unit") == unit]
        assert before and all(position[id(t)] < position[id(evaluation)] for t in before), evaluation.pod.node
    for report in walk.pods("report"):
        assert all(position[id(e)] < position[id(report)] for e in walk.pods("eval"))

    # Where the fan-out takes the data step's stdout, that is the JSON list of the units trained.
    units = [option(t.pod.args, "--unit") for t in trains]
    if "outputs.result" in json.dumps(sweep_template["spec"]["templates"]):
        assert json.loads(walk.pods("data")[-1].result.stdout) == units
    assert sorted(units) == sorted(unit.name for unit in sweep.config.units()) == ["lu4-c8-s25", "lu8-c8-s25"]

    # Each attempt ran the image with exactly the pod's command line, on the host network.
    for run, argv in zip([None, *walk.runs], sweep.argvs, strict=True):
        if run is not None:
            assert argv[-len(run.pod.args) - 1 :] == [image, *run.pod.args]
            assert argv[argv.index("--entrypoint") + 1] == json.dumps(run.pod.command)
        assert argv[argv.index("--network") + 1] == "host"


def test_the_run_is_in_the_store(sweep: SweepRun, s3_server: services.S3Server) -> None:
    client = s3_server.client()
    keys = set(sweep.keys(client))
    assert "data/manifest.json" in keys
    models = sorted(key.removesuffix("/model.keras") for key in keys if key.endswith("/model.keras"))
    assert models == sorted(f"models/{unit.path}" for unit in sweep.config.units()), sorted(keys)
    for model in models:
        assert f"{model}/history.json" in keys
        for riff in sweep.config.recordings.riffs:
            assert f"{model}/eval/o_{riff}.wav" in keys, model
    assert {"eval/report.html", "eval/results.json", "eval/results.csv"} <= keys
    results = json.loads(read(client, sweep.bucket, sweep.run_prefix + "eval/results.json"))
    assert len(results["rows"]) == len(models) * len(sweep.config.recordings.riffs)
    # The image's synth wrote the recordings the stages read.
    recordings = list_keys(client, sweep.bucket, "store/")
    assert sweep.config.recordings.train.dry in recordings and sweep.config.recordings.train.wet in recordings
    for riff in sweep.config.recordings.riffs:
        assert any(key.endswith(f"/d_{riff}.wav") for key in recordings), riff


def _histories(sweep: SweepRun, client: Any) -> dict[str, dict[str, Any]]:
    return {
        key: json.loads(read(client, sweep.bucket, sweep.run_prefix + key))
        for key in sweep.keys(client)
        if key.endswith("/history.json")
    }


def test_a_killed_train_container_resumes_from_its_checkpoint(sweep: SweepRun, s3_server: services.S3Server) -> None:
    assert sweep.killed, "the first train container finished before its first checkpoint was seen in the store"
    attempts = [run for run in sweep.walk.runs if run.pod.node == sweep.killed[0]]
    assert [(run.attempt, run.result.exit_code) for run in attempts] == [(0, 137), (1, 0)]
    histories = _histories(sweep, s3_server.client())
    resumed = {key: h["resumed_at_epochs"] for key, h in histories.items() if h["resumed_at_epochs"]}
    assert len(resumed) == 1, resumed
    (epochs,) = resumed.values()
    assert len(epochs) == 1 and 1 <= epochs[0] < EPOCHS
    for history in histories.values():
        assert history["epochs_run"] == EPOCHS and len(history["epochs"]) == EPOCHS


def test_the_pushed_metrics_reach_prometheus(sweep: SweepRun, prometheus: services.Service) -> None:
    units = len(sweep.config.units())

    def query(expression: str, until: Any) -> list[dict[str, Any]]:
        return services.wait_for_query(prometheus.url, expression, timeout=30, until=until)

    epochs = query(f'sd1job_epochs_completed{{run="{sweep.run_id}"}}', lambda r: len(r) == units)
    assert [float(sample["value"][1]) for sample in epochs] == [EPOCHS] * units
    # The resumed unit restored its counters: it counted the windows of each epoch once, like the others.
    windows = query(f'sd1job_windows_processed_total{{run="{sweep.run_id}"}}', lambda r: len(r) == units)
    assert len({sample["value"][1] for sample in windows}) == 1, windows
    status = query(f'sd1job_sweep_status{{run="{sweep.run_id}",status="{argo.SUCCEEDED}"}}', bool)
    assert [float(sample["value"][1]) for sample in status] == [1.0]


def _outside(pod: argo.Pod, cluster: podman.Cluster, config_file: Path) -> Any:
    """The same command line run outside any container, with the pod's SD1JOB_ settings and ``config_file``."""
    mounted = option(pod.args, "--config")
    args = [str(config_file) if word == mounted else word for word in pod.args]
    env = {k: v for k, v in podman.resolve_env(pod.env, cluster).items() if k.startswith("SD1JOB_")}
    return run_job(args, job_env(env)), mounted


def test_a_bad_config_fails_in_the_container_as_outside(
    sweep: SweepRun,
    image: str,
    image_config: dict[str, Any],
    sweep_template: dict[str, Any],
    k8s_objects: list[dict[str, Any]],
    s3_server: services.S3Server,
    tmp_path: Path,
) -> None:
    cluster = make_cluster(k8s_objects, s3_server, BAD_CONFIG, tmp_path / "pods")
    runner = podman.PodmanRunner(cluster, image_user=image_config.get("User", ""))
    parameters = {"image": image, "store": f"s3://{sweep.bucket}/store", "run-id": f"{sweep.run_id}-bad"}
    walk = argo.Walker(sweep_template, sweep_parameters(sweep_template, parameters, sweep.config), runner).run()
    # The data pod exits 2 and is not retried (the retryStrategy's expression); nothing else of the DAG runs.
    assert [(run.pod.args[0], run.result.exit_code) for run in walk.runs if run.pod.args[0] != "push-status"] == [
        ("data", 2)
    ]
    assert walk.status == argo.FAILED

    config_file = tmp_path / "bad.yaml"
    config_file.write_text(BAD_CONFIG)
    train = runner(sweep.walk.pods("train")[0].pod, 0)
    for pod, inside in [(walk.runs[0].pod, walk.runs[0].result), (sweep.walk.pods("train")[0].pod, train)]:
        outside, mounted = _outside(pod, cluster, config_file)
        assert outside.returncode == inside.exit_code == 2
        assert len(outside.stderr.splitlines()) == 1, outside.stderr
        assert inside.stderr.splitlines() == [outside.stderr.strip().replace(str(config_file), mounted)], pod.args
        assert "contxts" in inside.stderr
