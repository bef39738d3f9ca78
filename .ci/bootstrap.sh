#!/usr/bin/env bash
# Installs what `make demo` / `make test` need on a fresh Debian machine:
# uv, the locked environment, a Chromium for Playwright and (for tests) PostgreSQL.
# Idempotent: each step checks first and does nothing when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
want_postgres="${1:-}"

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

# 1. uv
if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
  log "installing uv with pip"
  python3 -m pip install --user --quiet uv 2>/dev/null \
    || python3 -m pip install --user --quiet --break-system-packages uv
fi
UV="$(command -v uv 2>/dev/null || echo "$HOME/.local/bin/uv")"

# 2. the locked environment
"$UV" sync --frozen --quiet

# 3. a Chromium: Playwright's own where it can be downloaded, else Debian's
if ! .venv/bin/python -m connectors.portal.browser --check >/dev/null 2>&1; then
  log "no Chromium found: trying 'playwright install chromium'"
  if ! timeout 300 .venv/bin/python -m playwright install chromium >/tmp/procbots-playwright-install.log 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      log "Playwright's download failed; installing Debian's chromium with apt"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      log "No Chromium available. Run 'uv run playwright install chromium' with internet access,"
      log "or as root: 'apt-get install -y chromium', or set PROCBOTS_BROWSER__EXECUTABLE."
      exit 1
    fi
  fi
  .venv/bin/python -m connectors.portal.browser --check
fi

# 4. PostgreSQL for the scale-out tests (Debian package), only when asked
if [ "$want_postgres" = "--postgres" ]; then
  if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      log "installing PostgreSQL with apt"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || \
        log "PostgreSQL could not be installed: its tests will be skipped with this reason"
    else
      log "PostgreSQL is not installed and this is not root: its tests will be skipped"
    fi
  fi
fi
