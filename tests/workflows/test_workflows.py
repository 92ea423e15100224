"""The GitHub workflows: valid against GitHub's schema, clean under zizmor, and wired as designed.

Both linters run offline: check-jsonschema ships GitHub's workflow schema (`vendor.github-workflows`)
and zizmor's `--offline` skips the audits that call the GitHub API.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab import engine

WORKFLOWS = engine.PROJECT_ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
FULL_SHA = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict)
    # PyYAML reads the `on:` key as the boolean True (YAML 1.1).
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in document["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def action_step(document: dict[str, Any], job: str, action: str) -> dict[str, Any]:
    found = [s for j, s in steps(document) if j == job and s.get("uses", "").startswith(action)]
    assert len(found) == 1, (job, action)
    return found[0]


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "zizmor"),
            "--offline",
            "--persona",
            "auditor",
            "--format",
            "json",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


# --- lint ------------------------------------------------------------------------------------


def test_the_four_workflows_exist() -> None:
    assert [p.name for p in workflow_files()] == [
        "deploy.yml",
        "drift.yml",
        "preview.yml",
        "test.yml",
    ]


def test_workflows_match_githubs_workflow_schema() -> None:
    result = check_jsonschema(*workflow_files())
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_even_as_an_auditor() -> None:
    result = zizmor(*workflow_files())
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)[:4000]
    assert result.returncode == 0, result.stderr


def test_every_zizmor_suppression_gives_its_reason() -> None:
    for path in workflow_files():
        for line in path.read_text().splitlines():
            if "zizmor: ignore[" in line:
                reason = line.split("]", 1)[1].strip()
                assert len(reason) > 10, f"{path.name}: suppression without a reason: {line}"


def _bad_workflow(tmp_path: Path) -> Path:
    directory = tmp_path / ".github" / "workflows"
    directory.mkdir(parents=True)
    path = directory / "bad.yml"
    path.write_text(
        "on: pull_request_target\n"
        "jobs:\n"
        "  x:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    return path


def test_the_lint_catches_a_dangerous_workflow(tmp_path: Path) -> None:
    # Guards the zero-findings test: the same invocation does report real problems.
    findings = json.loads(zizmor(_bad_workflow(tmp_path)).stdout)
    idents = {f["ident"] for f in findings}
    assert {"template-injection", "unpinned-uses", "dangerous-triggers", "artipacked"} <= idents


def test_the_schema_check_catches_an_invalid_workflow(tmp_path: Path) -> None:
    path = tmp_path / "invalid.yml"
    path.write_text("on: push\njobs:\n  x:\n    steps:\n      - run: true\n")  # no runs-on
    assert check_jsonschema(path).returncode != 0


# --- conventions -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_permissions_are_empty_at_the_top_and_granted_per_job(path: Path) -> None:
    document = load(path.name)
    assert document["permissions"] == {}
    for name, job in document["jobs"].items():
        assert "permissions" in job, name
        assert set(job["permissions"].values()) <= {"read", "write"}
        assert "contents" not in job["permissions"] or job["permissions"]["contents"] == "read"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_version_in_a_comment(path: Path) -> None:
    lines = path.read_text().splitlines()
    uses = [line for line in lines if line.strip().startswith(("- uses:", "uses:"))]
    assert uses
    for line in uses:
        reference, _, comment = line.split("uses:", 1)[1].strip().partition(" # ")
        assert FULL_SHA.match(reference), line
        assert re.fullmatch(r"v\d+\.\d+\.\d+", comment), line


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_checkouts_do_not_persist_credentials(path: Path) -> None:
    document = load(path.name)
    checkouts = [s for _, s in steps(document) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


def test_pull_requests_get_a_real_preview_as_one_edited_comment() -> None:
    document = load("preview.yml")
    assert set(document["on"]) == {"pull_request"}
    job = document["jobs"]["preview"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert job["runs-on"] == ["self-hosted", "homelab"]
    # Off until the repository enables it; forks never reach the LAN runner.
    assert job["if"] == (
        "vars.HOMELAB_PREVIEW_ENABLED == 'true' && "
        "github.event.pull_request.head.repo.full_name == github.repository"
    )
    options = action_step(document, "preview", "pulumi/actions@")["with"]
    assert options["command"] == "preview"
    assert options["stack-name"] == "homelab"
    assert options["comment-on-pr"] is True
    assert options["edit-pr-comment"] is True
    assert options["diff"] is True
    assert options["suppress-outputs"] is True


def test_previews_of_one_pull_request_do_not_race() -> None:
    concurrency = load("preview.yml")["concurrency"]
    assert concurrency["group"] == "preview-${{ github.event.pull_request.number }}"
    assert concurrency["cancel-in-progress"] is True


def test_the_render_diff_runs_without_cluster_or_write_access_and_comments_separately() -> None:
    jobs = load("preview.yml")["jobs"]
    assert jobs["render"]["runs-on"] == "ubuntu-latest"
    assert jobs["render"]["permissions"] == {"contents": "read"}
    render_text = json.dumps(jobs["render"])
    assert "secrets." not in render_text
    assert "python -m homelab render --stack homelab" in render_text
    assert "python -m homelab render-diff" in render_text
    comment = jobs["render-comment"]
    assert comment["needs"] == "render"
    assert comment["permissions"] == {"pull-requests": "write"}
    # It runs no code from the pull request: no checkout.
    assert not any("checkout" in s.get("uses", "") for s in comment["steps"])
    assert "<!-- homelab-render-diff -->" in json.dumps(comment)


def test_main_is_deployed_behind_the_protected_environment_after_the_tests() -> None:
    document = load("deploy.yml")
    assert document["on"]["push"]["branches"] == ["main"]
    job = document["jobs"]["up"]
    assert job["environment"] == "homelab"
    assert job["needs"] == "test"
    assert "./scripts/test" in json.dumps(document["jobs"]["test"])
    options = action_step(document, "up", "pulumi/actions@")["with"]
    assert options["command"] == "up"
    assert options["stack-name"] == "homelab"
    assert options["suppress-outputs"] is True
    assert document["concurrency"] == {"group": "pulumi-homelab-up", "cancel-in-progress": False}


def test_drift_is_checked_on_a_schedule_and_fails_on_any_change() -> None:
    document = load("drift.yml")
    assert document["on"]["schedule"][0]["cron"]
    options = action_step(document, "drift", "pulumi/actions@")["with"]
    assert options["command"] == "preview"
    assert options["expect-no-changes"] is True
    assert options["refresh"] is True
    assert options["suppress-outputs"] is True


def test_secrets_reach_only_jobs_with_an_environment() -> None:
    for path in workflow_files():
        for name, job in load(path.name)["jobs"].items():
            if "secrets." in json.dumps(job):
                assert job.get("environment") in {"homelab", "homelab-preview"}, (path.name, name)


def _pinned_pulumi() -> str:
    pyproject = (engine.PROJECT_ROOT / "pyproject.toml").read_text()
    match = re.search(r'"pulumi==([^"]+)"', pyproject)
    assert match
    return match.group(1)


def test_the_pulumi_cli_in_ci_matches_the_pinned_sdk() -> None:
    for name in ("preview.yml", "deploy.yml", "drift.yml"):
        document = load(name)
        for _, step in steps(document):
            if step.get("uses", "").startswith("pulumi/actions@"):
                assert step["with"]["pulumi-version"] == _pinned_pulumi(), name


def test_ci_installs_the_uv_version_the_scripts_install() -> None:
    script = (engine.PROJECT_ROOT / "scripts" / "_lib.sh").read_text()
    match = re.search(r'"uv==([^"]+)"', script)
    assert match
    for path in workflow_files():
        for _, step in steps(load(path.name)):
            if step.get("uses", "").startswith("astral-sh/setup-uv@"):
                assert step["with"]["version"] == match.group(1), path.name


def test_every_job_that_runs_the_tests_fetches_the_reference_data_first() -> None:
    # In CI a missing reference fails the contract tests (tests/harness.py `reference`); a fork
    # has no other copy, so the job downloads it before the tests.
    jobs = 0
    for path in workflow_files():
        for name, job in load(path.name)["jobs"].items():
            runs = [step.get("run", "") for step in job.get("steps", [])]
            if "./scripts/test" not in runs:
                continue
            jobs += 1
            assert "./scripts/homelab fetch-reference" in runs, (path.name, name)
            fetch = runs.index("./scripts/homelab fetch-reference")
            assert fetch < runs.index("./scripts/test"), (path.name, name)
    assert jobs == 2  # test.yml, and deploy.yml before `up`


# --- switched on by the user, failing with a message that names what is missing ----------------

PULUMI_JOBS = [
    ("preview.yml", "preview", "HOMELAB_PREVIEW_ENABLED", "homelab-preview"),
    ("drift.yml", "drift", "HOMELAB_PREVIEW_ENABLED", "homelab-preview"),
    ("deploy.yml", "up", "HOMELAB_DEPLOY_ENABLED", "homelab"),
]


@pytest.mark.parametrize(("name", "job", "variable", "environment"), PULUMI_JOBS)
def test_jobs_that_need_the_lan_runner_are_off_until_a_repository_variable_enables_them(
    name: str, job: str, variable: str, environment: str
) -> None:
    definition = load(name)["jobs"][job]
    assert definition["runs-on"] == ["self-hosted", "homelab"]
    condition = definition["if"]
    assert condition.startswith(f"vars.{variable} == 'true'"), condition
    assert definition["environment"] == environment


@pytest.mark.parametrize(("name", "job", "variable", "environment"), PULUMI_JOBS)
def test_the_backend_secrets_are_checked_before_pulumi_actions_could_fall_back_to_the_cloud(
    name: str, job: str, variable: str, environment: str
) -> None:
    """pulumi/actions@v6.6.1 src/login.ts: an empty `cloud-url` runs `pulumi login` without a
    URL, i.e. Pulumi Cloud, which fails with an auth error; the check step comes first."""
    job_steps = load(name)["jobs"][job]["steps"]
    uses = [s.get("uses", "") for s in job_steps]
    action = next(i for i, u in enumerate(uses) if u.startswith("pulumi/actions@"))
    check = next(i for i, s in enumerate(job_steps) if "ci-check-backend" in s.get("run", ""))
    assert check < action
    assert job_steps[check]["run"] == f"./scripts/ci-check-backend {environment}"
    assert job_steps[check]["env"] == {
        "PULUMI_BACKEND_URL": "${{ secrets.PULUMI_BACKEND_URL }}",
        "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    }
    assert job_steps[action]["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"


def _check_backend(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(engine.PROJECT_ROOT / "scripts" / "ci-check-backend"), "homelab-preview"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_missing_backend_secret_fails_with_its_name_and_environment() -> None:
    result = _check_backend({"PULUMI_CONFIG_PASSPHRASE": "x"})
    assert result.returncode == 1
    assert result.stdout.startswith(
        "::error title=Missing secret PULUMI_BACKEND_URL::set the secret PULUMI_BACKEND_URL in "
        "the GitHub environment 'homelab-preview'"
    )
    assert "PULUMI_CONFIG_PASSPHRASE" not in result.stdout
    both = _check_backend({})
    assert both.stdout.count("::error title=Missing secret") == 2
    assert (
        _check_backend(
            {"PULUMI_BACKEND_URL": "minio:9000", "PULUMI_CONFIG_PASSPHRASE": "x"}
        ).returncode
        == 1
    )
    ok = _check_backend(
        {"PULUMI_BACKEND_URL": "file:///srv/state", "PULUMI_CONFIG_PASSPHRASE": "x"}
    )
    assert (ok.returncode, ok.stdout) == (
        0,
        "State backend: file:// (environment homelab-preview)\n",
    )
    # The URL itself is not echoed (it may carry credentials in its query string).
    assert "/srv/state" not in ok.stdout


@pytest.mark.parametrize(("name", "job"), [("preview.yml", "preview"), ("deploy.yml", "up")])
def test_previews_and_deploys_enforce_the_policy_pack(name: str, job: str) -> None:
    """The input is `policyPacks` (pulumi/actions@v6.6.1 action.yml; src/config.ts reads it with
    getMultilineInput and splits on commas), passed to the Automation API's --policy-pack."""
    options = action_step(load(name), job, "pulumi/actions@")["with"]
    assert options["policyPacks"] == "policies"
    assert (engine.PROJECT_ROOT / "policies" / "PulumiPolicy.yaml").is_file()


