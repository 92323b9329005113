"""Knowledge-base services on SQLite and PostgreSQL: add, replace, refuse, delete, retrieve, filter."""

from __future__ import annotations

import pytest

from phm.assistant import retrieval, services
from phm.assistant.models import Chunk, Document
from tests.conftest import ALL_DATABASES, make_plant
from tests.phm.assistant.helpers import make_pdf

NOTE = b"""---
equipment: P-101
doc_type: maintenance_note
---
# P-101 pump

## Bearings
Drive-end bearing 6309-2Z/C3, oil ISO VG 68 changed every 4000 hours.

## Seal
Cartridge mechanical seal; leakage under 5 drops per minute.
"""
CHILLER = b"# Chiller\n\n## Condenser\nClean the condenser tubes every 12 months.\n"

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


def kb_state(using: str) -> list[tuple[str, int, str]]:
    return sorted(Chunk.objects.using(using).values_list("document__name", "ordinal", "text"))


def test_markdown_upload_stores_chunks_with_equipment_scope(db_alias):
    make_plant(db_alias)
    outcome = services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    document = outcome.document
    assert (document.doc_type, document.equipment, document.equipment_type, document.chunk_count) == ("maintenance_note", "P-101", "pump", 2)
    chunk = Chunk.objects.using(db_alias).get(document=document, ordinal=0)
    assert chunk.location == "P-101 pump > Bearings" and chunk.equipment == "P-101" and chunk.equipment_type == "pump"
    assert len(bytes(chunk.embedding)) == 384 * 4


def test_uploaded_text_is_retrievable(db_alias):
    services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    services.ingest_document(name="chiller.md", content=CHILLER, using=db_alias)
    found = retrieval.retrieve("how often are condenser tubes cleaned", k=1, using=db_alias)
    assert found[0].chunk.document.name == "chiller.md"


def test_reupload_of_changed_file_replaces_its_chunks(db_alias):
    services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    assert retrieval.retrieve("mechanical seal leakage drops", k=1, using=db_alias)[0].chunk.location.endswith("Seal")
    changed = NOTE.replace(b"## Seal\nCartridge mechanical seal; leakage under 5 drops per minute.\n", b"## Impeller\nImpeller nut torque 250 N.m.\n")
    outcome = services.ingest_document(name="p101.md", content=changed, using=db_alias)
    assert outcome.replaced
    assert Document.objects.using(db_alias).count() == 1
    locations = [c.chunk.location for c in retrieval.retrieve("mechanical seal leakage drops impeller", k=5, using=db_alias)]
    assert locations and not any(loc.endswith("Seal") for loc in locations)
    assert any(loc.endswith("Impeller") for loc in locations)


def test_duplicate_uploads_are_refused_and_change_nothing(db_alias):
    services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    before = kb_state(db_alias)
    with pytest.raises(services.DuplicateDocument, match="already in the knowledge base"):
        services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    with pytest.raises(services.DuplicateDocument, match="identical to 'p101.md'"):
        services.ingest_document(name="copy.md", content=NOTE, using=db_alias)
    assert kb_state(db_alias) == before


def image_only_pdf() -> bytes:
    from io import BytesIO

    from pypdf import PdfWriter

    writer, buffer = PdfWriter(), BytesIO()
    writer.add_blank_page(width=100, height=100)
    writer.write(buffer)
    return buffer.getvalue()


