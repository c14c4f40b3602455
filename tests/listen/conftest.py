"""The listening test's fixtures: the shared headless Chromium of the report's browser test."""

from tests.test_report_browser import browser  # noqa: F401 (re-exported as a fixture)
