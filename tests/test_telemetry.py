"""Prometheus metrics: the /metrics endpoint, pushes to a real Pushgateway, resume accounting, push-status."""

from __future__ import annotations

import logging
import re
import socket
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from sd1job import telemetry
from sd1job.cli import main
from tests import services


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def series(text: str, name: str) -> dict[str, float]:
    """label text -> value for one metric name in an exposition text."""
    pattern = re.compile(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)
    return {labels: float(value) for labels, value in pattern.findall(text)}


def epoch(metrics: telemetry.TrainingMetrics, number: int, seconds: float = 1.5, windows: int = 100) -> None:
    metrics.record_epoch(
        epoch=number,
        seconds=seconds,
        windows=windows,
        windows_per_second=windows / seconds,
        train_esr=1.0 / number,
        val_esr=1.2 / number,
        best_val_esr=1.2 / number,
    )


def unique_run() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_metrics_endpoint_serves_the_training_series() -> None:
    port = services.free_port()
    run = unique_run()
    assert telemetry.serve(port)
    assert telemetry.serve(port)  # a second context in the same process reuses the server
    metrics = telemetry.TrainingMetrics(run, 44)
    metrics.start(epochs_planned=100)
    epoch(metrics, 1, seconds=12.0)
    text = scrape(f"http://127.0.0.1:{port}/metrics")
    labels = f'context="44",run="{run}"'
    assert series(text, "sd1job_epochs_planned")[labels] == 100
    assert series(text, "sd1job_epochs_completed")[labels] == 1
    assert series(text, "sd1job_windows_processed_total")[labels] == 100
    assert series(text, "sd1job_train_esr")[labels] == 1.0
    assert series(text, "sd1job_epoch_duration_seconds_bucket")[f'context="44",le="10.0",run="{run}"'] == 0
    assert series(text, "sd1job_epoch_duration_seconds_bucket")[f'context="44",le="20.0",run="{run}"'] == 1


def test_a_busy_port_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        with caplog.at_level(logging.WARNING):
            assert not telemetry.serve(busy.getsockname()[1])
    assert "cannot serve /metrics" in caplog.text


def test_resumed_run_replays_its_epochs_and_pushes_only_its_own_context(pushgateway: services.Service) -> None:
    run = unique_run()
    first = telemetry.TrainingMetrics(run, 44, pushgateway.url)
    first.start(10)
    other = telemetry.TrainingMetrics(run, 88, pushgateway.url)
    other.start(10)
    epoch(other, 1)
    for number in (1, 2):
        epoch(first, number)
    assert first.push()
    # The process dies; a new one resumes after epoch 2: it resets, replays the checkpoint, goes on.
    resumed = telemetry.TrainingMetrics(run, 44, pushgateway.url)
    resumed.start(10)
    for number in (1, 2, 3):
        epoch(resumed, number)
    resumed.completed(1234.0)
    assert resumed.push()
    text = scrape(f"{pushgateway.url}/metrics")
    labels = f'context="44",instance="",job="sd1job",run="{run}"'
    assert series(text, "sd1job_windows_processed_total")[labels] == 300  # not 500: no double count
    assert series(text, "sd1job_epoch_duration_seconds_count")[labels] == 3
    assert series(text, "sd1job_epochs_completed")[labels] == 3
    assert series(text, "sd1job_train_completed_timestamp_seconds")[labels] == 1234.0
    # context 88 was never pushed, and the context-44 group holds no context-88 series.
    assert not [
        key for key in series(text, "sd1job_epochs_completed") if f'run="{run}"' in key and 'context="88"' in key
    ]


def test_unreachable_pushgateway_during_training_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    metrics = telemetry.TrainingMetrics(unique_run(), 44, f"http://127.0.0.1:{services.free_port()}")
    metrics.start(5)
    with caplog.at_level(logging.WARNING):
        assert not metrics.push()
        epoch(metrics, 1)
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
