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
# version: a missing required tool stops the script, any other difference is a warning.
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

check_tool() {
  local name="$1" need="$2" pin found
  pin="$(tool_pin "$name")"
  if ! command -v "$name" >/dev/null 2>&1; then
    if [[ "$need" == required ]]; then
      echo "error: $name is required but not on PATH; install $name $pin (\`mise install\` reads mise.toml)" >&2
      exit 1
    fi
    echo "note: $name is not on PATH (optional here; the project pins $pin in mise.toml)" >&2
    return 0
  fi
  found="$(tool_version "$name")"
  found="${found#v}"
  if [[ "$found" != "$pin" ]]; then
    echo "warning: $name ${found:-(unknown version)} is on PATH but the project pins $pin (mise.toml);" \
      "\`mise install\` installs the pinned one" >&2
  fi
}