def encrypted_pdf() -> bytes:
    from io import BytesIO

    from pypdf import PdfReader, PdfWriter

    writer, buffer = PdfWriter(), BytesIO()
    for page in PdfReader(BytesIO(make_pdf(["Confidential procedure"]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("drawing.dwg", b"AC1032", "unsupported file type"),
        ("scan.pdf", image_only_pdf, "no text layer"),
        ("locked.pdf", encrypted_pdf, "the PDF is encrypted"),
        ("p101.md", b"", "empty"),  # also an emptied re-upload of a stored file: the old version stays
        ("codes.csv", b"code,description\nM001,Cracking\nM002,Fracture,extra\n", "row 3 has 3 cells"),
        ("photo.jpg", b"\xff\xd8\xff\xe0 JFIF", "unsupported file type '.jpg'"),
        ("", NOTE, "the file has no name"),
    ],
)
def test_failed_upload_leaves_the_knowledge_base_as_it_was(db_alias, name, content, reason):
    services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    before = kb_state(db_alias)
    with pytest.raises(services.KnowledgeBaseError, match=reason):
        services.ingest_document(name=name, content=content() if callable(content) else content, using=db_alias)
    assert kb_state(db_alias) == before


def test_oversized_upload_is_refused(db_alias, settings):
    settings.PHM_KB_MAX_UPLOAD_BYTES = 100
    with pytest.raises(services.DocumentTooBig, match="over the 100 byte limit .PHM_KB_MAX_UPLOAD_BYTES"):
        services.ingest_document(name="big.md", content=b"# Big\n\n" + b"word " * 100, using=db_alias)
    assert kb_state(db_alias) == []


def test_a_replacement_that_fails_while_writing_keeps_the_old_version(db_alias, monkeypatch):
    """The failure comes inside the write transaction, after the old chunks were deleted: the
    rollback must bring them back, searchable as before."""
    from django.db import DatabaseError

    services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    before = kb_state(db_alias)
    old_sha = Document.objects.using(db_alias).get(name="p101.md").sha256

    def fail(using: str) -> None:
        raise DatabaseError("disk full")

    monkeypatch.setattr(services, "_bump_revision", fail)
    with pytest.raises(DatabaseError, match="disk full"):
        services.ingest_document(name="p101.md", content=NOTE.replace(b"4000 hours", b"3000 hours"), using=db_alias)
    assert kb_state(db_alias) == before
    assert Document.objects.using(db_alias).get(name="p101.md").sha256 == old_sha
    assert "4000 hours" in retrieval.retrieve("bearing oil hours", k=1, using=db_alias)[0].chunk.text


def test_pdf_and_csv_locations(db_alias):
    services.ingest_document(name="manual.pdf", content=make_pdf(["Intro page", "Seal replacement every 3 years"]), using=db_alias)
    services.ingest_document(name="codes.csv", content=b"code,description\nM001,Cracking\nM005,Misalignment\n", using=db_alias)
    locations = dict(Chunk.objects.using(db_alias).values_list("text", "location"))
    assert locations["Seal replacement every 3 years"] == "page 2"
    assert locations["codes — code: M005; description: Misalignment"] == "row 3"
    assert Document.objects.using(db_alias).get(name="codes.csv").doc_type == "reference"


def test_delete_removes_document_from_retrieval(db_alias):
    services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    outcome = services.ingest_document(name="chiller.md", content=CHILLER, using=db_alias)
    assert retrieval.retrieve("condenser tubes", k=1, using=db_alias)[0].chunk.document.name == "chiller.md"
    services.delete_document(document=outcome.document, using=db_alias)
    assert all(r.chunk.document.name != "chiller.md" for r in retrieval.retrieve("condenser tubes", k=5, using=db_alias))
    assert services.clear_knowledge_base(using=db_alias) == 1
    assert retrieval.retrieve("bearing", using=db_alias) == []


def test_index_of_another_process_catches_up_incrementally(db_alias):
    services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    other = retrieval.KnowledgeIndex(db_alias)  # what a second worker process holds
    other.sync()
    assert len(other.index) == 2
    services.ingest_document(name="chiller.md", content=CHILLER, using=db_alias)
    hits = other.search("condenser tubes", k=1)
    assert len(other.index) == 3
    assert Chunk.objects.using(db_alias).get(pk=hits[0].key).document.name == "chiller.md"


def test_equipment_filter_excludes_other_equipment(db_alias):
    make_plant(db_alias)
    services.ingest_document(name="p101.md", content=NOTE, using=db_alias)
    services.ingest_document(name="other.md", content=b"---\nequipment: P-999\n---\n# P-999\n\nBearing oil ISO VG 46 every 2000 hours.\n", using=db_alias)
    from models.retrieval import ChunkFilter

    found = retrieval.retrieve("bearing oil", k=5, chunk_filter=ChunkFilter.of(equipment=["P-101"], equipment_types=["pump"]), using=db_alias)
    assert found and {r.chunk.document.name for r in found} == {"p101.md"}


def test_unknown_equipment_type_is_refused(db_alias):
    with pytest.raises(services.KnowledgeBaseError, match="unknown equipment type 'spaceship'"):
        services.ingest_document(name="x.md", content=b"# X\n\ntext", equipment_type="spaceship", using=db_alias)
