# Sourced by ./run and scripts/test: make .venv with Python 3.11 and install the given
# requirement files, skipping pip when they have not changed since the last install.
ensure_venv() {
  local python
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python="$candidate"; break
    fi
  done
  if [ -z "${python:-}" ]; then
    echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)." >&2
    return 1
  fi
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "==> creating .venv with $python"
    rm -rf .venv
    "$python" -m venv .venv
  fi
  # One stamp per set of files, so ./run and make test do not undo each other's check.
  local stamp=".venv/.installed-$(echo "$*" | tr ' /' '__')" digest
  digest=$(cat "$@" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    echo "==> installing $*"
    local args=()
    for file in "$@"; do args+=(-r "$file"); done
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "${args[@]}"
    echo "$digest" > "$stamp"
  fi
}
