"""Benchmark the listening test's server: a scripted session, then several listeners at once on loopback.

A scored run is made without training (44.1 kHz, ``RIFFS`` riffs of ``RIFF_SECONDS`` s, ``ARMS``
arms of two seeds, each output the pedal plus noise), or given with ``--config`` (a run whose
units are scored). Measured: building the stimuli (excerpts, anchor, BS.1770 matching), one
scripted ABX session as the page runs it (per trial: the trial, its three WAVs, the answer), then
``LISTENERS`` listeners doing the same at once: answer latency (request to acknowledged, the
answer durably stored) median, 95th percentile and maximum, and answers per second. Bounded: at
most ``LISTENERS`` x ``ARMS`` x ``PER_ARM`` answers.

    python bench/bench_listen.py [--config FILE] [--listeners N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, save_results
from sd1job.audio import encode_wav
from sd1job.config import Config, config_from_mapping, load_config
from sd1job.layout import RunLayout, riff_dry_key, riff_wet_key
from sd1job.listen import answers
from sd1job.listen.design import Session
from sd1job.listen.server import ListeningTest, make_server
from sd1job.listen.stimuli import build_stimuli
from sd1job.store import LocalStore, open_store

RATE = 44100
RIFFS = 2
RIFF_SECONDS = 10.0
ARMS = [44, 132, 264, 440]
PER_ARM = 6
LISTENERS = 8


def synthetic_run(root: Path) -> Config:
    """A scored run without training: every unit's output is the pedal plus noise."""
    config = config_from_mapping(
        {
            "store": str(root),
            "run_id": "bench-listen",
            "recordings": {"riffs": [f"riff{i}" for i in range(RIFFS)], "sample_rate": RATE},
            "dataset": {"contexts": ARMS},
            "train": {"repeats": 2},
            "listen": {"trials_per_arm": PER_ARM},
        }
    )
    store = LocalStore(root)
    layout = RunLayout(config.run_id)
    rng = np.random.default_rng(0)
    t = np.arange(int(RIFF_SECONDS * RATE)) / RATE
    for riff in config.recordings.riffs:
        dry = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 330) * t) * np.exp(-(t % 0.5) * 5)
        wet = 0.5 * np.tanh(4 * dry)
        store.write_bytes(riff_dry_key(config.recordings.test_dir, riff), encode_wav(dry.astype(np.float32), RATE))
        store.write_bytes(riff_wet_key(config.recordings.test_dir, riff), encode_wav(wet.astype(np.float32), RATE))
        for unit in config.units():
            noise = 0.02 / (unit.context or 1) ** 0.5 * rng.standard_normal(t.size)
            store.write_bytes(layout.unit_output(unit, riff), encode_wav(np.clip(wet + noise, -1, 1), RATE))
    for unit in config.units():
        rows = [
            {"riff": riff, "esr": 0.1 / (unit.context or 1) + 0.001 * unit.seed} for riff in config.recordings.riffs
        ]
        store.write_json(layout.scores(unit), {"unit": unit.name, "rows": rows})
    return config


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes, float]:
    """One HTTP request on a fresh connection (as a page's fetch may be); status, body, seconds."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        response = connection.getresponse()
        payload = response.read()
        return response.status, payload, time.perf_counter() - started
    finally:
        connection.close()


def session_run(port: int, store: LocalStore, layout: RunLayout, listener: str) -> dict[str, Any]:
    """One listener's whole ABX session as the page runs it; the right answers come from the stored key."""
    status, body, _ = request(port, "POST", "/api/sessions", {"listener": listener})
    assert status == 201, body
    session_id = json.loads(body)["session"]
    key = Session.from_json(store.read_json(answers.session_key(layout, session_id)))
    latencies, audio_seconds, audio_bytes = [], [], 0
    for index, trial in enumerate(key.trials):
        status, body, _ = request(port, "GET", f"/api/sessions/{session_id}/trials/{index}")
        public = json.loads(body)
        for stimulus in public["stimuli"]:
            status, wav, seconds = request(port, "GET", f"/audio/{stimulus['id']}.wav")
            audio_seconds.append(seconds)
            audio_bytes += len(wav)
        status, body, seconds = request(
            port, "POST", f"/api/sessions/{session_id}/answers", {"trial": public["trial"], "choice": trial.correct}
        )
        assert status == 200, body
        latencies.append(seconds)
    return {"latencies": latencies, "audio_seconds": audio_seconds, "audio_bytes": audio_bytes}


