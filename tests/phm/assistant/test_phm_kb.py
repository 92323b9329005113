"""The phm_kb management command and the demo knowledge base."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from phm.assistant import services
from phm.assistant.models import Document

pytestmark = pytest.mark.django_db


def test_load_folder_list_and_clear(tmp_path, capsys):
    (tmp_path / "a.md").write_text("# A\n\nBearing oil every 4000 h.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_text("code,description\nM001,Cracking\n")
    (tmp_path / "ignored.jpg").write_bytes(b"\xff\xd8")
    call_command("phm_kb", "load", str(tmp_path))
    assert "2 loaded, 0 unchanged, 0 failed" in capsys.readouterr().out
    call_command("phm_kb", "load", str(tmp_path / "a.md"))
    assert "0 loaded, 1 unchanged" in capsys.readouterr().out
    call_command("phm_kb", "list")
    assert "a.md" in capsys.readouterr().out
    call_command("phm_kb", "clear")
    assert "deleted 2 document(s)" in capsys.readouterr().out
    assert Document.objects.count() == 0


def test_load_reports_bad_files_and_keeps_the_good_ones(tmp_path, capsys):
    (tmp_path / "good.txt").write_text("Seal replacement every 3 years.")
    (tmp_path / "empty.md").write_text("")
    with pytest.raises(CommandError, match="2 file"):
        call_command("phm_kb", "load", str(tmp_path), str(tmp_path / "missing.pdf"))
    assert "empty.md: the file is empty" in capsys.readouterr().err
    assert list(Document.objects.values_list("name", flat=True)) == ["good.txt"]


def test_demo_notes_load_without_errors_and_idempotently():
    result = services.load_demo_kb(include_assetopsbench=False)
    assert result["errors"] == [] and len(result["loaded"]) == len(list(services.DEMO_KB_DIR.iterdir()))
    assert Document.objects.get(name="P-101_raw_water_pump_1.md").equipment == "P-101"
    again = services.load_demo_kb(include_assetopsbench=False)
    assert again["loaded"] == [] and again["unchanged"] == len(result["loaded"])
