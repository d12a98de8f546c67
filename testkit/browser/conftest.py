"""Keeps each test's outcome on its item, so the browser fixture knows at teardown whether to save evidence."""
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
