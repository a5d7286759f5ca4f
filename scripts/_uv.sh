# Sourced by the scripts here: puts a working `uv` on PATH, installing it from
# PyPI when missing (Debian's system Python refuses a plain `pip install`).
export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv from PyPI..." >&2
  python3 -m pip install --user --quiet uv 2>/dev/null \
    || python3 -m pip install --user --quiet --break-system-packages uv 2>/dev/null \
    || {
      # No pip at all (Debian without python3-pip): a private venv, or apt as root.
      if ! python3 -m venv "$HOME/.local/share/mw-uv" 2>/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq python3-venv python3-pip >/dev/null
        python3 -m venv "$HOME/.local/share/mw-uv"
      fi
      "$HOME/.local/share/mw-uv/bin/pip" install --quiet uv
      mkdir -p "$HOME/.local/bin"
      ln -sf "$HOME/.local/share/mw-uv/bin/uv" "$HOME/.local/bin/uv"
    }
fi
command -v uv >/dev/null 2>&1 || { echo "could not install uv" >&2; exit 1; }
