"""Chunking, tokenization, fusion and the hybrid index of models.retrieval."""

from __future__ import annotations

import io

import pytest

from models.retrieval import ChunkFilter, DocumentError, HybridIndex, IndexEntry, UnsupportedFileType, parse_document, reciprocal_rank_fusion
from models.retrieval.chunking import MAX_CHUNK_CHARS
from models.retrieval.text import tokenize
from tests.phm.assistant.helpers import hashed_bag_of_words, make_pdf

NOTE = b"""---
equipment: P-101
doc_type: maintenance_note
---
# P-101 Raw water pump

## Bearings
Drive-end bearing 6309-2Z/C3. Change the oil every 4000 hours.

## Torque values
Casing cover bolts M16: 180 N.m.
"""


# --- chunking ------------------------------------------------------------------------------------------


def test_markdown_chunks_follow_headings_and_carry_the_heading_path():
    parsed = parse_document("p101.md", NOTE)
    assert [c.location for c in parsed.chunks] == ["P-101 Raw water pump > Bearings", "P-101 Raw water pump > Torque values"]
    assert parsed.chunks[1].text.startswith("P-101 Raw water pump > Torque values\n")
    assert "180 N.m" in parsed.chunks[1].text


def test_front_matter_becomes_document_metadata_not_text():
    parsed = parse_document("p101.md", NOTE)
    assert parsed.metadata == {"equipment": "P-101", "doc_type": "maintenance_note"}
    assert parsed.title == "P-101 Raw water pump"
    assert all("doc_type" not in c.text for c in parsed.chunks)


def test_long_sections_are_split_below_the_chunk_limit():
    body = "# Manual\n\n" + "\n\n".join(f"Paragraph {i}: " + "lubricate the bearing. " * 20 for i in range(12))
    chunks = parse_document("manual.md", body.encode()).chunks
    assert len(chunks) > 3
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    assert "Paragraph 11" in chunks[-1].text


def test_html_headings_tables_and_scripts():
    html = b"""<html><head><title>t</title><script>var x = 'secret';</script></head><body>
    <h1>Torque values</h1><p>Tighten crosswise.</p><h2>Bolts</h2>
    <table><tr><th>Size</th><th>Torque</th></tr><tr><td>M20</td><td>410 N&middot;m</td></tr></table></body></html>"""
    chunks = parse_document("torque.html", html).chunks
    assert chunks[-1].location == "Torque values > Bolts"
    assert "| M20 | 410 N·m |" in chunks[-1].text
    assert not any("secret" in c.text for c in chunks)


def test_pdf_chunks_carry_their_page():
    pdf = make_pdf(["Pump manual\nGeneral description of the pump.", "Maintenance\nReplace the seal every 3 years."])
    chunks = parse_document("manual.pdf", pdf).chunks
    assert [c.page for c in chunks] == [1, 2]
    assert chunks[1].location == "page 2"
    assert "Replace the seal" in chunks[1].text


def test_image_only_pdf_is_refused_with_reason():
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(DocumentError, match="scan.pdf: the PDF has no text layer"):
        parse_document("scan.pdf", buffer.getvalue())


