"""``make local-run-s3``: the whole cloud path on one machine.

Starts a real S3-compatible server (SeaweedFS, credentials enforced), a Prometheus Pushgateway
and a Prometheus on loopback; generates the demo recordings into the bucket; runs the sweep with
the store on S3 and metrics pushed to the Pushgateway; shows what Prometheus received; copies the
run's eval/ folder (report, plots, audio) to a local directory so the report opens in a browser;
then stops every service, whatever happened.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts import services  # noqa: E402  (the loopback services the tests use too)

BUCKET = "sd1job"
PREFIX = "demo"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/local.yaml")
    parser.add_argument("--out", default="runs-store-s3", help="local copy of the run's eval/ folder")
    parser.add_argument("--synth-args", default="--riff-seconds 1", help="options for `sd1job synth`")
    args = parser.parse_args()

    import boto3

    from sd1job.config import load_config
    from sd1job.layout import RunLayout
    from sd1job.store import LocalStore, S3Store, make_s3_client

    config = load_config(args.config)
    work = Path(tempfile.mkdtemp(prefix="sd1job-cloud-"))
    running: list[services.Service] = []
    try:
        s3 = services.start_s3(work / "s3")
        running.append(s3)
        gateway = services.start_pushgateway(work / "pushgateway")
        running.append(gateway)
        prometheus = services.start_prometheus(work / "prometheus", [gateway.url.removeprefix("http://")])
        running.append(prometheus)
        print(f"S3 {s3.url}, Pushgateway {gateway.url}, Prometheus {prometheus.url}", flush=True)
        os.environ.update(s3.client_env)
        boto3.client("s3", endpoint_url=s3.url).create_bucket(Bucket=BUCKET)
        env = {
            **os.environ,
            "SD1JOB_STORE": f"s3://{BUCKET}/{PREFIX}",
            "SD1JOB_METRICS__PUSHGATEWAY": gateway.url,
        }
        python = [sys.executable, "-m", "sd1job"]
        subprocess.run([*python, "synth", "--config", args.config, *args.synth_args.split()], env=env, check=True)
        jobs = str(os.cpu_count() or 1)
        subprocess.run([*python, "sweep", "--config", args.config, "--jobs", jobs], env=env, check=True)

        print("\nwhat Prometheus scraped from the Pushgateway:")
        for series in services.wait_for_query(prometheus.url, "sd1job_epochs_completed"):
            labels = series["metric"]
            print(f"  unit {labels.get('unit'):>14}: {series['value'][1]} epochs")

        store = S3Store(BUCKET, PREFIX, client=make_s3_client())
        local = LocalStore(REPO / args.out)
        eval_dir = RunLayout(config.run_id).eval_dir
        for key in store.list(eval_dir):
            local.write_bytes(key, store.read_bytes(key))
        print(f"\nreport (copied from s3://{BUCKET}/{PREFIX}/{eval_dir}): {local.url(eval_dir)}/report.html")
        return 0
    except subprocess.CalledProcessError as error:
        print(f"error: {' '.join(map(str, error.cmd[2:4]))} failed with status {error.returncode}", file=sys.stderr)
        return 1
    finally:
        for service in reversed(running):
            service.stop()


if __name__ == "__main__":
    raise SystemExit(main())
