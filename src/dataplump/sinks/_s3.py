"""S3 for the lake sinks: where a table lives, the options delta-rs and pyarrow need, and
a small S3 client for the few calls neither library offers (a conditional PUT).

Private: :mod:`dataplump.sinks.delta`, :mod:`dataplump.sinks.parquet` and
:mod:`dataplump.sinks.lake` use it.

The client signs requests with AWS Signature Version 4 and sends them with ``httpx``;
it is used to commit the Parquet manifest with ``If-Match``/``If-None-Match`` (a
compare-and-swap that S3 has offered since 2024) and to check that a bucket is reachable
before anything is written, so a wrong bucket or wrong keys give one clear line.

Credentials come from the sink's ``s3:`` section, else from the standard environment
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import httpx

from dataplump.sinks.base import SinkError, TransientSinkError

if TYPE_CHECKING:
    from pyarrow.fs import S3FileSystem
    from pydantic import SecretStr

    from dataplump.config.models import S3Config

DEFAULT_REGION = "us-east-1"
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_CODE = re.compile(r"<Code>([^<]+)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")

# S3 error codes that no retry fixes: the config is wrong.
_TERMINAL_CODES = {
    "NoSuchBucket": "bucket `{bucket}` does not exist{at}; create it or fix the sink `path`",
    "InvalidAccessKeyId": "S3 does not know the access key id{at}; fix `s3.access_key_id`"
    " (or AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "S3 refused the secret access key{at}; fix `s3.secret_access_key`"
    " (or AWS_SECRET_ACCESS_KEY)",
    "AccessDenied": "access to bucket `{bucket}` denied{at}; give the keys s3:GetObject,"
    " s3:PutObject, s3:DeleteObject and s3:ListBucket on it",
    "InvalidBucketName": "`{bucket}` is not a valid bucket name; fix the sink `path`",
    "AuthorizationHeaderMalformed": "S3 refused the request signature{at} (wrong `s3.region`?)",
    "PermanentRedirect": "bucket `{bucket}` is in another region; set `s3.region`",
    "ExpiredToken": "the S3 session token expired{at}; renew `s3.session_token`",
}


@dataclass(frozen=True)
class S3Location:
    """An ``s3://bucket/key`` place and how to reach it."""

    bucket: str
    key: str
    """Key prefix without leading or trailing `/` (`lake/orders`), may be empty."""
    endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None
    session_token: str | None
    allow_http: bool

    @classmethod
    def of(cls, url: str, config: S3Config | None) -> S3Location:
        """The location of ``url`` (``s3://bucket/prefix``) with ``config`` or the env."""
        parts = urlsplit(url)
        env = os.environ.get
        access = config.access_key_id if config else None
        secret = _secret(config.secret_access_key if config else None)
        token = _secret(config.session_token if config else None)
        if access is None:
            access, secret = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")
            token = token or env("AWS_SESSION_TOKEN")
        endpoint = (config.endpoint_url if config else None) or env("AWS_ENDPOINT_URL")
        allow_http = bool(config and config.allow_http) or (
            env("AWS_ALLOW_HTTP", "").lower() == "true"
        )
        region = (config.region if config else None) or env("AWS_REGION") or DEFAULT_REGION
        return cls(
            bucket=parts.netloc,
            key=parts.path.strip("/"),
            endpoint_url=endpoint.rstrip("/") if endpoint else None,
            region=region,
            access_key_id=access,
            secret_access_key=secret,
            session_token=token,
            allow_http=allow_http,
        )

    def child(self, name: str) -> S3Location:
        """The location of ``<key>/<name>``."""
        key = f"{self.key}/{name}" if self.key else name
        return S3Location(**{**self.__dict__, "key": key.strip("/")})

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    @property
    def where(self) -> str:
        """``s3://bucket/key`` and the endpoint if not AWS (for messages)."""
        return self.url + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def storage_options(self) -> dict[str, str]:
        """Options for delta-rs (``storage_options``). Safe concurrent commits need nothing
        extra: deltalake 1.6.6 writes each ``_delta_log`` entry with ``If-None-Match: *``."""
        options = {"AWS_REGION": self.region}
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.allow_http:
            options["AWS_ALLOW_HTTP"] = "true"
        if self.access_key_id and self.secret_access_key:
            options["AWS_ACCESS_KEY_ID"] = self.access_key_id
            options["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        if self.session_token:
            options["AWS_SESSION_TOKEN"] = self.session_token
        return options

    def filesystem(self) -> S3FileSystem:
        """A pyarrow S3 filesystem for this location's bucket."""
        from pyarrow.fs import S3FileSystem

        endpoint = urlsplit(self.endpoint_url) if self.endpoint_url else None
        return S3FileSystem(
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
            session_token=self.session_token,
            region=self.region,
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https",
            allow_bucket_creation=False,
            allow_bucket_deletion=False,
        )

    @property
    def fs_path(self) -> str:
        """``bucket/key``: the path pyarrow's S3 filesystem takes."""
        return f"{self.bucket}/{self.key}".rstrip("/")


@dataclass(frozen=True)
class S3Object:
    """A GET's body and ETag."""

    body: bytes
    etag: str


class S3Client:
    """The few S3 calls the lake needs beyond delta-rs and pyarrow, signed with SigV4."""

    def __init__(self, location: S3Location) -> None:
        if not (location.access_key_id and location.secret_access_key):
            raise SinkError(
                f"no S3 credentials for {location.url}: set `s3.access_key_id` and"
                " `s3.secret_access_key` on the sink, or AWS_ACCESS_KEY_ID and"
                " AWS_SECRET_ACCESS_KEY"
            )
        self.location = location
        self._http = httpx.Client(timeout=_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def check_bucket(self) -> None:
        """List at most one key under the location: raises a one-line error if the bucket
        does not exist, the keys are refused or the endpoint cannot be reached."""
        prefix = f"{self.location.key}/" if self.location.key else ""
        self._send("GET", "", params={"list-type": "2", "max-keys": "1", "prefix": prefix})

    def get(self, key: str) -> S3Object | None:
        """The object at ``key`` (relative to the bucket), None if there is none."""
        response = self._send("GET", key, missing_ok=True)
        if response is None:
            return None
        return S3Object(response.content, response.headers.get("etag", ""))

    def put_if(self, key: str, body: bytes, etag: str | None) -> str | None:
        """PUT ``body`` at ``key`` only if the object still has ``etag`` (``If-Match``), or
        if there is none when ``etag`` is None (``If-None-Match: *``). Returns the new
        ETag, or None if the condition failed (someone else wrote it first)."""
        headers = {"If-Match": etag} if etag else {"If-None-Match": "*"}
        headers["Content-Type"] = "application/json"
        response = self._send("PUT", key, body=body, headers=headers, conflict_ok=True)
        return None if response is None else response.headers.get("etag", "")

    # -- plumbing -------------------------------------------------------------------------

    def _url(self, key: str) -> str:
        where = self.location
        path = quote(f"/{where.bucket}/{key}" if key else f"/{where.bucket}", safe="/-_.~")
        if where.endpoint_url:
            return where.endpoint_url + path
        return f"https://s3.{where.region}.amazonaws.com{path}"

    def _send(
        self,
        method: str,
        key: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
        conflict_ok: bool = False,
    ) -> httpx.Response | None:
        url = self._url(key)
        signed = sign(
            method,
            url,
            params or {},
            {**(headers or {})},
            body,
            self.location,
            dt.datetime.now(dt.UTC),
        )
        try:
            query = canonical_query(params or {})
            target = f"{url}?{query}" if query else url
            response = self._http.request(method, target, content=body, headers=signed)
        except httpx.HTTPError as error:
            raise TransientSinkError(
                f"cannot reach S3 {self.location.where}: {error}; nothing was committed, retry"
            ) from error
        if response.status_code < 300:
            return response
        code = _first(_CODE, response.text)
        if response.status_code == 404 and missing_ok and code in (None, "NoSuchKey"):
            return None
        if response.status_code in (409, 412) and conflict_ok:
            return None
        raise s3_error(response.status_code, code, _first(_MESSAGE, response.text), self.location)


def s3_error(
    status: int, code: str | None, message: str | None, where: S3Location
) -> SinkError | TransientSinkError:
    """One line for an S3 error response: terminal when the config is wrong."""
    at = f" ({where.endpoint_url})" if where.endpoint_url else ""
    template = _TERMINAL_CODES.get(code or "")
    if template is None and status in (401, 403):
        template = _TERMINAL_CODES["AccessDenied"]
    if template is not None:
        return SinkError(f"S3 {where.url}: " + template.format(bucket=where.bucket, at=at))
    detail = f"{code}: {message}" if code else f"HTTP {status}"
    return TransientSinkError(f"S3 {where.where}: {detail}; nothing was committed, retry")


def classify_library_error(text: str, where: S3Location) -> SinkError | None:
    """A terminal :class:`SinkError` if a delta-rs or pyarrow error text names a config
    problem (missing bucket, refused keys), else None."""
    at = f" ({where.endpoint_url})" if where.endpoint_url else ""
    for code, template in _TERMINAL_CODES.items():
        if code in text:
            return SinkError(f"S3 {where.url}: " + template.format(bucket=where.bucket, at=at))
    if "403 Forbidden" in text or "status: 403" in text:
        message = _TERMINAL_CODES["AccessDenied"].format(bucket=where.bucket, at=at)
        return SinkError(f"S3 {where.url}: {message}")
    return None


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def canonical_query(params: dict[str, str]) -> str:
    """The query string as SigV4 signs it (and as it is sent): sorted, RFC 3986 encoded."""
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )


def sign(
    method: str,
    url: str,
    params: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    where: S3Location,
    now: dt.datetime,
) -> dict[str, str]:
    """``headers`` plus the AWS Signature Version 4 headers of the request."""
    if not (where.access_key_id and where.secret_access_key):
        raise SinkError(f"no S3 credentials to sign a request to {where.url}")
    parts = urlsplit(url)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    payload = hashlib.sha256(body).hexdigest()
    headers = {
        **headers,
        "host": parts.netloc,
        "x-amz-content-sha256": payload,
        "x-amz-date": stamp,
    }
    if where.session_token:
        headers["x-amz-security-token"] = where.session_token
    signed_names = sorted(name.lower() for name in headers)
    lowered = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed_names)
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            canonical_query(params),
            canonical_headers,
            ";".join(signed_names),
            payload,
        ]
    )
    scope = f"{day}/{where.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{where.secret_access_key}".encode()
    for part in (day, where.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={where.access_key_id}/{scope},"
        f" SignedHeaders={';'.join(signed_names)}, Signature={signature}"
    )
    return headers
