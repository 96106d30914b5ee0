"""`broker serve`, `dev`, `token mint`, `token revoke`, `relay …` and `simulator`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

import redis.asyncio as redis
import uvicorn
from redis.exceptions import RedisError
from starlette.datastructures import Secret
from starlette.types import ASGIApp

from broker.errors import InvalidFields, NotFound, SettingsError
from broker.events.relay import DeadLetters
from broker.identity.credentials import TokenService, validate_subject
from broker.identity.grants import BindingRules
from broker.identity.revocation import Revocations
from broker.observability.logs import configure_logging
from broker.policy.rules import rules_from_settings
from broker.settings import Settings, check_for_production, load_settings
from broker.store.connection import check_embedded_store, open_redis
from broker.store.events import DeadLetter, EventStore
from broker.web.app import create_app, create_metrics_app
from broker.web.routes.demo import DemoOptions
from broker.web.routes.tokens import minted_answer
from broker.web.server_protocol import CoalescingHttpToolsProtocol

DEV_SUBJECT = "dev-user"
DEV_SERVICE_KEY = "development-only-service-key-000000"
# A dead letter's id, as `broker relay dead-letters` prints it (a Redis stream id).
_LETTER_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
_DEAD_LETTER_COLUMNS = ("id", "session", "event", "type", "attempts", "last_error",
                        "first_failed_at", "dead_lettered_at")  # fmt: skip

Answer = TypeVar("Answer")


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except SettingsError as exc:
        print(f"broker: refusing to start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# The collector's first-generation threshold under `serve` (Python's default is 700).
GC_ALLOCATIONS_PER_PASS = 10_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="broker", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the broker in production")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    dev = commands.add_parser("dev", help="run everything embedded: no key or Redis needed")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--simulator-port", type=int, default=None, help="default: --port + 1")
    dev.set_defaults(run=_dev)

    _add_token_commands(commands)

    relay = commands.add_parser("relay", help="the relay's dead letters (in REDIS_URL)")
    relay_commands = relay.add_subparsers(required=True, metavar="ACTION")
    dead_letters = relay_commands.add_parser("dead-letters", help="list deliveries given up on")
    dead_letters.add_argument("--limit", type=int, default=100, help="the oldest this many")
    dead_letters.set_defaults(run=_list_dead_letters)
    replay = relay_commands.add_parser("replay", help="deliver a dead letter's session again")
    replay.add_argument("letter_id", metavar="ID", help="as `broker relay dead-letters` lists it")
    replay.set_defaults(run=_replay_dead_letter)

    simulator = commands.add_parser("simulator", help="run the Gladia Live v2 simulator")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8001)
    simulator.add_argument("--api-key", default=None, help="generated and printed when absent")
    simulator.add_argument("--webhook-url", default=None)
    simulator.add_argument("--webhook-secret", default=None, help="whsec_…")
    simulator.set_defaults(run=_simulator)
    return parser


def _serve(args: argparse.Namespace) -> None:
    settings = load_settings()
    problems = check_for_production(settings)
    if problems:
        raise SettingsError("; ".join(problems))
    configure_logging(json_lines=True, level=settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        # The app reads X-Forwarded-For itself, trusting BROKER_TRUSTED_PROXIES, so that it still
        # knows the TCP peer when it decides whether to believe the gateway's identity header.
        proxy_headers=False,
        # On SIGTERM: stop accepting, let requests in flight finish within this bound, then
        # run the lifespan's shutdown (which closes the Gladia and Redis clients).
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        access_log=False,
        log_config=None,
        server_header=False,
        http=CoalescingHttpToolsProtocol,
    )
    server = uvicorn.Server(config)
    freeze_startup_objects()
    if settings.metrics_port is None:
        server.run()
        return
    metrics_config = uvicorn.Config(
        create_metrics_app(app),
        host=args.host,
        port=settings.metrics_port,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
    )
    asyncio.run(_serve_with_companion(server, _CompanionServer(metrics_config)))


def freeze_startup_objects() -> None:
    """Keep the garbage collector's passes to what requests allocate.

    The broker's requests free what they allocate by reference counting; the collector only
    looks for cycles. Yet with Python's defaults it ran every few requests (it counts
    allocations, 700 a pass), and each full pass walked the 70,000 objects startup leaves
    behind (38 ms). Under lookups, its passes took 12% of the broker's CPU (`gc.callbacks`,
    docs/performance.md). What startup built lives as long as the process: frozen
    (`gc.freeze`, as the gc module's documentation suggests for servers), it is never
    walked again, and a pass every 10,000 allocations finds the rare cycles just as well.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_ALLOCATIONS_PER_PASS)


