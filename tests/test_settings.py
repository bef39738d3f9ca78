"""Settings come from defaults, --config, a private secrets file, env and Prefect; bad ones stop the start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from config.logging import registered_secrets
from config.settings import Settings, SettingsError, portal_password

PROCBOTS = Path(sys.executable).with_name("procbots")


def _secrets_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_layers_override_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    """Env beats the secrets file, which beats --config, which beats the packaged defaults."""
    config = tmp_path / "site.toml"
    config.write_text('[portal]\nurl = "https://portal.example.nhs.uk/"\nusername = "ap-clerk"\n')
    monkeypatch.setenv("PROCBOTS_CONFIG", str(config))
    secrets = _secrets_file(tmp_path, '[portal]\npassword = "from-file"\nusername = "from-secrets"\n')
    monkeypatch.setenv("PROCBOTS_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("PROCBOTS_BROWSER__CONTEXTS", "5")
    settings = Settings()
    assert settings.portal.url == "https://portal.example.nhs.uk"
    assert settings.portal.username == "from-secrets"
    assert settings.portal.password.get_secret_value() == "from-file"
    assert settings.browser.contexts == 5
    assert settings.ledger.lease_s == 120  # packaged default untouched
    monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", "from-env")
    assert Settings().portal.password.get_secret_value() == "from-env"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_secrets_file_readable_by_others_is_refused(
    mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    secrets = _secrets_file(tmp_path, '[portal]\npassword = "x"\n', mode)
    monkeypatch.setenv("PROCBOTS_SECRETS_FILE", str(secrets))
    with pytest.raises(SettingsError) as caught:
        Settings()
    assert str(secrets) in str(caught.value)
    assert f"{mode:04o}" in str(caught.value)


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=oct)
def test_private_secrets_file_is_accepted(
    mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    monkeypatch.setenv(
        "PROCBOTS_SECRETS_FILE", str(_secrets_file(tmp_path, '[audit]\nhmac_key = "k"\n', mode))
    )
    key = Settings().audit.hmac_key
    assert key is not None
    assert key.get_secret_value() == "k"


def test_missing_secrets_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    monkeypatch.setenv("PROCBOTS_SECRETS_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match=r"nope\.toml"):
        Settings()


def _refused_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    """The SettingsError message for a --config file holding ``text``."""
    config = tmp_path / "site.toml"
    config.write_text(text)
    monkeypatch.setenv("PROCBOTS_CONFIG", str(config))
    with pytest.raises(SettingsError) as caught:
        Settings()
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "key", "suggestion", "allowed"),
    [
        pytest.param(
            "[browser]\ntimout_ms = 5000\n",
            "browser.timout_ms",
            "did you mean `browser.timeout_ms`?",
            "the [browser] section allows: executable, headless, contexts, timeout_ms, navigation_timeout_ms",
            id="misspelt-key-in-section",
        ),
        pytest.param(
            '[portal]\nurll = "http://x"\n',
            "portal.urll",
            "did you mean `portal.url`?",
            "the [portal] section allows: url, username,",
            id="unknown-key-in-section",
        ),
        pytest.param(
            'colour = "blue"\n',
            "colour",
            None,
            "the top level allows: portal, paths,",
            id="unknown-top-level-key",
        ),
        pytest.param(
            "[portals]\nurl = 1\n",
            "portals",
            "did you mean `portal`?",
            "the top level allows:",
            id="unknown-section",
        ),
    ],
)
def test_unknown_keys_in_toml_name_the_file_the_key_and_the_allowed_keys(
    text: str,
    key: str,
    suggestion: str | None,
    allowed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings_env: Path,
) -> None:
    message = _refused_config(tmp_path, monkeypatch, text)
    assert message.startswith(f"--config file {tmp_path / 'site.toml'}: unknown setting `{key}`")
    assert allowed in message
    if suggestion is None:
        assert "did you mean" not in message
    else:
        assert suggestion in message
    assert "Extra inputs are not permitted" not in message


def test_a_misspelt_nested_env_var_names_the_variable_and_the_right_one(
    monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    monkeypatch.setenv("PROCBOTS_BROWSER__TIMOUT_MS", "5000")
    with pytest.raises(SettingsError) as caught:
        Settings()
    assert str(caught.value).startswith(
        "environment variable PROCBOTS_BROWSER__TIMOUT_MS: unknown setting `browser.timout_ms`; "
        "did you mean `browser.timeout_ms` (PROCBOTS_BROWSER__TIMEOUT_MS)?"
    )


def test_unknown_top_level_env_vars_are_ignored_by_pydantic_settings(
    monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    """pydantic-settings reads only variables named after a field, so these cannot be reported."""
    monkeypatch.setenv("PROCBOTS_COLOUR", "blue")
    monkeypatch.setenv("PROCBOTS_PORTALS__URL", "https://portal.example.nhs.uk")
    assert Settings().portal.url == "http://127.0.0.1:8765"


def test_a_misspelt_key_in_the_secrets_file_never_shows_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    secrets = _secrets_file(tmp_path, '[portal]\npasword = "hunter2-secret-value"\n')
    monkeypatch.setenv("PROCBOTS_SECRETS_FILE", str(secrets))
    with pytest.raises(SettingsError) as caught:
        Settings()
    message = str(caught.value)
    assert (
        f"secrets file {secrets}: unknown setting `portal.pasword`; did you mean `portal.password`?"
        in message
    )
    assert "hunter2" not in message


def test_bad_values_beside_an_unknown_key_are_reported_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    lines = _refused_config(tmp_path, monkeypatch, '[retry]\nmax_atempts = 3\nmax_s = "long"\n').splitlines()
    assert len(lines) == 2
    assert "unknown setting `retry.max_atempts`; did you mean `retry.max_attempts`?" in lines[0]
    assert lines[1].startswith("setting retry.max_s='long': ")


def test_a_known_key_with_a_bad_value_is_still_a_validation_error(
    monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    monkeypatch.setenv("PROCBOTS_BROWSER__TIMEOUT_MS", "soon")
    with pytest.raises(ValidationError):
        Settings()


def test_invalid_toml_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[portal\nurl = \n")
    monkeypatch.setenv("PROCBOTS_CONFIG", str(config))
    with pytest.raises(SettingsError, match=r"broken\.toml: not valid TOML"):
        Settings()


def test_portal_password_prefers_the_configured_value() -> None:
    settings = Settings(portal={"password": "set-directly-1", "secret_block": "never-read"})
    assert portal_password(settings).get_secret_value() == "set-directly-1"
    assert "set-directly-1" in registered_secrets()


def test_portal_password_without_any_source_says_how_to_set_one() -> None:
    with pytest.raises(SettingsError, match="PROCBOTS_PORTAL__PASSWORD"):
        portal_password(Settings())


@pytest.mark.prefect
def test_portal_password_from_a_prefect_secret_block(prefect_api: None) -> None:
    from prefect.blocks.system import Secret

    Secret(value="block-held-pw-55").save("procbots-test-portal", overwrite=True)
    password = portal_password(Settings(portal={"secret_block": "procbots-test-portal"}))
    assert password.get_secret_value() == "block-held-pw-55"
    assert "block-held-pw-55" in registered_secrets()  # redacted from logs from now on
    with pytest.raises(SettingsError, match="no-such-block"):
        portal_password(Settings(portal={"secret_block": "no-such-block"}))


def _procbots(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("PROCBOTS_") or k == "PROCBOTS_PATHS__ROOT"
    }
    return subprocess.run(
        [str(PROCBOTS), *args], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_bad_values_stop_the_cli_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    """The real console script names key, value and expectation for each source of settings."""
    config = tmp_path / "site.toml"
    config.write_text('[browser]\ntimeout_ms = "soon"\n')
    secrets = _secrets_file(tmp_path, '[portal]\nurl = "ftp://portal"\n')
    open_secrets = tmp_path / "open.toml"
    open_secrets.write_text('[portal]\npassword = "x"\n')
    open_secrets.chmod(0o644)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[ledger]\nlease_seconds = 5\n")
    cases = [
        (
            ["audit", "verify", "x"],
            {"PROCBOTS_RETRY__MAX_ATTEMPTS": "lots"},
            ["retry.max_attempts", "'lots'", "integer"],
        ),
        (["--config", str(config), "audit", "verify", "x"], {}, ["browser.timeout_ms", "'soon'", "integer"]),
        (
            ["audit", "verify", "x"],
            {"PROCBOTS_SECRETS_FILE": str(secrets)},
            ["portal.url", "'ftp://portal'", "http"],
        ),
        (
            ["audit", "verify", "x"],
            {"PROCBOTS_SECRETS_FILE": str(open_secrets)},
            [str(open_secrets), "0644", "0600"],
        ),
        (
            ["--config", str(unknown), "audit", "verify", "x"],
            {},
            [str(unknown), "unknown setting `ledger.lease_seconds`; did you mean `ledger.lease_s`?"],
        ),
        (
            ["audit", "verify", "x"],
            {"PROCBOTS_BROWSER__TIMOUT_MS": "5000"},
            [
                "PROCBOTS_BROWSER__TIMOUT_MS",
                "did you mean `browser.timeout_ms` (PROCBOTS_BROWSER__TIMEOUT_MS)?",
            ],
        ),
    ]
    for args, env, expected in cases:
        result = _procbots(args, env)
        assert result.returncode == 2, (args, env, result.stderr)
        assert "Traceback" not in result.stderr
        for text in expected:
            assert text in result.stderr, (text, result.stderr)


def _secret_fields() -> list[tuple[str, str]]:
    """Every (section, key) of the settings typed as a secret: found, not listed, so new ones count."""
    found = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for key, sub in model.model_fields.items():
                if "SecretStr" in str(sub.annotation):
                    found.append((section, key))
    return found


SECRET_VALUE = 123456789012  # a TOML integer where a string is expected: a bad value


def test_the_secret_fields_include_every_kind_the_issue_names() -> None:
    names = {f"{section}.{key}" for section, key in _secret_fields()}
    assert {"portal.password", "portal.totp_secret", "audit.hmac_key", "alerts.webhook_url"} <= names


@pytest.mark.parametrize("source", ["secrets file", "--config file", "environment JSON", "keyword"])
def test_a_bad_value_for_any_secret_setting_never_shows_the_value(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    from flows.cli import describe_validation_error

    for section, key in _secret_fields():
        for name in [n for n in os.environ if n.startswith("PROCBOTS_") and n != "PROCBOTS_PATHS__ROOT"]:
            monkeypatch.delenv(name)
        values: dict[str, object] = {}
        if source == "secrets file":
            monkeypatch.setenv(
                "PROCBOTS_SECRETS_FILE",
                str(_secrets_file(tmp_path, f"[{section}]\n{key} = {SECRET_VALUE}\n")),
            )
        elif source == "--config file":
            config = tmp_path / "site.toml"
            config.write_text(f"[{section}]\n{key} = {SECRET_VALUE}\n")
            monkeypatch.setenv("PROCBOTS_CONFIG", str(config))
        elif source == "environment JSON":
            monkeypatch.setenv(f"PROCBOTS_{section.upper()}", json.dumps({key: SECRET_VALUE}))
        else:
            values = {section: {key: SECRET_VALUE}}
        with pytest.raises(ValidationError) as caught:
            Settings(**values)  # type: ignore[arg-type]
        described = describe_validation_error(caught.value)
        assert f"setting {section}.{key}=" in described
        for text in (str(caught.value), described, repr(caught.value.errors())):
            assert str(SECRET_VALUE) not in text, (section, key, source, text)


def test_a_secret_section_given_whole_as_text_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(portal="hunter2-whole-section")  # type: ignore[arg-type]
    assert "hunter2" not in str(caught.value)
    monkeypatch.setenv("PROCBOTS_PORTAL", '{"password": "hunter2-not-json')
    with pytest.raises(SettingsError) as not_json:
        Settings()
    assert "hunter2" not in str(not_json.value)


def test_a_bad_non_secret_value_is_still_shown(settings_env: Path) -> None:
    from flows.cli import describe_validation_error

    with pytest.raises(ValidationError) as caught:
        Settings(portal={"url": "ftp://portal", "password": 5})
    described = describe_validation_error(caught.value)
    assert "setting portal.url='ftp://portal'" in described
    assert "setting portal.password='<hidden>'" in described


def test_the_console_script_does_not_echo_a_mistyped_password_from_the_secrets_file(tmp_path: Path) -> None:
    """The issue's example: `setting portal.password=123456789012: Input should be a valid string`."""
    secrets = _secrets_file(tmp_path, f"[portal]\npassword = {SECRET_VALUE}\n")
    result = _procbots(["audit", "verify", "x"], {"PROCBOTS_SECRETS_FILE": str(secrets)})
    assert result.returncode == 2
    assert "setting portal.password=" in result.stderr
    assert "Input should be a valid string" in result.stderr
    assert str(SECRET_VALUE) not in result.stderr + result.stdout


