"""Every config key is documented where it is declared, and docs/configuration.md is made from
those declarations (scripts/config_reference.py): a field without a doc or a stale page fails here."""

from __future__ import annotations

from pathlib import Path

from mt_cli.core.config_reference import documented_fields, reference_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_config_field_has_a_doc() -> None:
    missing = [key for key, field_, _ in documented_fields() if not field_.metadata.get("doc", "").strip()]
    assert not missing, f"config fields without doc=: {missing}"


def test_the_reference_page_lists_every_key_and_is_up_to_date() -> None:
    text = reference_markdown()
    for key, _, _ in documented_fields():
        assert f"| `{key}` |" in text
    stale = "docs/configuration.md is stale: run python scripts/config_reference.py"
    assert PAGE.read_text(encoding="utf-8") == text, stale
