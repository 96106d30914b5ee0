"""Run the simulator alone: ``broker simulator`` or ``python -m broker.simulator.standalone``."""

from __future__ import annotations

import argparse
import uuid
from dataclasses import replace

import uvicorn

from broker.simulator.app import create_simulator_app
from broker.simulator.config import SimulatorConfig


def serve(
    host: str,
    port: int,
    api_key: str | None,
    webhook_url: str | None,
    webhook_secret: str | None,
    *,
    max_live_sessions: int | None = None,
) -> None:
    """Serve a simulator with uvicorn (one worker), printing its base URL and any generated key."""
    if not api_key:
        api_key = str(uuid.uuid4())
        print(f"Gladia simulator API key (generated): {api_key}", flush=True)
    config = SimulatorConfig(api_key, webhook_url=webhook_url, webhook_secret=webhook_secret)
    if max_live_sessions is not None:
        config = replace(config, max_live_sessions=max_live_sessions)
    print(f"Gladia simulator listening on http://{host}:{port}", flush=True)
    uvicorn.run(create_simulator_app(config), host=host, port=port, workers=1, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description="A local Gladia Live v2 simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--api-key")
    parser.add_argument("--webhook-url")
    parser.add_argument("--webhook-secret")
    parser.add_argument("--max-live-sessions", type=int)
    args = parser.parse_args(argv)
    serve(
        args.host,
        args.port,
        args.api_key,
        args.webhook_url,
        args.webhook_secret,
        max_live_sessions=args.max_live_sessions,
    )


if __name__ == "__main__":
    main()
