"""Prometheus metrics: the /metrics endpoint, per-unit pushes to a real Pushgateway, resume accounting, push-status."""

from __future__ import annotations

import logging
import re
import socket
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from scripts import services
from sd1job import telemetry
from sd1job.cli import main
from sd1job.units import Unit


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def series(text: str, name: str) -> dict[str, float]:
    """label text -> value for one metric name in an exposition text."""
    pattern = re.compile(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)
    return {labels: float(value) for labels, value in pattern.findall(text)}


def entry(number: int, seconds: float = 1.5, windows: int = 100) -> dict[str, float]:
    """A history.json epoch entry, as the train stage records it."""
    return {
        "epoch": number,
        "seconds": seconds,
        "windows_per_second": windows / seconds,
        "loss": 1.0 / number,
        "val_loss": 1.2 / number,
    }


def unique_run() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def unit_labels(run: str, unit: Unit, job: str | None = None, le: str | None = None) -> str:
    """The exposition's label text of a unit's series (labels sorted, as the exposition writes them)."""
    context = "none" if unit.context is None else str(unit.context)
    pushed = f'instance="",job="{job}",' if job else ""
    bucket = f'le="{le}",' if le else ""
    head = f'arm="{unit.arm}",context="{context}",{pushed}kind="{unit.kind}",{bucket}'
    return head + f'run="{run}",seed="{unit.seed}",unit="{unit.name}"'


C44 = Unit("windowed", 44, 25)


def test_metrics_endpoint_serves_the_training_series() -> None:
    port = services.free_port()
    run = unique_run()
    assert telemetry.serve(port)
    assert telemetry.serve(port)  # a second unit in the same process reuses the server
    metrics = telemetry.TrainingMetrics(run, C44)
    metrics.start(epochs_planned=100)
    metrics.record_epoch(entry(1, seconds=12.0), targets=100, best_val_esr=1.2)
    text = scrape(f"http://127.0.0.1:{port}/metrics")
    labels = unit_labels(run, C44)
    assert series(text, "sd1job_epochs_planned")[labels] == 100
    assert series(text, "sd1job_epochs_completed")[labels] == 1
    assert series(text, "sd1job_windows_processed_total")[labels] == 100
    assert series(text, "sd1job_train_esr")[labels] == 1.0
    assert series(text, "sd1job_best_val_esr")[labels] == 1.2
    buckets = series(text, "sd1job_epoch_duration_seconds_bucket")
    assert buckets[unit_labels(run, C44, le="10.0")] == 0
    assert buckets[unit_labels(run, C44, le="20.0")] == 1


def test_a_busy_port_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        with caplog.at_level(logging.WARNING):
            assert not telemetry.serve(busy.getsockname()[1])
    assert "cannot serve /metrics" in caplog.text


def test_resumed_unit_replays_its_history_and_pushes_only_its_own_series(pushgateway: services.Service) -> None:
    run = unique_run()
    history = [entry(1), entry(2)]
    first = telemetry.TrainingMetrics(run, C44, pushgateway.url)
    first.start(10)
    other_seed = telemetry.TrainingMetrics(run, Unit("windowed", 44, 26), pushgateway.url)
    other_seed.start(10)
    other_seed.record_epoch(entry(1), 100, 1.2)
    for epoch in history:
        first.record_epoch(epoch, 100, epoch["val_loss"])
    assert first.push()
    # The process dies; a new one resumes after epoch 2: it replays the checkpoint's history, goes on.
    resumed = telemetry.TrainingMetrics(run, C44, pushgateway.url)
    resumed.replay(history, targets=100, epochs_planned=10)
    resumed.record_epoch(entry(3), 100, entry(3)["val_loss"])
    resumed.completed(1234.0)
    assert resumed.push()
    text = scrape(f"{pushgateway.url}/metrics")
    labels = unit_labels(run, C44, job="sd1job")
    assert series(text, "sd1job_windows_processed_total")[labels] == 300  # not 500: no double count
    assert series(text, "sd1job_epoch_duration_seconds_count")[labels] == 3
    assert series(text, "sd1job_epochs_completed")[labels] == 3
    assert series(text, "sd1job_best_val_esr")[labels] == pytest.approx(0.4)  # replay recomputes the best
    assert series(text, "sd1job_train_completed_timestamp_seconds")[labels] == 1234.0
    # The other seed was never pushed, and this unit's group holds none of its series.
    assert not [key for key in series(text, "sd1job_epochs_completed") if f'run="{run}"' in key and "c44-s26" in key]


