"""The Grafana dashboard: provisioned datasource, every exported metric charted, and every PromQL
query returning the right data from a real Prometheus scraping a real Pushgateway, fed by the real
exporter (``sd1job.telemetry``) and by a real training run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import services
from sd1job import telemetry
from sd1job.units import Unit

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "k8s" / "grafana" / "sd1job-dashboard.json"
DATASOURCES = REPO_ROOT / "k8s" / "grafana" / "datasources.yaml"
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
    charted = " ".join(queries(load_dashboard()).values())
    names = {family.name for family in telemetry.REGISTRY.collect()}
    assert len(names) >= 11
    for name in names:
        assert name in charted, f"{name} is exported but no panel charts it"


def test_the_charts_a_user_watches_are_there() -> None:
    titles = {p["title"] for p in panels(load_dashboard())}
    for wanted in (
        "Epochs done per unit",
        "Epoch duration per unit",
        "Training windows per second per unit",
        "Training ESR per unit",
        "Validation ESR per unit",
        "Best validation ESR per unit",
        "Best validation ESR per arm across seeds (best, mean, worst seed)",
        "Sweeps finished by status (all runs)",
        "Recoveries per unit (rolled back, learning rate halved)",
        "Finished units by outcome",
        "Progress per arm (epochs done / planned, all its units)",
        "Validation ESR per arm (mean of its units' last epochs)",
        "Mean epoch duration per arm",
        "Failed units per arm (diverged or failed to learn)",
    ):
        assert wanted in titles


def test_every_per_unit_panel_has_one_series_per_unit() -> None:
    for panel in panels(load_dashboard()):
        for target in panel["targets"]:
            if "by (unit)" in target["expr"]:
                assert target["legendFormat"].startswith("{{unit}}"), panel["title"]
            assert "by (context)" not in target["expr"], f"{panel['title']}: seeds of one context would be merged"


# --- live: the real exporter, a real Pushgateway and Prometheus ---------------------------------

# What each unit of the pushed run did: per epoch (seconds, validation ESR), training targets per
# epoch, and whether it finished. Two seeds of c44 finished; c88 and the stateful unit are training.
UNITS: dict[Unit, tuple[list[tuple[float, float]], int, bool]] = {
    Unit("windowed", 44, 25): ([(2.0, 0.5), (4.0, 0.3)], 1000, True),
    Unit("windowed", 44, 26): ([(3.0, 0.6), (5.0, 0.5)], 1000, True),
    Unit("windowed", 88, 25): ([(6.0, 0.4), (8.0, 0.2)], 1500, False),
    Unit("stateful", None, 25): ([(1.0, 0.3), (3.0, 0.1)], 3000, False),
}
# c44-s26 recovered once in its second epoch, then finished as diverged.
DIVERGED = Unit("windowed", 44, 26)


def history_entry(epoch: int, seconds: float, val_esr: float, targets: int) -> dict[str, float]:
    """An epoch as the train stage records it in history.json (training ESR = validation ESR + 0.1)."""
    return {
        "epoch": epoch,
        "seconds": seconds,
        "loss": val_esr + 0.1,
        "val_loss": val_esr,
        "windows_per_second": targets / seconds,
    }


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


def wait_until(prometheus: str, query: str, predicate, timeout: float = 30.0) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Poll ``query`` until ``predicate(result)``."""
    return services.wait_for_query(prometheus, query, timeout=timeout, until=predicate)


