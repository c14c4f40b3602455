"""The Grafana dashboard: provisioned datasource, every exported metric charted, and every PromQL
query returning the right data from a real Prometheus scraping a real Pushgateway."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, pushadd_to_gateway

from tests import services

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "k8s" / "grafana" / "sd1job-dashboard.json"
DATASOURCES = REPO_ROOT / "k8s" / "grafana" / "datasources.yaml"
LABELS = ("run", "context")
PLANNED_EPOCHS = 5


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every non-row panel, including those nested in collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """{"panel title#refId": PromQL} of every target."""
    return {f"{p['title']}#{t['refId']}": t["expr"] for p in panels(dashboard) for t in p["targets"]}


def with_run(expr: str, run: str) -> str:
    """The query as Grafana sends it with the ``run`` variable set to one run."""
    return expr.replace("$run", run)


# --- static ---------------------------------------------------------------------------------


def test_every_panel_uses_the_provisioned_datasource_uid() -> None:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uid = datasource["uid"]
    assert uid == "sd1job-prometheus"
    dashboard = load_dashboard()
    assert panels(dashboard)
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid


def test_layout_is_well_formed() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    ids += [nested["id"] for row in dashboard["panels"] for nested in row.get("panels", [])]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_every_metric_the_application_exports_is_charted() -> None:
    from sd1job import telemetry

    charted = " ".join(queries(load_dashboard()).values())
    names = {family.name for family in telemetry.REGISTRY.collect()}
    assert len(names) >= 11
    for name in names:
        assert name in charted, f"{name} is exported but no panel charts it"


def test_the_charts_a_user_watches_are_there() -> None:
    titles = {p["title"] for p in panels(load_dashboard())}
    for wanted in (
        "Epochs done per context",
        "Epoch duration per context",
        "Training windows per second per context",
        "Training ESR per context",
        "Validation ESR per context",
        "Best validation ESR per context",
        "Sweeps finished by status (all runs)",
    ):
        assert wanted in titles


# --- live: real Pushgateway and Prometheus ------------------------------------------------------


def push_training(gateway: str, run: str, context: int, durations: list[float], windows: int, finished: bool) -> None:
    """Push one context's training metrics as metrics.md specifies (cumulative, as a resumed run does)."""
    registry = CollectorRegistry()
    labels = {"run": run, "context": str(context)}
    histogram = Histogram(
        "sd1job_epoch_duration_seconds",
        "Epoch duration.",
        LABELS,
        registry=registry,
        buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800),
    )
    for duration in durations:
        histogram.labels(**labels).observe(duration)
    Counter("sd1job_windows_processed", "Training windows seen.", LABELS, registry=registry).labels(**labels).inc(
        windows * len(durations)
    )
    gauges = {
        "sd1job_epochs_completed": len(durations),
        "sd1job_epochs_planned": PLANNED_EPOCHS,
        "sd1job_windows_per_second": windows / durations[-1],
        "sd1job_train_esr": 0.5 / len(durations),
        "sd1job_val_esr": 0.6 / len(durations),
        "sd1job_best_val_esr": 0.6 / len(durations),
    }
    if finished:
        gauges["sd1job_train_completed_timestamp_seconds"] = time.time()
    for name, value in gauges.items():
        Gauge(name, name, LABELS, registry=registry).labels(**labels).set(value)
    pushadd_to_gateway(gateway, job="sd1job", grouping_key=labels, registry=registry)


def push_status(gateway: str, run: str, status: str) -> None:
    """Push a sweep's final status as the Argo onExit step does."""
    registry = CollectorRegistry()
    Gauge("sd1job_sweep_status", "Final status.", ("run", "status"), registry=registry).labels(
        run=run, status=status
    ).set(1)
    Gauge("sd1job_sweep_finished_timestamp_seconds", "End time.", ("run",), registry=registry).labels(run=run).set(
        time.time()
    )
    pushadd_to_gateway(gateway, job="sd1job-sweep", grouping_key={"run": run}, registry=registry)


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