def test_a_stateful_unit_is_labelled_context_none(pushgateway: services.Service) -> None:
    run = unique_run()
    unit = Unit("stateful", None, 26)
    metrics = telemetry.TrainingMetrics(run, unit, pushgateway.url)
    assert metrics.grouping_key == {"run": run, "unit": "stateful-s26"}
    metrics.replay([entry(1, windows=5000)], targets=5000, epochs_planned=4)
    assert metrics.push()
    text = scrape(f"{pushgateway.url}/metrics")
    labels = unit_labels(run, unit, job="sd1job")
    assert 'context="none"' in labels and 'kind="stateful"' in labels
    assert series(text, "sd1job_epochs_planned")[labels] == 4
    assert series(text, "sd1job_windows_processed_total")[labels] == 5000


def test_unreachable_pushgateway_during_training_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    metrics = telemetry.TrainingMetrics(unique_run(), C44, f"http://127.0.0.1:{services.free_port()}")
    metrics.start(5)
    with caplog.at_level(logging.WARNING):
        assert not metrics.push()
        metrics.record_epoch(entry(1), 100, 1.2)
        assert not metrics.push()
    warnings = [r for r in caplog.records if "cannot push" in r.getMessage()]
    assert len(warnings) == 1


def _config_file(tmp_path: Path, run: str, pushgateway: str | None) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"run_id": run, "store": str(tmp_path), "metrics": {"pushgateway": pushgateway}}))
    return path


@pytest.mark.slow
def test_push_status_reaches_pushgateway_and_prometheus(
    tmp_path: Path, pushgateway: services.Service, prometheus: services.Service
) -> None:
    run = unique_run()
    config = _config_file(tmp_path, run, pushgateway.url)
    assert main(["push-status", "--config", str(config), "--status", "Failed", "-q"]) == 0
    assert main(["push-status", "--config", str(config), "--status", "Succeeded", "-q"]) == 0
    text = scrape(f"{pushgateway.url}/metrics")
    statuses = {k: v for k, v in series(text, "sd1job_sweep_status").items() if f'run="{run}"' in k}
    assert statuses == {f'instance="",job="sd1job-sweep",run="{run}",status="Succeeded"': 1.0}  # the retry replaced it
    assert series(text, "sd1job_sweep_finished_timestamp_seconds")[f'instance="",job="sd1job-sweep",run="{run}"'] > 0

    # A scrape between the two pushes may have seen "Failed"; wait for the scrape after the retry.
    def statuses_seen(result: list[dict]) -> list[tuple[str, str]]:
        return [(r["metric"]["status"], r["value"][1]) for r in result]

    query = f'sd1job_sweep_status{{run="{run}",job="sd1job-sweep"}}'
    result = services.wait_for_query(prometheus.url, query, until=lambda r: statuses_seen(r) == [("Succeeded", "1")])
    assert statuses_seen(result) == [("Succeeded", "1")]


def test_push_status_fails_clearly_without_a_pushgateway(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    unreachable = f"http://127.0.0.1:{services.free_port()}"
    assert main(["push-status", "--config", str(_config_file(tmp_path, "r", unreachable)), "--status", "Error"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and unreachable in error and "sweep status" in error
    assert main(["push-status", "--config", str(_config_file(tmp_path, "r", None)), "--status", "Error"]) == 2
    assert "metrics.pushgateway is not set" in capsys.readouterr().err
