"""The HTML report: one page rendered from ``templates/report.html.j2`` with jinja2.

The page references its images and audio by paths relative to itself (all under the run's
``eval/`` folder), so it stays small, opens from a local store with ``file://``, and works the
same after downloading the ``eval/`` prefix of an S3 store.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import jinja2

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Figure:
    """One plot: its name (the template holds its title and caption), its file relative to the page,
    and the numbers the caption quotes."""

    name: str
    href: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Clip:
    """One audio player: a label and the file relative to the page."""

    label: str
    href: str


@dataclass(frozen=True)
class ListeningRow:
    """The players of one riff: dry, true wet, then each model's output."""

    riff: str
    clips: list[Clip]


@dataclass(frozen=True)
class ExportedFile:
    """A model exported for players: its unit, its file relative to the page, its size in bytes."""

    unit: str
    href: str
    size: int


@dataclass
class ReportPage:
    """Everything the report shows."""

    run_id: str
    store_url: str
    generated: str
    config_yaml: str
    columns: list[str]
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    summary_columns: list[str]
    reference: list[dict[str, Any]]
    statistics: dict[str, Any]
    figures: list[Figure]
    listening: list[ListeningRow]
    exports: list[ExportedFile] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    # a grid's datasets by tag (data/<tag>/), when there are several: each one's recording checks are listed
    variant_manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    listening_test: dict[str, Any] | None = None


def relative_href(path: str) -> str:
    """A relative URL for a path under the page's folder (each segment percent-encoded)."""
    return "/".join(quote(part) for part in path.split("/"))


def format_number(value: Any) -> str:
    """Numbers for tables: 4 significant digits for floats, integers as they are, blanks for None."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("sd1job.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["num"] = format_number
    environment.filters["bytes"] = format_bytes
    environment.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, sort_keys=False)
    return environment


def _esr_table(page: ReportPage) -> tuple[list[str], list[dict[str, Any]]]:
    """The seed's table: one row per arm, one ESR column per riff (mean over the arm's seeds), plus the mean."""
    riffs = list(dict.fromkeys(row["riff"] for row in page.rows))
    table = []
    for summary in page.summary:
        mine = [row for row in page.rows if row["arm"] == summary["arm"]]
        values = [[row["esr"] for row in mine if row["riff"] == riff] for riff in riffs]
        table.append(
            {
                "arm": summary["arm"],
                "values": [sum(v) / len(v) if v else None for v in values],
                "mean": summary["esr"],
            }
        )
    return riffs, table


def format_bytes(size: int) -> str:
    """A file size for people: 812 B, 70.3 KiB, 4.1 MiB."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def manifest_checks(manifest: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """The per-recording check reports of a data manifest: the training pair, then each riff."""
    if not isinstance(manifest, dict):
        return []
    checks = []
    if isinstance(manifest.get("train"), dict):
        checks.append(("training recording", manifest["train"]))
    riffs = manifest.get("riffs")
    if isinstance(riffs, dict):
        checks.extend((f"riff {name}", report) for name, report in riffs.items() if isinstance(report, dict))
    return checks


def render_report(page: ReportPage) -> str:
    """The report page's HTML."""
    riffs, esr_table = _esr_table(page)
    template = _environment().get_template(TEMPLATE)
    checks = [
        (f"{name} ({tag})", report)
        for tag, manifest in page.variant_manifests.items()
        for name, report in manifest_checks(manifest)
    ] or manifest_checks(page.manifest)
    return template.render(page=page, esr_riffs=riffs, esr_table=esr_table, manifest_checks=checks)