def test_the_pr_render_installs_the_pinned_helm_and_templates_the_charts() -> None:
    render_job = load("preview.yml")["jobs"]["render"]
    names = [s.get("uses", "").partition("@")[0] for s in render_job["steps"]]
    assert names.index("azure/setup-helm") < next(
        i for i, s in enumerate(render_job["steps"]) if "--charts" in s.get("run", "")
    )


def test_actionlint_knows_the_runner_label_and_the_variables() -> None:
    """rhysd/actionlint@v1.7.12 docs/config.md: `self-hosted-runner.labels` are the custom runner
    labels, `config-variables` the allowed `vars.*` (checked strictly once set); config.go reads
    .github/actionlint.yaml."""
    config = yaml.safe_load((engine.PROJECT_ROOT / ".github" / "actionlint.yaml").read_text())
    labels: set[str] = set()
    variables: set[str] = set()
    for path in workflow_files():
        text = path.read_text()
        variables |= set(re.findall(r"\bvars\.([A-Za-z_][A-Za-z0-9_]*)", text))
        for job in load(path.name)["jobs"].values():
            runs_on = job["runs-on"]
            if isinstance(runs_on, list) and "self-hosted" in runs_on:
                labels |= set(runs_on) - {"self-hosted"}
    assert labels == {"homelab"}
    assert set(config["self-hosted-runner"]["labels"]) == labels
    assert set(config["config-variables"]) == variables
