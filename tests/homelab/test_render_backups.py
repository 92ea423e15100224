"""The render summary says whether anything is backed up, and where to (never with credentials)."""

from __future__ import annotations

from homelab.render import summary_markdown
from tests.harness import homelab_render, render_stack

SECRET_KEY = "SENTINEL-render-backup-secret"


def backups_section(summary: str) -> str:
    _, found, rest = summary.partition("\n## Backups\n")
    assert found, "no Backups section in the summary"
    return rest.partition("\n## ")[0]


def test_a_stack_without_a_target_renders_and_says_nothing_is_backed_up() -> None:
    render = homelab_render()
    assert render.outputs["backupTarget"] == "none"
    assert "No backup is configured" in backups_section(summary_markdown(render))


def test_a_stack_with_a_target_names_it_without_credentials() -> None:
    s3 = {"endpoint": "https://minio.lan:9000", "bucket": "bkt", "accessKeyId": "writer"}
    render = render_stack(
        overrides={"backups": {"s3": s3}}, secrets={"backupSecretAccessKey": SECRET_KEY}
    )
    assert render.outputs["backupTarget"] == "https://minio.lan:9000/bkt/homelab"
    assert not render.output_is_secret("backupTarget")
    summary = summary_markdown(render)
    section = backups_section(summary)
    assert "https://minio.lan:9000/bkt/homelab" in section
    assert "No backup" not in section
    assert SECRET_KEY not in summary
