"""Venue simulator: a local HTTP server that answers like the venues, for tests and the demo.

    from etl_project.simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig(seed=7)).start()
    sim.kraken_base_url            # http://127.0.0.1:<port>/derivatives/api/v3
    sim.set_fault("kraken_futures", status=503, times=2)
    sim.stop()

`server.py` is the server, router, counting, fault injection and admin endpoints (`config.py`
its settings, `http_handler.py` the stdlib request handler); each venue is a sibling module
with an `install(sim)` function listed in `server.VENUE_MODULES`; `data.py` generates the
seeded, deterministic venue data.
"""

from etl_project.simulator.config import (
    DEFAULT_KRAKEN_API_KEY,
    DEFAULT_KRAKEN_API_SECRET,
    SimulatorConfig,
)
from etl_project.simulator.routing import Request, Response
from etl_project.simulator.server import Simulator, serve_forever

__all__ = [
    "DEFAULT_KRAKEN_API_KEY",
    "DEFAULT_KRAKEN_API_SECRET",
    "Request",
    "Response",
    "Simulator",
    "SimulatorConfig",
    "serve_forever",
]