def wait_until(prometheus: str, query: str, predicate, timeout: float = 30.0) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Poll ``query`` until ``predicate(result)``."""
    return services.wait_for_query(prometheus, query, timeout=timeout, until=predicate)


@pytest.fixture(scope="module")
def pushed_run(pushgateway: services.Service, prometheus: services.Service) -> str:
    """Two epochs of two contexts (44 finished, 88 still training) and two finished sweeps, scraped."""
    run = f"dash-{uuid.uuid4().hex[:8]}"
    gateway = pushgateway.url.removeprefix("http://")
    epochs = f'sd1job_epochs_completed{{run="{run}"}}'
    # Epoch 1 of each context, and wait until Prometheus has scraped it, so that the epoch-2 push
    # below is a later sample (the "last 30 min" query needs an increase between two samples).
    push_training(gateway, run, 44, [2.0], windows=1000, finished=False)
    push_training(gateway, run, 88, [3.0], windows=1500, finished=False)
    assert len(wait_until(prometheus.url, f"{epochs} == 1", lambda r: len(r) == 2)) == 2
    push_training(gateway, run, 44, [2.0, 4.0], windows=1000, finished=True)
    push_training(gateway, run, 88, [3.0, 5.0], windows=1500, finished=False)
    push_status(gateway, f"{run}-ok", "Succeeded")
    push_status(gateway, f"{run}-bad", "Failed")
    assert len(wait_until(prometheus.url, f"{epochs} == 2", lambda r: len(r) == 2)) == 2
    wait_until(prometheus.url, f'sd1job_sweep_status{{run=~"{run}-.*"}}', lambda r: len(r) == 2)
    return run


@pytest.mark.slow
def test_every_dashboard_query_returns_data(prometheus: services.Service, pushed_run: str) -> None:
    empty = []
    for where, expr in queries(load_dashboard()).items():
        result = services.wait_for_query(prometheus.url, with_run(expr, pushed_run), timeout=10)
        if not result:
            empty.append(where)
    assert empty == []


@pytest.mark.slow
def test_the_queries_compute_what_their_panels_claim(prometheus: services.Service, pushed_run: str) -> None:
    exprs = {title.split("#")[0]: with_run(expr, pushed_run) for title, expr in queries(load_dashboard()).items()}

    def query(title: str) -> list[dict[str, Any]]:
        return services.prometheus_query(prometheus.url, exprs[title])

    assert by_label(query("Epochs done per context"), "context") == {"44": 2, "88": 2}
    progress = by_label(query("Progress per context (epochs done / planned)"), "context")
    assert progress == {"44": pytest.approx(2 / PLANNED_EPOCHS), "88": pytest.approx(2 / PLANNED_EPOCHS)}
    assert float(query("Contexts finished")[0]["value"][1]) == 1
    assert float(query("Contexts training")[0]["value"][1]) == 1
    assert by_label(query("Training windows per second per context"), "context") == {"44": 250.0, "88": 300.0}
    assert by_label(query("Training windows processed per context"), "context") == {"44": 2000, "88": 3000}
    assert by_label(query("Best validation ESR per context"), "context") == {"44": 0.3, "88": 0.3}
    statuses = by_label(query("Sweeps finished by status (all runs)"), "status")
    assert statuses["Succeeded"] >= 1 and statuses["Failed"] >= 1

    # Epoch duration: the run mean over all epochs is exact; the "last 30 min" mean comes from
    # increase() of the histogram's _sum and _count, which Prometheus extrapolates, so it is only
    # pinned to the range of the durations observed.
    expr_recent, expr_mean = (
        with_run(t["expr"], pushed_run)
        for p in panels(load_dashboard())
        if p["title"] == "Epoch duration per context"
        for t in p["targets"]
    )
    mean = by_label(services.prometheus_query(prometheus.url, expr_mean), "context")
    assert mean == {"44": pytest.approx(3.0), "88": pytest.approx(4.0)}
    recent = by_label(services.prometheus_query(prometheus.url, expr_recent), "context")
    assert set(recent) == {"44", "88"}
    assert 2.0 <= recent["44"] <= 4.0 and 3.0 <= recent["88"] <= 5.0, recent


@pytest.mark.slow
def test_run_variable_lists_the_pushed_run(prometheus: services.Service, pushed_run: str) -> None:
    (variable,) = load_dashboard()["templating"]["list"]
    assert variable["query"]["query"] == "label_values(sd1job_epochs_planned, run)"
    runs = {series["metric"]["run"] for series in services.prometheus_query(prometheus.url, "sd1job_epochs_planned")}
    assert pushed_run in runs


@pytest.mark.slow
def test_every_query_has_data_after_a_real_training_run(
    pushgateway: services.Service, prometheus: services.Service, tmp_path: Path
) -> None:
    """The real train stage and the real push-status command feed every panel of the dashboard."""
    from sd1job import cli
    from sd1job.store import open_store
    from sd1job.train import train_context
    from tests.helpers import prepare_run, small_config

    run = f"real-{uuid.uuid4().hex[:8]}"
    config = small_config(
        str(tmp_path / "store"),
        run_id=run,
        dataset__contexts=[32],
        dataset__pairs=16_000,
        train={"epochs": 4, "patience": 4, "lstm_units": 16},
        metrics={"pushgateway": pushgateway.url},
    )
    config_file = prepare_run(config, tmp_path / "config.yaml", {}, seconds=4.0)
    history = train_context(config, open_store(config.store), 32)
    assert history["epochs_run"] == 4
    assert cli.main(["push-status", "--config", str(config_file), "--status", "Succeeded"]) == 0
    wait_until(prometheus.url, f'sd1job_epochs_completed{{run="{run}"}} == 4', lambda r: len(r) == 1)
    wait_until(prometheus.url, f'sd1job_sweep_status{{run="{run}"}}', lambda r: len(r) == 1)
    empty = [
        where
        for where, expr in queries(load_dashboard()).items()
        if not services.wait_for_query(prometheus.url, with_run(expr, run), timeout=10)
    ]
    assert empty == []
