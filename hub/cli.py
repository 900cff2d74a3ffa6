"""The `hub` command: serve, and the administration a fresh installation needs."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from hub import logmask
from hub.app import Starter, create_app, wait_for_db
from hub.context import AppContext
from hub.db import Database
from hub.embedded_db import EmbeddedDatabase, port_is_open
from hub.permissions import LEVELS
from hub.settings import Settings
from hub.tenancy import TenancyError, create_tenant, create_user, get_tenant_by_slug


@asynccontextmanager
async def admin_context(settings: Settings) -> AsyncIterator[AppContext]:
    """A database connection for one CLI command (starting the embedded server if needed)."""
    embedded = None
    uri = settings.mongodb_uri
    if uri is None:
        embedded = EmbeddedDatabase(settings.var_dir / "db", settings.embedded_db_port)
        if not port_is_open("127.0.0.1", settings.embedded_db_port):
            await embedded.start()
        uri = embedded.uri
    db = Database(uri, settings.db_name)
    try:
        await wait_for_db(db)
        await db.ensure_indexes()
        yield AppContext(settings=settings, db=db)
    finally:
        await db.close()
        if embedded is not None:
            await embedded.stop()


def banner(settings: Settings, demo: bool) -> str:
    url = settings.public_url
    lines = [
        "",
        "Contact hub is starting.",
        f"  Agent dashboard : {url}/agent   (login page {url}/login)",
        f"  Health          : {url}/healthz",
    ]
    if demo:
        from hub.demo import DEMO_NUMBER, DEMO_PASSWORD, DEMO_USERS, OPERATOR_USERS, RESELLER_USERS

        lines += [
            f"  Demo web site   : {url}/demo   (the chat widget is bottom right; its phone button calls)",
            f"  Demo phone line : {DEMO_NUMBER} (a Twilio number's voice webhook: {url}/twilio/voice)",
            "",
            f"  Demo logins (tenant 'demo', password '{DEMO_PASSWORD}'):",
        ]
        lines += [
            f"    {email:24} {', '.join(roles):18} skills: {', '.join(skills) or '-'}"
            for email, _, roles, skills in DEMO_USERS
        ]
        lines += [
            "",
            f"  Tenant tree (same password; administration at {url}/admin):",
            f"    operator 'platform'    : {', '.join(f'{e} ({r[0]})' for e, _, r, _ in OPERATOR_USERS)}",
            f"    reseller 'acme-resale' : {', '.join(f'{e} ({r[0]})' for e, _, r, _ in RESELLER_USERS)}",
            "    customer 'demo'        : the logins above",
        ]
    lines.append("  The bot needs about a minute to load the first time (health shows rasa: ok).")
    return "\n".join(lines) + "\n"


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = Settings.from_env()
    quiet_loguru(args.log_level)
    starters: list[Starter] = []
    if args.demo:

        async def seed(ctx: AppContext) -> None:
            from hub.demo import seed_demo

            await seed_demo(ctx)

        starters.append(seed)
    from media.call import preload_speech

    starters.append(preload_speech)
    if settings.rasa_autostart and not args.no_rasa:
        from hub.rasa_supervisor import run_rasa

        starters.append(run_rasa)
    app = create_app(settings, starters)
    sys.stdout.write(banner(settings, args.demo))
    sys.stdout.flush()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ws_max_size=max(settings.max_ws_frame_bytes * 4, 65536),
    )


def run_admin(action: Callable[[AppContext], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with admin_context(Settings.from_env()) as ctx:
            return await action(ctx)

    return asyncio.run(main())


def user_create(args: argparse.Namespace) -> None:
    password = os.environ.get("HUB_USER_PASSWORD") or args.password or getpass.getpass("Password: ")

    async def action(ctx: AppContext) -> None:
        tenant = await get_tenant_by_slug(ctx, args.tenant)
        if tenant is None:
            raise TenancyError(f"no tenant {args.tenant!r} (create it with: hub tenant create)")
        user = await create_user(
            ctx,
            tenant["_id"],
            args.email,
            args.name or args.email,
            password,
            args.role,
            args.skill,
            update=args.update,
        )
        print(f"user {user['email']} ({', '.join(user['roles'])}) in tenant {tenant['slug']}")

    run_admin(action)


def tenant_create(args: argparse.Namespace) -> None:
    async def action(ctx: AppContext) -> None:
        parent = None
        if args.parent:
            parent = await get_tenant_by_slug(ctx, args.parent)
            if parent is None:
                raise TenancyError(f"no parent tenant {args.parent!r}")
        tenant = await create_tenant(ctx, args.slug, args.name or args.slug, level=args.level, parent=parent)
        where = f" below {parent['slug']}" if parent is not None else ""
        print(f"tenant {tenant['slug']} ({tenant['name']}), {tenant['level']}{where}")

    run_admin(action)


def demo_seed(args: argparse.Namespace) -> None:
    async def action(ctx: AppContext) -> None:
        from hub.demo import seed_demo

        tenant = await seed_demo(ctx)
        print(f"demo tenant {tenant['slug']} seeded")

    run_admin(action)


def rasa_train(args: argparse.Namespace) -> None:
    from bot.training import default_model_cache, ensure_model
    from hub.rasa_supervisor import RASA_BIN, RASA_PROJECT

    model = ensure_model(RASA_PROJECT, RASA_BIN, default_model_cache(), print)
    print(f"model: {model}")


def models_command(argv: list[str]) -> int:
    from media.models import models_cli

    settings = Settings.from_env()
    return models_cli(["--dir", str(settings.models_dir), *argv])


def campaign_import(args: argparse.Namespace) -> None:
    from routing.lists_cli import run_import

    sys.exit(run_admin(lambda ctx: run_import(ctx, args)))


def reports_rebuild(args: argparse.Namespace) -> None:
    """Re-fact a tenant's contacts, then recompute its report rollups (after a time zone
    change, or to repair them); the hub keeps them current by itself otherwise."""
    from reports.facts import FactUpdater, zone
    from reports.rollups import rebuild

    async def action(ctx: AppContext) -> None:
        tenant = await get_tenant_by_slug(ctx, args.tenant)
        if tenant is None:
            raise TenancyError(f"no tenant {args.tenant!r}")
        facts = await FactUpdater(ctx).backfill(tenant["_id"])
        rows = await rebuild(ctx, tenant["_id"], zone(tenant.get("timezone")))
        print(f"tenant {tenant['slug']}: {facts} fact rows rewritten, {rows} rollup rows rebuilt")

    run_admin(action)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hub", description="Contact hub")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the hub (and Rasa, and the embedded database)")
    s.add_argument("--demo", action="store_true", help="seed and serve the demo tenant")
    s.add_argument("--no-rasa", action="store_true", help="do not start Rasa (use RASA_URL)")
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=serve)
    user = sub.add_parser("user", help="staff accounts").add_subparsers(dest="user_command", required=True)
    uc = user.add_parser("create", help="create a user (password from HUB_USER_PASSWORD or a prompt)")
    uc.add_argument("--tenant", required=True)
    uc.add_argument("--email", required=True)
    uc.add_argument("--name")
    uc.add_argument("--password", help="prefer HUB_USER_PASSWORD: arguments show in process lists")
    uc.add_argument(
        "--role", action="append", required=True, choices=["admin", "supervisor", "agent", "editor"]
    )
    uc.add_argument("--skill", action="append", default=[])
    uc.add_argument("--update", action="store_true", help="update the user if it exists")
    uc.set_defaults(func=user_create)
    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(dest="tenant_command", required=True)
    tc = tenant.add_parser("create")
    tc.add_argument("slug")
    tc.add_argument("name", nargs="?")
    tc.add_argument("--level", choices=LEVELS, default="customer", help="operator, reseller or customer")
    tc.add_argument("--parent", metavar="SLUG", help="the tenant above it (whose admins manage it)")
    tc.set_defaults(func=tenant_create)
    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="demo_command", required=True)
    demo.add_parser("seed").set_defaults(func=demo_seed)
    models = sub.add_parser("models", help="speech models: list, pull NAME", add_help=False)
    models.add_argument("rest", nargs=argparse.REMAINDER)
    models.set_defaults(func=lambda a: sys.exit(models_command(a.rest)))
    rasa = sub.add_parser("rasa", help="the Rasa bot").add_subparsers(dest="rasa_command", required=True)
    rasa.add_parser("train", help="train the model if its training data changed").set_defaults(
        func=rasa_train
    )
    campaign = sub.add_parser("campaign", help="outbound campaigns").add_subparsers(
        dest="campaign_command", required=True
    )
    ci = campaign.add_parser("import", help="import a contact list (.txt, .csv, .xlsx) into a campaign")
    from routing.lists_cli import add_arguments as import_arguments

    import_arguments(ci)
    ci.set_defaults(func=campaign_import)
    reports = sub.add_parser("reports", help="historical reports").add_subparsers(
        dest="reports_command", required=True
    )
    rr = reports.add_parser("rebuild", help="re-fact a tenant's contacts and rebuild its report rollups")
    rr.add_argument("tenant", help="the tenant's slug")
    rr.set_defaults(func=reports_rebuild)
    return p


def quiet_loguru(level: str) -> None:
    """pipecat logs through loguru at DEBUG by default: follow our log level instead."""
    try:
        from loguru import logger
    except ImportError:
        return
    logger.remove()
    logger.add(sys.stderr, level=level.upper())


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logmask.install()  # personal data masked in admin commands' logs too (serve: in the lifespan)
    quiet_loguru("INFO")
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except TenancyError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