class _CompanionServer(uvicorn.Server):
    """A server that runs beside the main one and stops with it; it takes no signals itself."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_with_companion(main: uvicorn.Server, companion: uvicorn.Server) -> None:
    companion_task = asyncio.create_task(companion.serve())
    try:
        await main.serve()
    finally:
        companion.should_exit = True
        await companion_task


def _add_token_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="tokens for end users")
    token_commands = token.add_subparsers(required=True, metavar="ACTION")
    mint = token_commands.add_parser("mint", help="print a token for a subject")
    mint.add_argument("--sub", required=True, help="the end user's id")
    mint.add_argument("--ttl", type=int, default=None, help="seconds (BROKER_TOKEN_TTL_S)")
    mint.add_argument("--preset", action="append", default=None, help="a preset sessions may "
                      "be created from (repeatable; default: any)")  # fmt: skip
    mint.add_argument("--max-channels", type=int, default=None)
    mint.add_argument("--max-duration", type=int, default=None, help="seconds a session may last")
    mint.add_argument("--max-sessions", type=int, default=None, help="sessions it may create")
    mint.add_argument("--single-use", action="store_true", help="one session (--max-sessions 1)")
    mint.add_argument("--client-ref", default=None, help="the app's own reference, opaque")
    mint.add_argument("--json", action="store_true", help="print token, token_id, expires_at, "
                      "bindings as POST /v1/tokens answers them")  # fmt: skip
    mint.set_defaults(run=_mint)
    revoke = token_commands.add_parser(
        "revoke", help="revoke a token, or every token of a subject (in REDIS_URL)"
    )
    revoke.add_argument("token_id", nargs="?", metavar="TOKEN_ID", help="as minted (token_id)")
    revoke.add_argument("--subject", default=None, help="every token of this end user until now")
    revoke.set_defaults(run=_revoke)


# `broker token mint`'s options, by the request field each one sets.
_MINT_OPTIONS = {"sub": "--sub", "ttl": "--ttl", "presets": "--preset",
                 "max_channels": "--max-channels", "max_duration_s": "--max-duration",
                 "max_sessions": "--max-sessions", "single_use": "--single-use",
                 "client_ref": "--client-ref"}  # fmt: skip


def _mint(args: argparse.Namespace) -> None:
    settings = load_settings()
    rules = rules_from_settings(settings)
    binds = BindingRules(rules.max_channels, presets=frozenset(rules.presets))
    tokens = TokenService(
        settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s, binds
    )
    body = {
        "sub": args.sub,
        "ttl": args.ttl,
        "presets": args.preset,
        "max_channels": args.max_channels,
        "max_duration_s": args.max_duration,
        "max_sessions": args.max_sessions,
        "single_use": args.single_use or None,
        "client_ref": args.client_ref,
    }
    try:
        minted = tokens.mint_request(body)
    except InvalidFields as refused:
        for problem in refused.problems:
            option = _MINT_OPTIONS.get(problem.field, problem.field)
            print(f"broker: {option} {problem.message}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(minted_answer(minted)) if args.json else minted.token)


def _revoke(args: argparse.Namespace) -> None:
    if (args.token_id is None) == (args.subject is None):
        print("broker: name a TOKEN_ID or a --subject (one of the two)", file=sys.stderr)
        raise SystemExit(2)
    try:
        if args.subject is not None:
            subject = validate_subject(args.subject)
            held = asyncio.run(_with_revocations(lambda found: found.revoke_subject(subject)))
            print(f"revoked every token of the subject issued until {_utc(int(held * 1000))}")
        else:
            asyncio.run(_with_revocations(lambda found: found.revoke_token(args.token_id)))
            print(f"revoked token {args.token_id}")
    except InvalidFields as refused:
        print(f"broker: --subject {refused.problems[0].message}", file=sys.stderr)
        raise SystemExit(2) from None
    except NotFound:
        print(f"broker: {args.token_id!r} is not a token id of this broker", file=sys.stderr)
        raise SystemExit(1) from None


async def _with_revocations(action: Callable[[Revocations], Awaitable[Answer]]) -> Answer:
    """`action` on the revocations in the configured Redis, which it needs."""
    return await _on_redis(
        "revocations are kept in its Redis",
        lambda client, settings: action(Revocations(client, settings)),
    )


async def _on_redis(
    why: str, action: Callable[[redis.Redis, Settings], Awaitable[Answer]]
) -> Answer:
    """`action` on a client of the configured Redis, closed after; REDIS_URL missing or Redis
    failing end the command with a message (`why` says what the command keeps there)."""
    settings = load_settings()
    if not settings.redis_url:
        print(f"broker: REDIS_URL is missing ({why})", file=sys.stderr)
        raise SystemExit(2)
    client = open_redis(settings)
    try:
        return await action(client, settings)
    except RedisError as exc:
        print(f"broker: Redis failed: {type(exc).__name__}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        await client.aclose()


def _list_dead_letters(args: argparse.Namespace) -> None:
    letters = asyncio.run(_with_dead_letters(lambda dead: dead.oldest(args.limit)))
    print("\t".join(_DEAD_LETTER_COLUMNS))
    for letter in letters:
        print("\t".join(_dead_letter_row(letter)))


def _dead_letter_row(letter: DeadLetter) -> tuple[str, ...]:
    """What an operator sees of a letter: where and why, never a payload, URL or subject."""
    return (
        letter.id,
        letter.session_id,
        letter.event_id,
        letter.event_type,
        str(letter.attempts),
        letter.error,
        _utc(letter.first_failed_ms),
        _utc(letter.dead_lettered_ms),
    )


def _utc(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _replay_dead_letter(args: argparse.Namespace) -> None:
    letter_id = args.letter_id
    if not _LETTER_ID.match(letter_id):
        print(f"broker: {letter_id!r} is not a dead letter id", file=sys.stderr)
        raise SystemExit(2)
    session_id = asyncio.run(_with_dead_letters(lambda dead: dead.replay(letter_id)))
    if session_id is None:
        print(f"broker: no dead letter {letter_id} (replayed already?)", file=sys.stderr)
        raise SystemExit(1)
    print(f"replayed {letter_id}: session {session_id} is relayed again from where it stopped")


async def _with_dead_letters(action: Callable[[DeadLetters], Awaitable[Answer]]) -> Answer:
    """`action` on the dead letters in the configured Redis, which it needs."""
    return await _on_redis(
        "the dead letters are in its Redis",
        lambda client, settings: action(DeadLetters(EventStore(client, settings))),
    )


def _simulator(args: argparse.Namespace) -> None:
    from broker.simulator.standalone import serve

    serve(args.host, args.port, args.api_key, args.webhook_url, args.webhook_secret)


def _dev(args: argparse.Namespace) -> None:
    from broker.simulator import SimulatorConfig, create_simulator_app

    simulator_port = args.simulator_port or args.port + 1
    simulator_key = secrets.token_urlsafe(24)
    settings = load_settings()
    check_embedded_store(settings)
    settings = replace(
        settings,
        gladia_api_key=Secret(simulator_key),
        gladia_api_url=f"http://127.0.0.1:{simulator_port}",
        service_keys=settings.service_keys or (Secret(DEV_SERVICE_KEY),),
        # The embedded simulator calls back to this broker, so the events API has events.
        public_url=settings.public_url or f"http://127.0.0.1:{args.port}",
    )
    configure_logging(json_lines=False, level=settings.log_level)
    broker_app = create_app(settings, DemoOptions(simulator=True, dev_token_subject=DEV_SUBJECT))
    simulator_app = create_simulator_app(SimulatorConfig(api_key=simulator_key))
    print(_dev_banner(settings, args.host, args.port, simulator_port), flush=True)
    servers = [
        _server(broker_app, args.host, args.port),
        _server(simulator_app, "127.0.0.1", simulator_port, log_level="warning"),
    ]
    if settings.metrics_port is not None:
        servers.append(_server(create_metrics_app(broker_app), args.host, settings.metrics_port))
    asyncio.run(_serve_together(servers))


def _server(app: ASGIApp, host: str, port: int, log_level: str = "info") -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        log_level=log_level,
        proxy_headers=False,
    )
    return uvicorn.Server(config)


async def _serve_together(servers: list[uvicorn.Server]) -> None:
    await asyncio.gather(*(server.serve() for server in servers))


def _dev_banner(settings: Settings, host: str, port: int, simulator_port: int) -> str:
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)
    token = tokens.mint(DEV_SUBJECT, settings.token_max_ttl_s).token
    # A key the operator configured is theirs to know; only the development key is printed.
    configured = str(settings.service_keys[0]) != DEV_SERVICE_KEY
    service_key = "<the first of your BROKER_SERVICE_KEYS>" if configured else DEV_SERVICE_KEY
    base = f"http://{host}:{port}"
    store = "Redis at REDIS_URL" if settings.redis_url else "in-memory store (single process)"
    return f"""
Gladia broker, development mode
  broker     {base}
  demo page  {base}/demo  (microphone → Gladia simulator, plain WebSocket or Gladia's JS SDK)
  Gladia     simulator at http://127.0.0.1:{simulator_port} (no real Gladia is called)
  state      {store}

A development token for the user "{DEV_SUBJECT}", valid {settings.token_max_ttl_s // 3600} h:
  export TOKEN={token}
The service key your backend would use to mint tokens (POST /v1/tokens):
  export SERVICE_KEY={service_key}

Try it:
  curl -s -X POST {base}/v1/sessions -H "Authorization: Bearer $TOKEN" \\
       -H 'content-type: application/json' -d '{{"language_config": {{"languages": ["en"]}}}}'
  curl -s {base}/v1/sessions/SESSION_ID -H "Authorization: Bearer $TOKEN"
  curl -s {base}/v1/sessions/SESSION_ID/result -H "Authorization: Bearer $TOKEN"
  curl -sN {base}/v1/sessions/SESSION_ID/events -H "Authorization: Bearer $TOKEN" \\
       -H 'accept: text/event-stream'
"""
