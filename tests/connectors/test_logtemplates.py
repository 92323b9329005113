from __future__ import annotations

import json

import pytest

from connectors.logtemplates import WILDCARD, MinerSettings, TemplateMiner


def ids(miner: TemplateMiner, lines: list[str]) -> list[str]:
    return [miner.add(line).template_id for line in lines]


def fits(template: str, line: str, miner: TemplateMiner) -> bool:
    """The template still describes the line: same length, every constant token equal."""
    tokens = [miner._token(text).masked for text in line.split()]
    parts = template.split()
    return len(parts) == len(tokens) and all(p == WILDCARD or p.endswith(WILDCARD) or p == t for p, t in zip(parts, tokens))


def test_identifiers_share_a_template_and_keep_their_first_literal_until_a_second_value():
    miner = TemplateMiner()
    first = miner.add("pump P1 pressure 1.5 bar from 10.0.0.1")
    assert miner.template(first.template_id) == "pump P1 pressure <NUM> bar from <IP>"
    assert first.parameters == ["1.5", "10.0.0.1"]
    second = miner.add("pump P2 pressure 2.5 bar from 10.0.0.2")
    assert second.template_id == first.template_id
    assert miner.template(first.template_id) == "pump <*> pressure <NUM> bar from <IP>"
    assert second.parameters == ["P2", "2.5", "10.0.0.2"]


def test_character_classes_make_values_without_digits_variables_too():
    miner = TemplateMiner()
    lines = [
        "login from host.example.org failed",
        "login from gw.plant.local failed",
        "config 'pumps.yaml' loaded in 250ms",
        "config 'valves.yaml' loaded in 3s",
        "Alarm raised at Mon Jun 14 10:00:01 2024",
        "Alarm raised at Tue Jul 15 11:00:01 2024",
        "sent 12 KB",
        "sent 3 MB",
        "session rhost= user=ops",
        "session rhost=scada.plant.local user=ops",
    ]
    got = ids(miner, lines)
    assert got[0] == got[1] and got[2] == got[3] and got[4] == got[5] and got[6] == got[7] and got[8] == got[9]
    assert len(set(got)) == 5
    assert miner.template(got[8]) == "session rhost=<*> user=ops"


def test_different_words_stay_apart_until_a_third_word_shows_the_position_is_a_variable():
    miner = TemplateMiner()
    startup, shutdown = ids(miner, ["service pump startup succeeded", "service pump shutdown succeeded"])
    assert startup != shutdown
    (restart,) = ids(miner, ["service pump restart succeeded"])
    # The three merge into the oldest; the other ids stay as aliases and keep their lines.
    assert restart == startup
    assert miner.resolve(shutdown) == int(startup)
    assert miner.template(shutdown) == miner.template(startup) == "service pump <*> succeeded"
    assert miner.aliases() == {shutdown: startup}
    assert ids(miner, ["service pump reload succeeded", "service pump shutdown succeeded"]) == [startup, startup]


def test_the_first_token_and_lines_without_constant_context_never_merge_by_words():
    miner = TemplateMiner()
    daemons = ids(miner, ["cupsd startup succeeded", "klogd startup succeeded", "syslogd startup succeeded"])
    assert len(set(daemons)) == 3
    loose = ids(miner, ["generating core.1", "auxiliary x12", "storing y34"])
    assert len(set(loose)) == 3


def test_only_the_first_line_of_a_multi_line_record_is_mined():
    miner = TemplateMiner()
    a = miner.add("drive fault F0001\n  at drive.py:10\n  at main.py:3")
    b = miner.add("drive fault F0002\n  at other.py:99")
    assert a.template_id == b.template_id
    assert miner.template(a.template_id) == "drive fault <*>"


def test_state_round_trips_through_json_and_ids_keep_their_meaning_after_a_restart():
    before = [
        "motor M1 started after 3 s",
        "valve V1 opened by alice",
        "valve V2 opened by bob",
        "pump P1 tripped: overcurrent 41.5 A",
        "valve V3 opened by carol",  # third user: merges the valve templates
        "motor M2 started after 4 s",
    ]
    miner = TemplateMiner()
    first_ids = ids(miner, before)
    texts = {template_id: miner.template(template_id) for template_id in first_ids}
    restored = TemplateMiner.from_state(json.loads(json.dumps(miner.state())))
    # The same lines get the same ids (resolved through merges), and the texts are the same.
    assert [str(restored.resolve(i)) for i in ids(restored, before)] == [str(miner.resolve(i)) for i in first_ids]
    assert {i: restored.template(i) for i in first_ids} == texts
    # New lines never take an old id, and every old id still describes the lines it was given.
    after = ids(restored, ["compressor C1 surge detected", "pump P2 tripped: overcurrent 39.0 A", "valve V9 opened by dave"])
    assert int(after[0]) > max(int(i) for i in first_ids)
    for template_id, line in zip(first_ids, before):
        assert fits(restored.template(template_id), line, restored), (template_id, line)


def test_memory_stays_bounded_and_dropped_ids_are_not_reused():
    miner = TemplateMiner(MinerSettings(max_templates=10, max_tokens=50))
    got = ids(miner, [f"event{chr(97 + i % 26)}{chr(97 + i // 26)} happened" for i in range(200)])
    assert len(miner.live_templates()) <= 10
    assert len(miner._tokens) <= 50
    assert got == [str(i) for i in range(1, 201)]


