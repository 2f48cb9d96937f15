"""netbed: a containerized multi-host network testbed."""

__version__ = "0.1.0"
