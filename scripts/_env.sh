# Sourced by scripts/fabricscope and scripts/test: makes sure .venv exists and holds
# the package (editable) with the extras named in FABRICSCOPE_EXTRAS.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FABRICSCOPE_VENV:-$root/.venv}"
extras="${FABRICSCOPE_EXTRAS:-}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
  done
fi
if [ -z "$py" ]; then
  echo "fabricscope: no python3 found; on Debian: apt-get install -y python3 python3-venv" >&2
  exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "fabricscope: installing python3-venv (Debian)..." >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
    fi
    if ! "$py" -m venv "$venv"; then
      echo "fabricscope: '$py -m venv' failed; on Debian: sudo apt-get install -y python3-venv" >&2
      exit 2
    fi
  fi
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
fi
stamp="$venv/.fabricscope-installed${extras:+-$extras}"
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "fabricscope: installing into $venv (first run or pyproject.toml changed)..." >&2
  spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  "$venv/bin/python" -m pip install -q -e "$spec" >&2
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
