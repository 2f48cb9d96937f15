"""Binomial statistics for fidelity and conformance tests (see netbed_testkit.binomial).

The implementation lives in the standard-library package ``netbed_testkit`` so that the
kernel checks in the VM (vm/kernel_fidelity.py), which get no pip install, use the very same
interval as the harness and the tests.  This module is the harness's public name for it.
"""

from __future__ import annotations

from netbed_testkit.binomial import (
    DEFAULT_CONFIDENCE,
    betainc,
    clopper_pearson_interval,
    rate_in_interval,
    sample_size,
    wilson_interval,
    z_value,
)

__all__ = [
    "DEFAULT_CONFIDENCE",
    "betainc",
    "clopper_pearson_interval",
    "rate_in_interval",
    "sample_size",
    "wilson_interval",
    "z_value",
]
