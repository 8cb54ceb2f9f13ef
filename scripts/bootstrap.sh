# Sourced by scripts/demo and scripts/test: creates .venv and installs the project into it.
# A stamp of pyproject.toml + constraints.txt makes a second run a fast no-op.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.ganfriends-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating virtual environment in .venv"
    "$PYTHON" -m venv "$VENV"
fi
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    echo "==> installing ganfriends and its dependencies (first run: a few minutes, ~5 GB)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # The constraints pin torch/torchvision exactly; never let pip resolve an unpinned torch.
    "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
    echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
