"""Daily settlement balance report: the Dagster-free core.

Venue clients, the canonical model, Pandera schemas, transforms and sinks live here and run
on their own; the `assets` package is the thin Dagster shell around them.
"""

__version__ = "0.1.0"
