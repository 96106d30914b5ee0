"""A faithful local Gladia Live v2 (REST, WebSocket, callbacks, webhooks) for tests and dev."""

from broker.simulator.app import create_simulator_app
from broker.simulator.config import SimulatorConfig
from broker.simulator.faults import Fault
from broker.simulator.state import SimulatorState

__all__ = ["Fault", "SimulatorConfig", "SimulatorState", "create_simulator_app"]
