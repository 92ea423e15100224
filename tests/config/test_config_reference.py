"""The README's config reference is exactly what the model generates, and it documents the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import SECRET_KEYS, top_level_keys
from homelab import config_reference
from homelab.config_reference import END, README, START, generate, iter_fields, replace_section


def test_readme_section_equals_the_generated_reference() -> None:
    # If this fails: python -m homelab.config_reference --write
    text = README.read_text()
    assert text.count(START) == 1
    assert text.count(END) == 1
    assert config_reference.current_section(text) == generate()


def test_every_top_level_key_has_a_heading_and_secrets_are_marked() -> None:
    reference = generate()
    for key in top_level_keys():
        secret = " (secret)" if key in SECRET_KEYS else ""
        assert f"### `homelab:{key}`{secret}\n" in reference
    for key in SECRET_KEYS:
        assert f"`./scripts/pulumi config set --secret homelab:{key} <value>`" in reference


def test_nested_fields_appear_with_their_type_default_and_description() -> None:
    reference = generate()
    # A list item field, a nested object field and a constrained integer, from the model itself.
    assert "| `nodes[].hostname` | DNS label | required | Node hostname (a DNS label). |" in (
        reference
    )
    assert "| `derp.stunPort` | integer (1–65535) | `3478` | UDP port of STUN. |" in reference
    assert "| `[].visibility` | `private` or `public` | `private` |" in reference


def test_every_field_has_a_description() -> None:
    assert [f.path for f in iter_fields() if not f.description] == []


def test_every_field_of_the_model_is_in_the_reference() -> None:
    reference = generate()
    for doc in iter_fields():
        if doc.depth == 0:
            assert f"`homelab:{doc.path}`" in reference
            top = doc.path
        else:
            # Rows name the key relative to its top-level key: 'nodes[].ip', '[].name'.
            key = doc.path.removeprefix(top).removeprefix(".")
            assert f"| `{key}` |" in reference, doc.path


def test_write_replaces_only_the_marked_section() -> None:
    text = f"# Title\n\nIntro.\n\n{START}\nold\n{END}\n\n## After\n"
    updated = replace_section(text, "new\n")
    assert updated == f"# Title\n\nIntro.\n\n{START}\nnew\n{END}\n\n## After\n"
    assert config_reference.current_section(updated) == "new\n"


def test_write_refuses_a_readme_without_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        replace_section("# no markers\n", "body")


def test_check_reports_a_stale_readme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(f"{START}\nstale\n{END}\n")
    monkeypatch.setattr(config_reference, "README", stale)
    assert config_reference.main(["--check"]) == 1
    assert config_reference.main(["--write"]) == 0
    assert config_reference.main(["--check"]) == 0
    assert config_reference.current_section(stale.read_text()) == generate()
