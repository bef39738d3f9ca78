"""The one settings object of procbots.

Sources, highest priority first: keyword arguments, ``PROCBOTS_*`` environment
variables (nested with ``__``, e.g. ``PROCBOTS_PORTAL__URL``), a secrets file
(``PROCBOTS_SECRETS_FILE``, mode 0600), an optional ``--config FILE`` TOML,
and the packaged defaults in ``config/procbots.toml``.

Example:
    >>> from config.settings import get_settings
    >>> settings = get_settings()
    >>> settings.portal.url
    'http://127.0.0.1:8765'
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as PydanticSettingsError

__all__ = [
    "AlertSettings",
    "AuditSettings",
    "BrowserSettings",
    "ConsoleSettings",
    "ConsoleUser",
    "LedgerSettings",
    "LimitSettings",
    "MatchingPolicySettings",
    "PathSettings",
    "PortalSettings",
    "RetrySettings",
    "Settings",
    "SettingsError",
    "get_settings",
    "is_secret_setting",
    "portal_password",
]

DEFAULTS_TOML = Path(__file__).with_name("procbots.toml")
SECRETS_FILE_ENV = "PROCBOTS_SECRETS_FILE"
CONFIG_FILE_ENV = "PROCBOTS_CONFIG"


class SettingsError(Exception):
    """A settings file that cannot be used (missing, unreadable, too open, bad TOML),
    or a setting procbots does not know (a misspelt key).

    ``procbots`` reports it as one line and exit code 2, like a bad value.
    """


class _Section(BaseModel):
    """A settings section: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PortalSettings(_Section):
    """The e-procurement portal the bots drive (the sandbox by default)."""

    url: str = Field("http://127.0.0.1:8765", description="Base URL of the portal")
    username: str = Field("buyer1", description="Portal user the bots log in as")
    password: SecretStr = Field(SecretStr(""), description="Portal password (secret)")
    totp_secret: SecretStr | None = Field(None, description="Base32 TOTP secret when the portal asks for 2FA")
    max_sessions: int = Field(4, ge=1, le=64, description="Most browser sessions at once against this portal")
    secret_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the password, read when no password is set"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")


class PathSettings(_Section):
    """Data folders. Relative paths are under ``root``."""

    root: Path = Field(Path("var"), description="Folder that holds all run data")
    inbox: Path = Path("inbox")
    outbox: Path = Path("outbox")
    quarantine: Path = Path("quarantine")
    evidence: Path = Path("evidence")
    audit: Path = Path("audit")

    def resolve(self, name: Literal["inbox", "outbox", "quarantine", "evidence", "audit"]) -> Path:
        """Absolute-or-root-relative path of one data folder."""
        value: Path = getattr(self, name)
        return value if value.is_absolute() else self.root / value


class BrowserSettings(_Section):
    """How Chromium is launched (see ``connectors.portal.browser``)."""

    executable: Path | None = Field(
        None, description="Chromium binary; empty = Playwright's, else the system's"
    )
    headless: bool = True
    contexts: int = Field(2, ge=1, le=32, description="Parallel browser contexts per bot run")
    timeout_ms: int = Field(15_000, ge=100, description="Default wait for an element or action")
    navigation_timeout_ms: int = Field(30_000, ge=100)
    trace: bool = Field(True, description="Record a Playwright trace kept as evidence on failure")


class LedgerSettings(_Section):
    """The work-item ledger (SQLAlchemy URL)."""

    url: str = Field("", description="SQLAlchemy URL; empty = SQLite file in the data root")
    lease_s: float = Field(120.0, gt=0, description="Lease length before a claimed item may be taken back")
    heartbeat_s: float = Field(15.0, gt=0)
    max_lease_expiries: int = Field(3, ge=1, description="Expiries before an item goes to needs_review")

    @model_validator(mode="after")
    def _heartbeat_well_inside_the_lease(self) -> LedgerSettings:
        # Two missed heartbeats must still leave the lease alive; otherwise a healthy worker
        # loses its item to another one while it works, and both act on the portal.
        if self.heartbeat_s * 3 >= self.lease_s:
            raise ValueError(
                f"ledger.heartbeat_s ({self.heartbeat_s:g}) must be less than a third of "
                f"ledger.lease_s ({self.lease_s:g})"
            )
        return self


