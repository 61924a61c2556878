"""boto3 clients with their own timeouts and no retries, as the admin or the application.

botocore retries up to 3 times by default (with backoff): a failure would show as seconds of latency
instead of an error, and the drills would measure the retries. Every client here fails fast. Keys come
from the site and go straight to botocore, never into a log line or an exception text. No proxy:
without `proxies` botocore sends every request (the objects, and a signature a proxy may replay for
minutes) to whatever `HTTP_PROXY` / `HTTPS_PROXY` names; with `proxies={}` it reads no proxy from
the environment and goes straight to the endpoint, as keybuzz's other HTTP calls do (jsonhttp).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from keybuzz.site import Site

_SESSION = boto3.session.Session()
_LOCK = threading.Lock()  # a boto3 session is not thread-safe; its clients are
S3Client = Any  # boto3's client type is generated at run time


def client(url: str, access_key: str, secret_key: str, *, timeout: float = 2.0) -> S3Client:
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1},
                    s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                    response_checksum_validation="when_required", max_pool_connections=4, proxies={})
    with _LOCK:
        return _SESSION.client("s3", endpoint_url=url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                               region_name="us-east-1", config=config)


def admin(site: Site, url: str, *, timeout: float = 2.0) -> S3Client:
    creds = site.credentials["minio"]
    return client(url, creds["MINIO_ROOT_USER"], creds["MINIO_ROOT_PASSWORD"], timeout=timeout)


def application(site: Site, url: str, *, timeout: float = 2.0) -> S3Client:
    creds = site.credentials["minio"]
    return client(url, creds["MINIO_APP_USER"], creds["MINIO_APP_PASSWORD"], timeout=timeout)


def error_code(exc: BaseException) -> str:
    """S3's error code (AccessDenied, SignatureDoesNotMatch, ...) or the exception's type."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code") or exc.response["ResponseMetadata"]["HTTPStatusCode"])
    return type(exc).__name__


def put(conn: S3Client, bucket: str, key: str, body: bytes) -> str:
    """PUT `body`; returns its sha256, the digest readers compare with."""
    conn.put_object(Bucket=bucket, Key=key, Body=body)
    return hashlib.sha256(body).hexdigest()


def get_digest(conn: S3Client, bucket: str, key: str) -> str:
    return hashlib.sha256(conn.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def bucket_names(conn: S3Client) -> list[str]:
    return sorted(b["Name"] for b in conn.list_buckets().get("Buckets", []))


def keys_under(conn: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in conn.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def delete_keys(conn: S3Client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        conn.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                   "Quiet": True})
