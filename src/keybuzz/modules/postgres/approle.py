"""The application role and database, and the exporter's pg_monitor role, from credentials,
idempotent; pgvector when the image has it.

Passwords travel as SCRAM verifiers computed here, on psql's stdin: never in an argv, never in
the server's statement log as plain text.
"""

from __future__ import annotations

import asyncio

import psycopg

from keybuzz.contract import DeployContext
from keybuzz.modules.postgres import layout, scram
from keybuzz.modules.postgres.client import connect_once
from keybuzz.modules.postgres.sql import ident, literal, psql


async def ensure_roles(ctx: DeployContext, leader: str) -> None:
    """The application role and database, then the monitoring role: what exists read in one query."""
    creds = ctx.site.credentials[layout.MODULE]
    user, database, monitor = creds["POSTGRES_APP_USER"], creds["POSTGRES_APP_DATABASE"], creds["POSTGRES_MONITOR_USER"]
    rows = await psql(ctx, leader,
                      f"SELECT (SELECT count(*) FROM pg_roles WHERE rolname = {literal(user)}), "
                      f"(SELECT count(*) FROM pg_database WHERE datname = {literal(database)}), "
                      f"(SELECT count(*) FROM pg_roles WHERE rolname = {literal(monitor)});")
    role_exists, db_exists, monitor_exists = (int(v) for v in rows[0].split("|"))
    await _app_role(ctx, leader, bool(role_exists), bool(db_exists))
    if not monitor_exists:
        await _monitor_role(ctx, leader)


async def _app_role(ctx: DeployContext, leader: str, role_exists: bool, db_exists: bool) -> None:
    creds = ctx.site.credentials[layout.MODULE]
    user, password, database = (creds["POSTGRES_APP_USER"], creds["POSTGRES_APP_PASSWORD"],
                                creds["POSTGRES_APP_DATABASE"])
    statements = []
    if not role_exists:
        statements.append(f"CREATE ROLE {ident(user)} LOGIN PASSWORD {literal(scram.verifier(password))};")
    elif not await app_login_ok(ctx, leader):
        statements.append(f"ALTER ROLE {ident(user)} PASSWORD {literal(scram.verifier(password))};")
    if not db_exists:
        statements += [f"CREATE DATABASE {ident(database)} OWNER {ident(user)};",
                       f"REVOKE ALL ON DATABASE {ident(database)} FROM PUBLIC;",
                       f"GRANT CONNECT, TEMPORARY ON DATABASE {ident(database)} TO {ident(user)};"]
    if statements:
        ctx.changed(leader, f"application role/database: {len(statements)} statement(s)")
        if not ctx.dry_run:
            await psql(ctx, leader, "\n".join(statements) + "\n")
    if not ctx.dry_run:
        await vector_extension(ctx, leader, database)


async def _monitor_role(ctx: DeployContext, leader: str) -> None:
    """The metrics exporter's login: member of pg_monitor (statistics, no table data), created once."""
    creds = ctx.site.credentials[layout.MODULE]
    user, password = creds["POSTGRES_MONITOR_USER"], creds["POSTGRES_MONITOR_PASSWORD"]
    ctx.changed(leader, f"monitoring role {user} (pg_monitor)")
    if not ctx.dry_run:
        await psql(ctx, leader, f"CREATE ROLE {ident(user)} LOGIN PASSWORD {literal(scram.verifier(password))} "
                                "IN ROLE pg_monitor;\n")


async def vector_extension(ctx: DeployContext, leader: str, database: str) -> None:
    rows = await psql(ctx, leader, "SELECT (SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'), "
                      "(SELECT count(*) FROM pg_extension WHERE extname = 'vector');", database=database)
    available, installed = (int(v) for v in rows[0].split("|"))
    if not available:
        ctx.note("pgvector is not available in this image: CREATE EXTENSION vector skipped "
                 "(reported by `keybuzz validate postgres`)")
    elif not installed:
        await psql(ctx, leader, "CREATE EXTENSION IF NOT EXISTS vector;", database=database)
        ctx.changed(leader, f"CREATE EXTENSION vector in {database}")


async def app_login_ok(ctx: DeployContext, leader: str) -> bool:
    """False only when the server refuses the stored password (then it is set again)."""
    try:
        await asyncio.to_thread(connect_once, ctx.site, str(ctx.site.server(leader).private_ip), layout.PG_PORT)
    except psycopg.OperationalError as exc:
        return "password authentication failed" not in str(exc)
    return True
