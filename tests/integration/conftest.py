"""Integration-suite set-up: loads the conformance report plugin (property x condition table).

Not ``pytest_plugins = ["netbed.report"]``: pytest refuses ``pytest_plugins`` in a conftest
below the rootdir when the run starts from the rootdir (``make test``), so the plugin's
configure hook is called from here instead; it registers the markers and the collector once.
"""

import pytest

from netbed import report


def pytest_configure(config: pytest.Config) -> None:
    report.pytest_configure(config)