def summary(values: list[float]) -> dict[str, float]:
    """Median, 95th percentile and maximum, in milliseconds."""
    data = 1000 * np.asarray(values)
    return {"p50_ms": float(np.median(data)), "p95_ms": float(np.percentile(data, 95)), "max_ms": float(data.max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a scored run to use instead of the synthetic one")
    parser.add_argument("--listeners", type=int, default=LISTENERS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        config = load_config(args.config) if args.config else synthetic_run(Path(scratch) / "store")
        store = open_store(config.store)
        assert isinstance(store, LocalStore), "the benchmark reads the key from a local store"
        layout = RunLayout(config.run_id)
        started = time.perf_counter()
        stimuli = build_stimuli(store, config)
        build_seconds = time.perf_counter() - started
        test = ListeningTest(store, layout, stimuli, "abx", config.listen.trials_per_arm)
        server = make_server(test, "127.0.0.1", 0)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            scripted = session_run(port, store, layout, "scripted")
            results: list[dict[str, Any]] = []
            lock = threading.Lock()

            def listen(name: str) -> None:
                outcome = session_run(port, store, layout, name)
                with lock:
                    results.append(outcome)

            threads = [threading.Thread(target=listen, args=(f"listener{i}",)) for i in range(args.listeners)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            load_seconds = time.perf_counter() - started
        finally:
            server.shutdown()
            server.server_close()
        stored = sum(len(store.read_text(k).splitlines()) for k in store.list(layout.listening_file("answers")))
    load_latencies = [s for r in results for s in r["latencies"]]
    report = {
        "arms": len(stimuli.arms),
        "riffs": len(stimuli.riffs),
        "excerpt_seconds": stimuli.seconds,
        "stimuli": len(stimuli.wavs),
        "build_stimuli_seconds": build_seconds,
        "trials_per_session": len(scripted["latencies"]),
        "scripted_answer": summary(scripted["latencies"]),
        "scripted_wav": summary(scripted["audio_seconds"]),
        "scripted_audio_mb": scripted["audio_bytes"] / 1e6,
        "listeners": args.listeners,
        "load_answer": summary(load_latencies),
        "load_wav": summary([s for r in results for s in r["audio_seconds"]]),
        "load_seconds": load_seconds,
        "load_answers": len(load_latencies),
        "answers_per_second": len(load_latencies) / load_seconds,
        "answers_stored": stored,
    }
    assert stored == len(scripted["latencies"]) + len(load_latencies), "an acknowledged answer is missing"
    answer, load, wav = report["scripted_answer"], report["load_answer"], report["load_wav"]
    print_table(
        [
            {
                "measure": "stimuli built (s)",
                "value": f"{build_seconds:.2f} ({len(stimuli.wavs)} x {stimuli.seconds:.0f} s)",
            },
            {
                "measure": "scripted answer p50/p95/max (ms)",
                "value": f"{answer['p50_ms']:.1f} / {answer['p95_ms']:.1f} / {answer['max_ms']:.1f}",
            },
            {"measure": "scripted WAV fetch p50 (ms)", "value": f"{report['scripted_wav']['p50_ms']:.1f}"},
            {
                "measure": f"{args.listeners} listeners: answer p50/p95/max (ms)",
                "value": f"{load['p50_ms']:.1f} / {load['p95_ms']:.1f} / {load['max_ms']:.1f}",
            },
            {
                "measure": f"{args.listeners} listeners: WAV p50/p95 (ms)",
                "value": f"{wav['p50_ms']:.1f} / {wav['p95_ms']:.1f}",
            },
            {"measure": "answers per second (3 WAVs a trial)", "value": f"{report['answers_per_second']:.1f}"},
            {"measure": "answers stored / acknowledged", "value": f"{stored} / {stored}"},
        ]
    )
    print(f"results: {save_results('listen', report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
