"""Service configuration: command-line options over `DEVREG_*` environment variables over
defaults. The serve command writes the final values back to the environment so that
worker processes (which start from an import string) read the same configuration."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import msgspec

from devreg.changelog.service import DEFAULT_RETENTION_DAYS
from devreg.core.quotas import (
    DEFAULT_MAX_DEVICES,
    DEFAULT_MAX_DIVISIONS,
    DEFAULT_MAX_PROFILES,
    DEVICES_SETTING,
    DIVISIONS_SETTING,
    PROFILES_SETTING,
    Quotas,
)
from devreg.est.enrollment import DEFAULT_MAX_OUTSTANDING_SECRETS
from devreg.pki.admission import (
    DEFAULT_ISSUANCE_BURST,
    DEFAULT_ISSUANCE_PER_HOUR,
    DEFAULT_MAX_ACTIVE_CERTIFICATES,
)

DEFAULT_DATA_DIR = "./devreg-data"


class Config(msgspec.Struct, frozen=True):
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    rate_limit: float = 100.0
    rate_burst: int = 200
    access_log: bool = True
    mtls_port: int = 8443  # the client-certificate listener; 0: none
    est_port: int = 8444  # the EST (RFC 7030) listener: TLS, client certificate optional
    tls_names: tuple[str, ...] = ()  # extra names in the server certificate
    client_ca_files: tuple[Path, ...] = ()  # CAs trusted for client certificates besides ours
    trusted_proxies: tuple[str, ...] = ()  # IPs or CIDRs allowed to forward client certificates
    public_url: str | None = None  # how clients reach the plain listener (CRL links)
    cert_lifetime_days: int = 90  # lifetime of the device certificates devreg issues
    # Abuse limits (environment only; see web/protocol.py): seconds for a request head, for
    # its body, for a TLS handshake, for an answer to drain and for a graceful shutdown;
    # connections per process and per client address (0: none), bytes of unread answers.
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    tls_handshake_timeout: float = 10.0
    drain_timeout: float = 30.0
    shutdown_timeout: float = 10.0
    max_connections: int = 2048
    max_connections_per_address: int = 256
    max_output_buffer: int = 256 * 1024 * 1024
    # Seconds between the access log's summaries of an address's 429s (server/access_log.py;
    # environment only).
    rate_limit_log_interval: float = 10.0
    # "full": a write answered 2xx is on disk (fsync'd) first; "normal": it survives a
    # crash of devreg, not of the machine (README, Deployment: durability).
    durability: str = "full"
    # With Redis shared limits, when Redis is down: "local" limits per process, "refuse"
    # answers 503 until it is back.
    redis_down: str = "local"
    # Issuance limits (environment only; see pki/admission.py): unrevoked, unexpired
    # certificates a device may hold, and its issuance bucket (certificates per hour, 0 =
    # no bucket, and burst); outstanding enrollment secrets per account.
    max_active_certificates: int = DEFAULT_MAX_ACTIVE_CERTIFICATES
    issuance_rate: float = DEFAULT_ISSUANCE_PER_HOUR
    issuance_burst: int = DEFAULT_ISSUANCE_BURST
    max_enrollment_secrets: int = DEFAULT_MAX_OUTSTANDING_SECRETS
    # Change log entries older than this are pruned (0: kept for ever).
    audit_retention_days: int = DEFAULT_RETENTION_DAYS
    # Per-account quotas (environment only; core/quotas.py).
    max_devices: int = DEFAULT_MAX_DEVICES
    max_profiles: int = DEFAULT_MAX_PROFILES
    max_divisions: int = DEFAULT_MAX_DIVISIONS

    @property
    def quotas(self) -> Quotas:
        return Quotas(
            devices=self.max_devices, profiles=self.max_profiles, divisions=self.max_divisions
        )

    @property
    def durable(self) -> bool:
        return self.durability == "full"

    @property
    def base_url(self) -> str:
        """The plain listener's public address, as named in issued certificates."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def database_label(self) -> str:
        """The database named without its password, for logs."""
        if not self.database_url:
            return f"sqlite {self.data_dir / 'devreg.sqlite3'}"
        scheme, _, rest = self.database_url.partition("://")
        # No user, password or query string (libpq also takes ?password=...).
        host = rest.split("?", 1)[0].rpartition("@")[2]
        return f"{scheme}://{host}"