class RetrySettings(_Section):
    """Retries of system exceptions (tenacity: exponential backoff with jitter)."""

    max_attempts: int = Field(4, ge=1, le=50)
    initial_s: float = Field(0.5, ge=0)
    max_s: float = Field(10.0, ge=0)
    jitter_s: float = Field(0.5, ge=0)

    @model_validator(mode="after")
    def _backoff_grows_to_its_cap(self) -> RetrySettings:
        if self.initial_s > self.max_s:
            raise ValueError(
                f"retry.initial_s ({self.initial_s:g}) must not be more than retry.max_s ({self.max_s:g})"
            )
        return self


class AuditSettings(_Section):
    """The hash-chained audit log."""

    file: Path = Field(Path("audit.jsonl"), description="Relative to the audit folder unless absolute")
    hmac_key: SecretStr | None = Field(None, description="Optional HMAC-SHA256 key for the chain")


class AlertSettings(_Section):
    """Where run-failure and business-exception alerts go."""

    webhook_url: SecretStr | None = None
    kind: Literal["teams", "generic"] = "generic"
    on_business_exceptions: bool = True


class ConsoleUser(_Section):
    """A person who may sign in to the console (``procbots console hash-password`` makes the hash)."""

    name: str = Field(description="Full name, shown in the console and written to the audit log")
    password_hash: SecretStr = Field(description="scrypt hash from `procbots console hash-password`")


class ConsoleSettings(_Section):
    """The work-queue console for people (``procbots console``)."""

    host: str = Field("127.0.0.1", description="Address the console listens on (loopback by default)")
    port: int = Field(8800, ge=1, le=65535)
    public_url: str | None = Field(
        None, description="Address people open (e.g. https://procbots.trust.nhs.uk); artifact links use it"
    )
    session_ttl_s: int = Field(8 * 3600, ge=60, description="Sign-in lasts this long")
    users: dict[str, ConsoleUser] = Field(default_factory=dict, description="Sign-in name -> person")

    @field_validator("public_url")
    @classmethod
    def _http_public_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")


class MatchingPolicySettings(_Section):
    """Invoice matching policy; ``suppliers`` maps a VAT number to overrides."""

    price_tolerance_pct: Decimal = Decimal("2")
    price_tolerance_abs: Decimal = Decimal("5.00")
    qty_tolerance_pct: Decimal = Decimal("0")
    header_tolerance: Decimal = Decimal("1.00")
    vat_tolerance: Decimal = Decimal("0.05")
    vat_rates: list[Decimal] = Field(default_factory=lambda: [Decimal("20"), Decimal("5"), Decimal("0")])
    duplicate_days: int = 3
    similar_numbers: bool = Field(True, description="Hold invoices whose numbers are one edit apart")
    suppliers: dict[str, dict[str, Any]] = Field(default_factory=dict)


class LimitSettings(_Section):
    """How large an input file may be, checked before it is loaded (``connectors.limits``)."""

    work_item_rows: int = Field(
        100_000,
        ge=1,
        description="Most data rows in a bot's work-item input (requisition sheet, contract "
        "metadata, scan file); a larger file is refused before it is loaded",
    )
    bulk_rows: int = Field(
        2_000_000,
        ge=1,
        description="Most data rows in one bulk matching input (orders, receipts, invoice rows)",
    )


class Settings(BaseSettings):
    """All procbots settings."""

    model_config = SettingsConfigDict(
        env_prefix="PROCBOTS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    portal: PortalSettings = PortalSettings()
    paths: PathSettings = PathSettings()
    browser: BrowserSettings = BrowserSettings()
    ledger: LedgerSettings = LedgerSettings()
    retry: RetrySettings = RetrySettings()
    audit: AuditSettings = AuditSettings()
    alerts: AlertSettings = AlertSettings()
    matching: MatchingPolicySettings = MatchingPolicySettings()
    limits: LimitSettings = LimitSettings()
    console: ConsoleSettings = ConsoleSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def __init__(self, **values: Any) -> None:
        """Reads every source; a misspelt key becomes a :class:`SettingsError` naming it.

        Raises:
            SettingsError: a settings file cannot be used, or a key is unknown (the
                message names where it was set, the allowed keys and the closest one).
            pydantic.ValidationError: a known key has a bad value.
        """
        try:
            super().__init__(**values)
        except ValidationError as raw:
            exc = _without_secret_inputs(raw)
            unknown = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
            if not unknown:
                raise exc from None
            lines = [_unknown_key_message(loc, values) for loc in unknown]
            lines += [_bad_value_line(e) for e in exc.errors() if e["type"] != "extra_forbidden"]
            raise SettingsError("\n".join(lines)) from None
        except PydanticSettingsError as exc:
            # e.g. a section's environment variable that is not JSON; its text is not shown.
            raise SettingsError(f"{exc} (the value is not shown)") from None

    @property
    def ledger_url(self) -> str:
        """The ledger URL, defaulting to a SQLite file in the data root."""
        return self.ledger.url or f"sqlite:///{(self.paths.root / 'ledger.db').as_posix()}"

    @property
    def audit_path(self) -> Path:
        """Where the audit log is appended."""
        return (
            self.audit.file
            if self.audit.file.is_absolute()
            else self.paths.resolve("audit") / self.audit.file
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = [path for _what, path in _settings_files()]
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=files, deep_merge=True),
        )