def test_encrypted_pdf_is_refused_with_reason():
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf(["Confidential procedure"]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(DocumentError, match="locked.pdf: the PDF is encrypted"):
        parse_document("locked.pdf", buffer.getvalue())


def test_corrupt_pdf_is_refused_with_reason():
    with pytest.raises(DocumentError, match="broken.pdf: not a readable PDF"):
        parse_document("broken.pdf", b"%PDF-1.4\nthis is not a pdf")


def test_csv_one_chunk_per_row_with_fields_and_equipment():
    table = b"wo_id,equipment_name,description,actual_finish\nWO1,Chiller 13,Oil analysis,4/6/16 14:00\n\nWO2,Chiller 7,Tube cleaning,3/23/15 19:30\n"
    chunks = parse_document("work_orders.csv", table).chunks
    assert [c.location for c in chunks] == ["row 2", "row 4"]
    assert chunks[0].fields == {"wo_id": "WO1", "equipment_name": "Chiller 13", "description": "Oil analysis", "actual_finish": "4/6/16 14:00"}
    assert chunks[0].equipment == "Chiller 13"
    assert "actual_finish: 4/6/16 14:00 (April 2016)" in chunks[0].text


def test_csv_row_with_extra_cells_is_refused_with_row_number():
    with pytest.raises(DocumentError, match="row 3 has 3 cells"):
        parse_document("codes.csv", b"code,description\nM001,Cracking\nM002,Fracture,extra\n")


@pytest.mark.parametrize("name", ["drawing.dwg", "photo.jpg", "README"])
def test_unsupported_file_types_are_refused(name):
    with pytest.raises(UnsupportedFileType, match="unsupported file type"):
        parse_document(name, b"content")


def test_empty_and_binary_files_are_refused():
    with pytest.raises(DocumentError, match="empty"):
        parse_document("notes.txt", b"")
    with pytest.raises(DocumentError, match="binary"):
        parse_document("notes.txt", b"\x00\x01\x02text")


# --- tokenization and fusion ---------------------------------------------------------------------------


def test_tokenizer_keeps_identifiers_whole_and_in_parts():
    tokens = tokenize("Why is P-101 alarming? Check RUL0012 and bearings.")
    assert {"p-101", "p101", "101", "rul0012", "alarm", "bear"} <= set(tokens)
    assert "why" not in tokens and "is" not in tokens


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "a"]])
    assert [item for item, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_weighted_fusion_lets_the_heavier_ranking_lead():
    bm25, dense = ["exact", "near"], ["near", "paraphrase", "exact"]
    assert [item for item, _ in reciprocal_rank_fusion([bm25, dense])][0] == "near"
    weighted = reciprocal_rank_fusion([bm25, dense], weights=[1.0, 0.2])
    assert [item for item, _ in weighted] == ["exact", "near", "paraphrase"]
    assert weighted[0][1] == pytest.approx(1 / 61 + 0.2 / 63)
    with pytest.raises(ValueError, match="one non-negative weight per ranking"):
        reciprocal_rank_fusion([bm25, dense], weights=[1.0])


def test_hybrid_index_uses_its_dense_weight_unless_a_search_overrides_it():
    index = HybridIndex(embed=hashed_bag_of_words, dense_weight=0.0)
    index.add([IndexEntry(1, "alpha beta"), IndexEntry(2, "alpha gamma delta epsilon")])
    bm25_order = [h.key for h in index.search("alpha beta", k=2, mode="bm25")]
    assert [h.key for h in index.search("alpha beta", k=2)] == bm25_order
    assert index.search("alpha beta", k=2, dense_weight=1.0)[0].score > index.search("alpha beta", k=2)[0].score


# --- hybrid index ----------------------------------------------------------------------------------------


def make_index() -> HybridIndex:
    index = HybridIndex(embed=hashed_bag_of_words)
    index.add([
        IndexEntry(1, "P-101 bearing oil change every 4000 hours", equipment="P-101", equipment_type="pump"),
        IndexEntry(2, "P-201 bearing grease every 2000 hours", equipment="P-201", equipment_type="pump"),
        IndexEntry(3, "Cavitation: suction pressure drop and noise", equipment_type="pump"),
        IndexEntry(4, "Chiller condenser tube cleaning every 12 months", equipment_type="chiller"),
        IndexEntry(5, "Laser alignment tolerances for couplings"),
    ])
    return index


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_each_mode_finds_the_matching_chunk_first(mode):
    hits = make_index().search("condenser tube cleaning", k=3, mode=mode)
    assert hits[0].key == 4


def test_bm25_scores_are_zero_for_chunks_without_query_terms():
    hits = make_index().search("condenser tube cleaning", k=5, mode="hybrid")
    by_key = {h.key: h for h in hits}
    assert by_key[4].bm25 > 0
    assert all(h.bm25 == 0 for h in hits if h.key != 4)


def test_filter_keeps_the_equipment_its_type_and_general_chunks():
    hits = make_index().search("bearing hours", k=5, chunk_filter=ChunkFilter.of(equipment=["P-101"], equipment_types=["pump"]))
    assert {h.key for h in hits} == {1, 3, 5}


def test_filter_without_general_chunks():
    hits = make_index().search("every", k=5, mode="bm25", chunk_filter=ChunkFilter.of(equipment_types=["chiller"], include_general=False))
    assert [h.key for h in hits] == [4]


def test_removed_chunks_are_never_returned_and_replacing_a_key_updates_it():
    index = make_index()
    assert index.remove([4]) == 1
    assert 4 not in {h.key for h in index.search("condenser tube cleaning", k=5)}
    index.add([IndexEntry(1, "P-101 mechanical seal replacement")])
    assert index.search("mechanical seal", k=1, mode="bm25")[0].key == 1
    assert len(index) == 4


def test_empty_index_and_bad_arguments():
    index = HybridIndex(embed=hashed_bag_of_words)
    assert index.search("anything") == []
    with pytest.raises(ValueError, match="mode"):
        make_index().search("x", mode="fuzzy")


def test_minilm_matches_meaning_without_shared_words():
    """The real packaged embedder: a paraphrase with no word in common still ranks first in dense mode."""
    index = HybridIndex()
    index.add([
        IndexEntry(1, "Replace worn rolling element bearings when vibration exceeds the alarm limit."),
        IndexEntry(2, "The chilled water supply temperature setpoint is 7 degrees Celsius."),
        IndexEntry(3, "Clean the suction strainer basket every autumn."),
    ])
    hits = index.search("How cold should the water leaving the refrigeration unit be?", k=3, mode="dense")
    assert hits[0].key == 2
    assert hits[0].dense > 0.3
