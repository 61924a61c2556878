"""Basic auth of Prometheus' and Alertmanager's web APIs (`--web.config.file`, the exporter toolkit's
format): the bcrypt hash of the login's password, and the client side Prometheus uses to reach
itself and the Alertmanagers (`password_file`: the password stays out of prometheus.yml). Pure.

The hash must be the same at every render, or each re-run would rewrite the file and restart both
services. Its salt is therefore derived, HMAC-SHA256 keyed with MONITORING_WEB_SALT_KEY (a generated
secret of credentials/monitoring.env that never leaves the control machine) over the login: a new
password gets a new salt, two sites never share one, and the salt, public in the hash, reveals nothing
of the password (a salt derived from the password alone would be an unsalted fast hash of it)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from functools import lru_cache
from typing import Any

import bcrypt

from keybuzz import values
from keybuzz.secrets import derived_secret

# Go's bcrypt default. The password is 32 random characters: its length, not the cost, is what protects it.
COST = 10
_STANDARD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"  # bcrypt's base64 alphabet
# bcrypt reads at most 72 bytes of a password (the bcrypt package refuses more).
PASSWORD = dataclasses.replace(
    values.PASSWORD, max_length=72,
    hint=f"8-72 ASCII letters, digits and {' '.join(values.PASSWORD_SYMBOLS)} (72 is bcrypt's limit); delete the "
         "line and run `keybuzz init SITE --credentials` for a generated one")


def _salt(user: str, password: str, key: str) -> bytes:
    """A bcrypt salt (`$2b$10$` and 16 bytes in bcrypt's base64) derived from the login and the site's key."""
    raw = hmac.new(key.encode(), f"{user}:{password}".encode(), hashlib.sha256).digest()[:16]
    encoded = base64.b64encode(raw).decode().rstrip("=").translate(str.maketrans(_STANDARD, _BCRYPT))
    return f"$2b${COST:02d}${encoded}".encode()


@lru_cache(maxsize=16)
def password_hash(user: str, password: str, key: str) -> str:
    """The bcrypt hash of `password`, the same at every call (cached: each costs tens of milliseconds)."""
    return derived_secret(bcrypt.hashpw(password.encode(), _salt(user, password, key)).decode())


def web_config(user: str, password: str, key: str) -> dict[str, Any]:
    """The web config file of Prometheus and Alertmanager: one user, every endpoint behind it."""
    return {"basic_auth_users": {user: password_hash(user, password, key)}}


def client_auth(user: str, password_file: str) -> dict[str, Any]:
    """prometheus.yml's `basic_auth` for a scrape or an Alertmanager: the password read from a file."""
    return {"basic_auth": {"username": user, "password_file": password_file}}
