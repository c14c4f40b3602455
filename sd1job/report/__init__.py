"""Figures and the HTML report of a run (matplotlib Agg and jinja2 templates kept as files)."""