@pytest.fixture(scope="module")
def pushed_run(pushgateway: services.Service, prometheus: services.Service) -> str:
    """Two epochs of four units pushed by the real exporter (c44-s25 and c44-s26 finished), two finished sweeps."""
    run = f"dash-{uuid.uuid4().hex[:8]}"
    exporters = {unit: telemetry.TrainingMetrics(run, unit, pushgateway.url) for unit in UNITS}
    epochs = f'sd1job_epochs_completed{{run="{run}"}}'
    for epoch in (1, 2):
        for unit, (history, targets, finished) in UNITS.items():
            metrics = exporters[unit]
            if epoch == 1:
                metrics.start(PLANNED_EPOCHS)
            seconds, val_esr = history[epoch - 1]
            best = min(v for _, v in history[:epoch])
            metrics.record_epoch(history_entry(epoch, seconds, val_esr, targets), targets, best)
            if epoch == 2 and unit == DIVERGED:
                metrics.record_recovery()
            if epoch == 2 and finished:
                metrics.completed(outcome="diverged" if unit == DIVERGED else "learned")
            assert metrics.push()
        # Wait for the scrape of this epoch, so that epoch 2 is a later sample than epoch 1 (the
        # "last 30 min" query needs an increase between two samples).
        assert len(wait_until(prometheus.url, f"{epochs} == {epoch}", lambda r: len(r) == len(UNITS))) == len(UNITS)
    telemetry.push_sweep_status(pushgateway.url, f"{run}-ok", "Succeeded")
    telemetry.push_sweep_status(pushgateway.url, f"{run}-bad", "Failed")
    assert len(wait_until(prometheus.url, f'sd1job_sweep_status{{run=~"{run}-.*"}}', lambda r: len(r) == 2)) == 2
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
    dashboard = load_dashboard()
    exprs = {title.split("#")[0]: with_run(expr, pushed_run) for title, expr in queries(dashboard).items()}
    names = {unit.name: unit for unit in UNITS}

    def query(title: str, ref: str | None = None) -> list[dict[str, Any]]:
        expr = exprs[title] if ref is None else with_run(queries(dashboard)[f"{title}#{ref}"], pushed_run)
        return services.prometheus_query(prometheus.url, expr)

    def per_unit(value: Callable[[list[tuple[float, float]], int, bool], float]) -> dict[str, float]:
        """What each unit's pushed history says, by unit name."""
        return {name: value(*UNITS[unit]) for name, unit in names.items()}

    assert by_label(query("Epochs done per unit"), "unit") == per_unit(lambda h, t, f: len(h))
    progress = by_label(query("Progress per unit (epochs done / planned)"), "unit")
    assert progress == pytest.approx(per_unit(lambda h, t, f: len(h) / PLANNED_EPOCHS))
    assert float(query("Units finished")[0]["value"][1]) == 2
    assert float(query("Units training")[0]["value"][1]) == 2
    assert by_label(query("Training windows per second per unit"), "unit") == pytest.approx(
        per_unit(lambda h, t, f: t / h[-1][0])
    )
    processed = by_label(query("Training windows processed per unit"), "unit")
    assert processed == per_unit(lambda h, t, f: t * len(h))
    assert by_label(query("Validation ESR per unit"), "unit") == pytest.approx(per_unit(lambda h, t, f: h[-1][1]))
    assert by_label(query("Training ESR per unit"), "unit") == pytest.approx(per_unit(lambda h, t, f: h[-1][1] + 0.1))
    best = per_unit(lambda h, t, f: min(v for _, v in h))
    assert by_label(query("Best validation ESR per unit"), "unit") == pytest.approx(best)
    spread = "Best validation ESR per arm across seeds (best, mean, worst seed)"
    assert by_label(query(spread, "A"), "arm") == pytest.approx({"c44": 0.3, "c88": 0.2, "stateful": 0.1})
    assert by_label(query(spread, "B"), "arm") == pytest.approx({"c44": 0.4, "c88": 0.2, "stateful": 0.1})
    assert by_label(query(spread, "C"), "arm") == pytest.approx({"c44": 0.5, "c88": 0.2, "stateful": 0.1})
    arms = {"c44": 0.0, "c88": 0.0, "stateful": 0.0}
    progress = by_label(query("Progress per arm (epochs done / planned, all its units)"), "arm")
    assert progress == pytest.approx({arm: 2 / PLANNED_EPOCHS for arm in arms})  # every unit at epoch 2
    live = by_label(query("Validation ESR per arm (mean of its units' last epochs)"), "arm")
    assert live == pytest.approx({"c44": (0.3 + 0.5) / 2, "c88": 0.2, "stateful": 0.1})
    durations = by_label(query("Mean epoch duration per arm"), "arm")
    assert durations == pytest.approx({"c44": (2 + 4 + 3 + 5) / 4, "c88": 7.0, "stateful": 2.0})
    assert by_label(query("Failed units per arm (diverged or failed to learn)"), "arm") == {"c44": 1.0}
    recoveries = by_label(query("Recoveries per unit (rolled back, learning rate halved)"), "unit")
    assert recoveries == {name: float(names[name] == DIVERGED) for name in names}
    assert by_label(query("Finished units by outcome"), "outcome") == {"learned": 1, "diverged": 1}
    failed = {
        s["metric"]["unit"]: (s["metric"]["outcome"], float(s["value"][1])) for s in query("Failed units (1 = failed)")
    }
    assert failed == {"c44-s25": ("learned", 0.0), "c44-s26": ("diverged", 1.0)}
    statuses = by_label(query("Sweeps finished by status (all runs)"), "status")
    assert statuses["Succeeded"] >= 1 and statuses["Failed"] >= 1
    finished = by_label(query("Sweeps finished"), "run")
    assert {f"{pushed_run}-ok", f"{pushed_run}-bad"} <= set(finished)

    # Epoch duration: the run mean over all epochs is exact; the "last 30 min" mean is increase() of
    # the histogram's _sum over increase() of its _count, each extrapolated by Prometheus on its own
    # (towards the moment each would have been zero), so with three scrapes of two epochs the ratio
    # can reach 1.2 times the last epoch's duration: it is pinned to [shortest, 1.25 x longest].
    mean = by_label(query("Epoch duration per unit", "B"), "unit")
    assert mean == pytest.approx(per_unit(lambda h, t, f: sum(s for s, _ in h) / len(h)))
    recent = by_label(query("Epoch duration per unit", "A"), "unit")
    assert set(recent) == set(names)
    for name, value in recent.items():
        durations = [s for s, _ in UNITS[names[name]][0]]
        assert min(durations) <= value <= 1.25 * max(durations), (name, value)


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
    from sd1job.stages.train import train_unit
    from sd1job.store import open_store
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
    history = train_unit(config, open_store(config.store), Unit("windowed", 32, 25))
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