def _settings_files() -> list[tuple[str, Path]]:
    """The TOML files read, lowest priority first, each with what it is (for messages)."""
    files = [("packaged defaults", DEFAULTS_TOML)]
    extra = os.environ.get(CONFIG_FILE_ENV)
    if extra:
        files.append(("--config file", _checked_toml(Path(extra), what="--config file")))
    secrets = os.environ.get(SECRETS_FILE_ENV)
    if secrets:
        files.append(("secrets file", _checked_toml(_private_file(Path(secrets)), what="secrets file")))
    return files


#: Shown instead of the value of a secret setting in an error.
HIDDEN = "<hidden>"
# Setting names that hold a secret whatever their type (with config.redaction's key pattern).
_SECRET_NAMES = re.compile(r"webhook|hash", re.IGNORECASE)


def _holds_secret(annotation: Any) -> bool:
    """Whether a field's type is, or contains, ``SecretStr``/``SecretBytes``."""
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_holds_secret(arg) for arg in get_args(annotation))


def _section_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def is_secret_setting(loc: Sequence[str | int]) -> bool:
    """Whether the setting at ``loc`` is, holds or lies inside a secret.

    A secret is a ``SecretStr`` field (passwords, TOTP secret, audit key, webhook
    URL, password hashes) or a key named like one; a section counts when it holds
    any secret (its value given whole, e.g. as one environment variable of JSON).

    Example:
        >>> is_secret_setting(("portal", "password")), is_secret_setting(("portal", "url"))
        (True, False)
    """
    from config.redaction import SECRET_KEY_PATTERN

    model: type[BaseModel] | None = Settings
    skip_key = False  # the previous field was a dict or list: this part is its key or index
    for part in loc:
        name = str(part)
        if skip_key:
            skip_key = False
            continue
        if SECRET_KEY_PATTERN.search(name) or _SECRET_NAMES.search(name):
            return True
        field = model.model_fields.get(name) if model is not None else None
        if field is None:
            return False
        if _holds_secret(field.annotation):
            return True
        model = _section_of(field.annotation)
        skip_key = _is_container(field.annotation)
    return model is not None and any(
        _holds_secret(f.annotation) or is_secret_setting((*loc, n)) for n, f in model.model_fields.items()
    )


def _is_container(annotation: Any) -> bool:
    """Whether a field holds a dict or a list (possibly optional): its values are reached by key."""
    containers = (dict, list, tuple, set, frozenset)
    return get_origin(annotation) in containers or any(
        get_origin(a) in containers for a in get_args(annotation)
    )


def _without_secret_inputs(exc: ValidationError) -> ValidationError:
    """The same errors with the value given for any secret setting replaced by :data:`HIDDEN`.

    So neither ``str(exc)`` nor a message built from ``exc.errors()`` can show a
    password given with the wrong type (``portal.password = 123456789012``).
    """
    details: list[Any] = []
    changed = False
    for error in exc.errors():
        detail: dict[str, Any] = {"type": error["type"], "loc": error["loc"], "input": error["input"]}
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        if is_secret_setting(error["loc"]):
            detail["input"] = HIDDEN
            changed = True
        details.append(detail)
    if not changed:
        return exc
    return ValidationError.from_exception_data(exc.title, details)


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc)


def _env_name(loc: Sequence[str | int]) -> str:
    return "PROCBOTS_" + "__".join(str(part) for part in loc).upper()