def test_bad_settings_and_states_are_refused():
    with pytest.raises(ValueError, match="word_values"):
        MinerSettings(word_values=1)
    with pytest.raises(ValueError, match="Drain3"):
        MinerSettings.from_dict({"sim_th": 0.4})
    with pytest.raises(ValueError, match="unknown miner settings"):
        MinerSettings.from_dict({"simth": 0.4})
    with pytest.raises(ValueError, match="version"):
        TemplateMiner.from_state({"version": 99})
    with pytest.raises(ValueError, match="malformed"):
        TemplateMiner.from_state({"version": 1, "next_id": 2, "templates": [[1, ["a"]]]})


def test_very_long_lines_are_mined_on_a_bounded_number_of_tokens():
    from connectors.logtemplates import MAX_TOKENS

    miner = TemplateMiner()
    words = " ".join(f"w{i}x" for i in range(500))
    a = miner.add("dump begins " + words)
    b = miner.add("dump begins " + words.replace("w499x", "zzz"))
    assert a.template_id == b.template_id
    assert len(miner.template(a.template_id).split()) == MAX_TOKENS
    assert b.parameters[-1].endswith("zzz") and len(miner._buckets) == 0


SPLIT = MinerSettings(split_min_lines=60, split_min_count=20)


def _two_populations(miner: TemplateMiner, rounds: int) -> list[str]:
    """'valve <*> closed' merged from three words, then two states carry all the traffic."""
    got = ids(miner, ["valve V1 opened closed", "valve V1 stuck closed", "valve V1 jammed closed"])
    assert got[2] == got[0] and miner.resolve(got[1]) == int(got[0]) and miner.template(got[0]) == "valve V1 <*> closed"
    for i in range(rounds):
        got += ids(miner, [f"valve V{i % 3} opened closed", f"valve V{i % 3} stuck closed"])
    return got


def test_a_merged_word_position_whose_values_stay_a_small_frequent_closed_set_splits_into_new_ids():
    miner = TemplateMiner(SPLIT)
    got = _two_populations(miner, 80)
    parent = got[0]
    assert miner.stats.split == 2
    children = {miner.template(tid): tid for tid in set(got[3:]) - {parent}}
    assert set(children) == {"valve <*> opened closed", "valve <*> stuck closed"}
    # New ids, never reused; the parent keeps its id and text for the lines it covered and for rare values.
    assert all(int(tid) > 2 for tid in children.values())  # ids 1 and 2 were taken before the split
    assert miner.template(parent) == "valve <*> <*> closed"
    assert miner.resolve(parent) == int(parent)
    assert {miner.templates[int(tid)].split_from for tid in children.values()} == {int(parent)}
    assert miner.add("valve V2 jammed closed").template_id == parent
    assert miner.add("valve V2 opened closed").template_id == children["valve <*> opened closed"]
    assert miner.splits() == {tid: parent for tid in children.values()}


def test_no_split_without_enough_evidence_or_when_the_set_is_open():
    few = TemplateMiner(SPLIT)
    _two_populations(few, 20)  # 40 lines since the merge: below split_min_lines
    assert few.stats.split == 0
    open_set = TemplateMiner(SPLIT)
    ids(open_set, ["valve V1 opened closed", "valve V1 stuck closed", "valve V1 jammed closed"])
    for i in range(200):  # many different words: a real variable, never split
        ids(open_set, [f"valve V1 w{chr(97 + i % 26)}x closed"])
    assert open_set.stats.split == 0
    assert len(open_set.live_templates()) == 1


def test_the_default_split_evidence_is_conservative_and_severity_words_never_split():
    miner = TemplateMiner()
    got = _two_populations(miner, 80)  # 160 lines: far below the default evidence
    assert miner.stats.split == 0 and set(got[3:]) == {got[0]}
    demo = TemplateMiner(SPLIT)
    for i in range(300):  # the level repeated in the text is a value, not a merged word: stays one template
        level = "warning" if i % 2 else "alarm"
        demo.add(f"Vibration {4 + i % 5}.1 mm/s above {level} limit {4.5 if i % 2 else 7.1}")
    assert demo.stats.split == 0 and len(demo.live_templates()) == 1


def test_split_templates_and_their_evidence_survive_a_state_round_trip():
    miner = TemplateMiner(SPLIT)
    got = _two_populations(miner, 80)
    restored = TemplateMiner.from_state(json.loads(json.dumps(miner.state())), SPLIT)
    assert restored.splits() == miner.splits()
    assert restored.add("valve V9 stuck closed").template_id == miner.add("valve V9 stuck closed").template_id
    assert restored.add("valve V9 jammed closed").template_id == got[0]
    # Evidence half-way is kept too: a restart does not start the count again.
    half = TemplateMiner(SPLIT)
    _two_populations(half, 25)
    resumed = TemplateMiner.from_state(json.loads(json.dumps(half.state())), SPLIT)
    for i in range(10):
        ids(resumed, [f"valve V{i % 3} opened closed", f"valve V{i % 3} stuck closed"])
    assert resumed.stats.split == 2


def test_version_1_states_still_load():
    miner = TemplateMiner()
    ids(miner, ["service pump startup succeeded", "service pump shutdown succeeded", "service pump restart succeeded"])
    state = miner.state()
    old = {"version": 1, "next_id": state["next_id"], "clock": state["clock"], "templates": [row[:6] for row in state["templates"]]}
    restored = TemplateMiner.from_state(old)
    assert restored.add("service pump reload succeeded").template_id == "1"
