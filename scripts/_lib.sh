# Sourced by the scripts in this folder (not run by itself): uv and the workstation tools.
#
# uv: used from PATH when present; otherwise installed into a project-local virtualenv (.tools,
# ignored by git). Debian 12+ and Ubuntu 24.04 refuse `pip install` into the system Python
# (PEP 668, "externally-managed-environment"), and a venv is the way they document around it.
uv_requirement="uv==0.13.9"

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then
    return 0
  fi
  if [[ ! -x .tools/bin/uv ]]; then
    echo "uv is not on PATH: installing $uv_requirement into .tools/ (a virtualenv of this project)" >&2
    if ! python3 -m venv .tools >/dev/null 2>&1; then
      rm -rf .tools
      echo "error: \`python3 -m venv\` failed. On Debian/Ubuntu: sudo apt install python3-venv;" \
        "or install uv yourself: pipx install $uv_requirement (or \`mise install\`, see mise.toml)" >&2
      exit 1
    fi
    .tools/bin/pip install --quiet --disable-pip-version-check "$uv_requirement"
  fi
  PATH="$PWD/.tools/bin:$PATH"
  export PATH
}

# The workstation tools the stack calls, pinned in mise.toml (`mise install` installs exactly
# those). `tool_pin NAME` prints the pin; `check_tool NAME required|optional` checks PATH and
# version and returns 1 (after saying why) when the tool cannot do its job: a required tool that
# is missing, or a version outside what works with the pin (`version_problem`). Any other
# difference from the pin is a warning.
tool_pin() {
  sed -n "s/^$1 *= *\"\([^\"]*\)\".*/\1/p" mise.toml
}

tool_version() {
  case "$1" in
    pulumi) pulumi version 2>/dev/null ;;
    kubectl) kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p' ;;
    talosctl) talosctl version --client 2>/dev/null | sed -n 's/^[[:space:]]*Tag:[[:space:]]*//p' | head -n 1 ;;
    helm) helm version --template '{{.Version}}' 2>/dev/null ;;
  esac
}

# Minor versions from FOUND to PIN (FOUND - PIN), or "major" when the majors differ or either
# version is unreadable.
minor_gap() {
  local found_major found_minor pin_major pin_minor
  IFS=. read -r found_major found_minor _ <<<"$1"
  IFS=. read -r pin_major pin_minor _ <<<"$2"
  if [[ ! "$found_major$found_minor$pin_major$pin_minor" =~ ^[0-9]+$ || "$found_major" != "$pin_major" ]]; then
    echo major
  else
    echo $((found_minor - pin_minor))
  fi
}

# Why version FOUND of tool NAME cannot work with the pinned PIN, or nothing.
version_problem() {
  local name="$1" found="$2" pin="$3" gap
  gap="$(minor_gap "$found" "$pin")"
  case "$name" in
    kubectl)
      # Kubernetes' version skew policy: kubectl works within one minor of the API server
      # (kubernetes.io/releases/version-skew-policy, "kubectl"); the cluster runs the pin.
      if [[ "$gap" == major || "$gap" -gt 1 || "$gap" -lt -1 ]]; then
        echo "the cluster runs Kubernetes $pin and kubectl works within one minor version of it"
      fi
      ;;
    talosctl)
      # `pulumi up` runs talosctl health and upgrade against the nodes (components/cluster/
      # talos_health.py, upgrade.py), whose Talos is the pin: an older minor predates their API
      # and config (the README asks for the cluster's minor).
      if [[ "$gap" == major || "$gap" -lt 0 ]]; then
        echo "the nodes run Talos $pin and talosctl must be of that minor (${pin%.*}.x) or newer"
      fi
      ;;
  esac
  # Any other tool (pulumi, helm) at another version: a warning, not a stop.
}

check_tool() {
  local name="$1" need="$2" pin found problem
  pin="$(tool_pin "$name")"
  if ! command -v "$name" >/dev/null 2>&1; then
    if [[ "$need" == required ]]; then
      echo "error: $name is required but not on PATH; install $name $pin (\`mise install\` reads mise.toml)" >&2
      return 1
    fi
    echo "note: $name is not on PATH (optional here; the project pins $pin in mise.toml)" >&2
    return 0
  fi
  found="$(tool_version "$name")"
  found="${found#v}"
  if [[ "$found" == "$pin" ]]; then
    return 0
  fi
  problem="$(version_problem "$name" "$found" "$pin")"
  if [[ -n "$problem" ]]; then
    echo "error: $name ${found:-(unknown version)} is on PATH, but $problem; install $pin" \
      "(\`mise install\` reads mise.toml)" >&2
    return 1
  fi
  echo "warning: $name ${found:-(unknown version)} is on PATH but the project pins $pin (mise.toml);" \
    "\`mise install\` installs the pinned one" >&2
}

# Where the Pulumi state lives: PULUMI_BACKEND_URL, else the local file backend under
# ${XDG_STATE_HOME:-~/.local/state}/homelab-pulumi (homelab/lab.py uses the same). With the
# passphrase it is the only copy of the Talos cluster's CAs (README.md, "What to keep safe").
state_backend() {
  echo "${PULUMI_BACKEND_URL:-file://${XDG_STATE_HOME:-$HOME/.local/state}/homelab-pulumi}"
}

say_state_backend() {
  echo "Pulumi state: $(state_backend) - keep it, and your passphrase, safe:" \
    "README.md, \"What to keep safe\"" >&2
}