# --- timings that contradict each other (issue 13 item 5) -----------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"PROCBOTS_LEDGER__LEASE_S": "6", "PROCBOTS_LEDGER__HEARTBEAT_S": "60"},
            ["ledger.heartbeat_s", "ledger.lease_s"],
        ),
        (
            {"PROCBOTS_LEDGER__LEASE_S": "30", "PROCBOTS_LEDGER__HEARTBEAT_S": "10"},
            ["ledger.heartbeat_s", "ledger.lease_s"],
        ),
        (
            {"PROCBOTS_RETRY__INITIAL_S": "20", "PROCBOTS_RETRY__MAX_S": "10"},
            ["retry.initial_s", "retry.max_s"],
        ),
    ],
    ids=["heartbeat-longer-than-lease", "heartbeat-exactly-a-third", "backoff-starts-above-its-cap"],
)
def test_contradictory_timings_are_refused_at_start_with_exit_2_naming_both_keys(
    tmp_path: Path, env: dict[str, str], named: list[str]
) -> None:
    """A heartbeat of a third of the lease or more (a healthy worker would lose its items), or a
    first retry wait above the longest: one clear line, exit 2, before any work."""
    source = tmp_path / "requisitions.csv"
    source.write_text("requisition_ref\n")
    result = subprocess.run(
        [str(PROCBOTS), "run", "purchase-orders", "--input", str(source)],
        env={**os.environ, "PROCBOTS_PATHS__ROOT": str(tmp_path / "var"), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    problem = [line for line in result.stderr.splitlines() if line.startswith("setting ")]
    assert len(problem) == 1, result.stderr
    assert all(key in problem[0] for key in named), problem
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var" / "ledger.db").exists()


def test_a_heartbeat_well_inside_the_lease_is_accepted() -> None:
    settings = Settings(ledger={"lease_s": 30, "heartbeat_s": 9.9}, retry={"initial_s": 1, "max_s": 1})
    assert (settings.ledger.heartbeat_s, settings.retry.initial_s) == (9.9, 1)


@pytest.mark.parametrize("source", ["secrets file", "environment JSON"])
def test_a_console_users_mistyped_password_hash_is_not_echoed(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    """Secrets nested under a key of a table (console.users.<name>.password_hash) are hidden too."""
    if source == "secrets file":
        text = f'[console.users.jsmith]\nname = "Jane Smith"\npassword_hash = {SECRET_VALUE}\n'
        monkeypatch.setenv("PROCBOTS_SECRETS_FILE", str(_secrets_file(tmp_path, text)))
    else:
        users = {"users": {"jsmith": {"name": "Jane Smith", "password_hash": SECRET_VALUE}}}
        monkeypatch.setenv("PROCBOTS_CONSOLE", json.dumps(users))
    with pytest.raises(ValidationError) as caught:
        Settings()
    from flows.cli import describe_validation_error

    described = describe_validation_error(caught.value)
    assert "setting console.users.jsmith.password_hash='<hidden>'" in described
    assert str(SECRET_VALUE) not in str(caught.value) + described
