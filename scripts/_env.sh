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
if [ ! -x "$venv/bin/python" ]; then
  if ! "$py" -m venv "$venv" 2>/dev/null; then
    echo "fabricscope: '$py -m venv' failed; on Debian: apt-get install -y python3-venv" >&2
    exit 2
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