ENV = {
    "data_dir": "DEVREG_DATA_DIR",
    "database_url": "DEVREG_DATABASE_URL",
    "redis_url": "DEVREG_REDIS_URL",
    "host": "DEVREG_HOST",
    "port": "DEVREG_PORT",
    "workers": "DEVREG_WORKERS",
    "rate_limit": "DEVREG_RATE_LIMIT",
    "rate_burst": "DEVREG_RATE_BURST",
    "access_log": "DEVREG_ACCESS_LOG",
    "mtls_port": "DEVREG_MTLS_PORT",
    "est_port": "DEVREG_EST_PORT",
    "tls_names": "DEVREG_TLS_NAMES",
    "client_ca_files": "DEVREG_CLIENT_CA_FILES",
    "trusted_proxies": "DEVREG_TRUSTED_PROXIES",
    "public_url": "DEVREG_PUBLIC_URL",
    "cert_lifetime_days": "DEVREG_CERT_LIFETIME_DAYS",
    "head_timeout": "DEVREG_HEAD_TIMEOUT",
    "body_timeout": "DEVREG_BODY_TIMEOUT",
    "tls_handshake_timeout": "DEVREG_TLS_HANDSHAKE_TIMEOUT",
    "drain_timeout": "DEVREG_DRAIN_TIMEOUT",
    "shutdown_timeout": "DEVREG_SHUTDOWN_TIMEOUT",
    "max_connections": "DEVREG_MAX_CONNECTIONS",
    "max_connections_per_address": "DEVREG_MAX_CONNECTIONS_PER_ADDRESS",
    "max_output_buffer": "DEVREG_MAX_OUTPUT_BUFFER",
    "rate_limit_log_interval": "DEVREG_RATE_LIMIT_LOG_INTERVAL",
    "durability": "DEVREG_DURABILITY",
    "redis_down": "DEVREG_REDIS_DOWN",
    "max_active_certificates": "DEVREG_MAX_ACTIVE_CERTIFICATES",
    "issuance_rate": "DEVREG_ISSUANCE_RATE",
    "issuance_burst": "DEVREG_ISSUANCE_BURST",
    "max_enrollment_secrets": "DEVREG_MAX_ENROLLMENT_SECRETS",
    "audit_retention_days": "DEVREG_AUDIT_RETENTION_DAYS",
    "max_devices": DEVICES_SETTING,
    "max_profiles": PROFILES_SETTING,
    "max_divisions": DIVISIONS_SETTING,
}
DURABILITY = ("full", "normal")
REDIS_DOWN = ("local", "refuse")
LISTS = ("tls_names", "client_ca_files", "trusted_proxies")  # comma-separated in the environment
_DNS_NAME = re.compile(r"^(\*\.)?(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def load_config(
    overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] = os.environ
) -> Config:
    values: dict[str, object] = {}
    for field, variable in ENV.items():
        text = environ.get(variable)
        if text not in (None, ""):
            values[field] = text
    for field, value in (overrides or {}).items():
        if value is not None:
            values[field] = value
    if "access_log" in values and isinstance(values["access_log"], str):
        values["access_log"] = _parse_bool(values["access_log"])
    for field in LISTS:
        if isinstance(values.get(field), str):
            values[field] = _split(str(values[field]))
    try:
        config = msgspec.convert(values, Config, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad configuration: {exc}") from None
    if config.workers < 1:
        raise ValueError("workers must be at least 1")
    if not 0 < config.port < 65536:
        raise ValueError("port must be between 1 and 65535")
    if not 0 <= config.mtls_port < 65536:
        raise ValueError("mtls-port must be between 0 (off) and 65535")
    if config.mtls_port == config.port:
        raise ValueError(f"mtls-port and port are both {config.port}")
    if not 0 <= config.est_port < 65536:
        raise ValueError("est-port must be between 0 (off) and 65535")
    if config.est_port and config.est_port in (config.port, config.mtls_port):
        raise ValueError(f"est-port {config.est_port} is already used by another listener")
    if config.redis_down not in REDIS_DOWN:
        raise ValueError(f"redis-down must be one of {', '.join(REDIS_DOWN)}")
    if config.durability not in DURABILITY:
        raise ValueError(f"durability must be one of {', '.join(DURABILITY)}")
    if not 1 <= config.cert_lifetime_days <= 3650:
        raise ValueError("cert-lifetime-days must be between 1 and 3650")
    for name in (
        "head_timeout", "body_timeout", "tls_handshake_timeout", "drain_timeout",
        "shutdown_timeout",
    ):  # fmt: skip
        if not 0 < getattr(config, name) <= 3600:
            raise ValueError(f"{ENV[name]} must be between 0 and 3600 seconds")
    if not 0 < config.rate_limit_log_interval <= 3600:
        raise ValueError(f"{ENV['rate_limit_log_interval']} must be between 0 and 3600 seconds")
    for name in ("max_devices", "max_profiles", "max_divisions"):
        if getattr(config, name) < 1:
            raise ValueError(f"{ENV[name]} must be at least 1")
    if config.max_connections < 1:
        raise ValueError("DEVREG_MAX_CONNECTIONS must be at least 1")
    if config.max_connections_per_address < 0:
        raise ValueError("DEVREG_MAX_CONNECTIONS_PER_ADDRESS must be 0 (no limit) or more")
    if config.max_output_buffer < 64 * 1024:
        raise ValueError("DEVREG_MAX_OUTPUT_BUFFER must be at least 65536 bytes")
    for name in ("max_active_certificates", "issuance_burst", "max_enrollment_secrets"):
        if getattr(config, name) < 1:
            raise ValueError(f"{ENV[name]} must be at least 1")
    if not 0 <= config.audit_retention_days <= 36500:
        raise ValueError("audit-retention-days must be between 0 (keep for ever) and 36500")
    if config.issuance_rate < 0:
        raise ValueError("DEVREG_ISSUANCE_RATE must be 0 (no bucket) or more")
    if config.public_url and not config.public_url.startswith(("http://", "https://")):
        raise ValueError("public-url must start with http:// or https://")
    for name in config.tls_names:
        _check_tls_name(name)
    for proxy in config.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f"trusted-proxy {proxy!r} is not an IP address or CIDR") from None
    return config


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _check_tls_name(name: str) -> None:
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    if len(name) > 253 or not _DNS_NAME.match(name):
        raise ValueError(f"tls-name {name!r} is neither a DNS name nor an IP address")


def ensure_data_dir(config: Config) -> None:
    """The data directory holds secrets: created so that only its owner may enter it."""
    Path(config.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)


def _dec_hook(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


def export_config(config: Config, environ: MutableMapping[str, str]) -> None:
    for field, variable in ENV.items():
        value = getattr(config, field)
        if value is None:
            environ.pop(variable, None)
        elif isinstance(value, bool):
            environ[variable] = "1" if value else "0"
        elif isinstance(value, tuple):
            environ[variable] = ",".join(str(item) for item in value)
        else:
            environ[variable] = str(value)