def _allowed_keys(loc: Sequence[str | int]) -> list[str]:
    """The keys the section holding ``loc``'s last part allows (empty when it is no model)."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _holds(data: Any, loc: Sequence[str | int]) -> bool:
    for part in loc:
        if not isinstance(data, Mapping):
            return False
        match = [k for k in data if str(k).lower() == str(part).lower()]
        if not match:
            return False
        data = data[match[0]]
    return True


def _origins(loc: Sequence[str | int], init_values: Mapping[str, Any]) -> list[str]:
    """Where ``loc`` was set: settings files, environment variables, keyword arguments."""
    found = []
    if _holds(init_values, loc):
        found.append("keyword argument")
    env = {name.upper(): name for name in os.environ}
    # A nested key may also come inside a JSON value of its section's variable.
    for depth in range(len(loc), 0, -1):
        name = env.get(_env_name(loc[:depth]))
        if name is not None:
            found.append(f"environment variable {name}")
            break
    for what, path in reversed(_settings_files()):
        with path.open("rb") as handle:
            if _holds(tomllib.load(handle), loc):
                found.append(f"{what} {path}")
    return found


def _unknown_key_message(loc: Sequence[str | int], init_values: Mapping[str, Any]) -> str:
    """``<where>: unknown setting `portal.timout_ms`; did you mean `portal.timeout_ms`? ...``.

    The value is never shown: a misspelt key in the secrets file may hold a password.
    """
    key, section = _dotted(loc), _dotted(loc[:-1])
    where = " and ".join(_origins(loc, init_values)) or "settings"
    message = f"{where}: unknown setting `{key}`"
    allowed = _allowed_keys(loc)
    close = difflib.get_close_matches(str(loc[-1]).lower(), allowed, n=1)
    if close:
        suggestion = _dotted([*loc[:-1], close[0]])
        env_hint = f" ({_env_name([*loc[:-1], close[0]])})" if where.startswith("environment") else ""
        message += f"; did you mean `{suggestion}`{env_hint}?"
    if allowed:
        scope = f"the [{section}] section" if section else "the top level"
        message += f" ({scope} allows: {', '.join(allowed)})"
    return message


def _bad_value_line(error: Any) -> str:
    # As ``procbots`` reports a bad value (flows/cli.py), for errors raised beside an unknown key.
    value = error.get("input")
    if isinstance(value, dict):
        value = "<section>"
    return f"setting {_dotted(error['loc'])}={value!r}: {error['msg']}"


def _private_file(path: Path) -> Path:
    """Refuses a secrets file that group or others may read or write (wider than 0600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise SettingsError(
            f"{SECRETS_FILE_ENV}={path}: cannot read the secrets file ({exc.strerror})"
        ) from None
    if mode & 0o077:
        raise SettingsError(
            f"secrets file {path} has mode {mode:04o}; expected 0600 or stricter (run: chmod 600 {path})"
        )
    return path


def _checked_toml(path: Path, *, what: str) -> Path:
    """Fails with the file name and the line when a settings file is not valid TOML."""
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{what} {path}: not valid TOML: {exc}") from None
    return path


def portal_password(settings: Settings | None = None) -> SecretStr:
    """The portal password: from the settings, else from the Prefect Secret block.

    The block named by ``portal.secret_block`` is only read (lazily, importing
    Prefect) when no password is set in the environment, a settings file or the
    secrets file. The value is registered for log redaction either way.

    Raises:
        SettingsError: when no password is set and no block is named, or the
            block cannot be loaded.

    Example:
        >>> portal_password(Settings(portal={"password": "s3cret"})).get_secret_value()
        's3cret'
    """
    from config.redaction import register_secret

    settings = settings or get_settings()
    if settings.portal.password.get_secret_value():
        register_secret(settings.portal.password)
        return settings.portal.password
    block = settings.portal.secret_block
    if not block:
        raise SettingsError(
            "portal.password is not set: set PROCBOTS_PORTAL__PASSWORD, put it in the secrets file "
            f"({SECRETS_FILE_ENV}), or name a Prefect Secret block in portal.secret_block"
        )
    try:
        from prefect.blocks.system import Secret

        # _sync: the sync loader even when called from inside an event loop (a flow).
        loaded: Any = Secret.load(block, _sync=True)  # type: ignore[call-arg]
        value = loaded.get()
    except Exception as exc:  # Prefect raises ValueError, HTTP and connection errors alike
        raise SettingsError(
            f"portal.secret_block={block!r}: cannot load that Prefect Secret block ({exc})"
        ) from None
    if not isinstance(value, str) or not value:
        raise SettingsError(f"portal.secret_block={block!r}: the block does not hold a non-empty string")
    register_secret(value)
    return SecretStr(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; ``get_settings.cache_clear()`` in tests)."""
    return Settings()
