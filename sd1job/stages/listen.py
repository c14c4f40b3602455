"""The ``listen`` stage: a blind listening test of the run's models against the pedal, in the browser.

``python -m sd1job listen --config FILE [--port P] [--host H] [--test abx|mushra]`` builds the
stimuli from the scored units (``sd1job.listen.stimuli``), serves the page on
``http://H:P/`` (127.0.0.1 unless ``--host`` says otherwise; the port from ``listen.port``) and
stores every answer as it arrives under ``runs/<run_id>/listening/``. It prints the address on
one line, then serves until interrupted; sessions in the store are resumed. ``report`` analyses
the answers.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sd1job.config import Config
from sd1job.errors import UserError
from sd1job.layout import RunLayout
from sd1job.listen.design import TESTS
from sd1job.listen.server import ListeningTest, make_server
from sd1job.listen.stimuli import build_stimuli
from sd1job.store import open_store

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job listen``."""
    parser.add_argument("--port", type=int, default=None, help="port to serve on (default: listen.port; 0 = any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--test", choices=TESTS, default=None, help="abx or mushra (default: listen.test)")
    parser.add_argument(
        "--set",
        dest="recording_set",
        metavar="NAME",
        default=None,
        help="the recording set to listen to when the grid spans several (its arms against its pedal)",
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: build the stimuli, then serve the test until interrupted."""
    store = open_store(config.store)
    layout = RunLayout(config.run_id)
    test = ListeningTest(
        store,
        layout,
        build_stimuli(store, config, args.recording_set),
        args.test or config.listen.test,
        config.listen.trials_per_arm,
    )
    port = config.listen.port if args.port is None else args.port
    try:
        server = make_server(test, args.host, port)
    except OSError as error:
        raise UserError(f"listen: cannot serve on {args.host}:{port}: {error.strerror or error}") from None
    host, bound = server.server_address[:2]
    print(f"listening test ({test.test}) at http://{host}:{bound}/", flush=True)
    log.info("listen: answers go to %s", store.url(layout.listening_dir))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("listen: stopped; every acknowledged answer is stored", file=sys.stderr)
    finally:
        server.server_close()
    return 0
