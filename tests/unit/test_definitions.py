"""SPEC §3: definitions files, and the one-line refusal of a bad one (file, place, fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections import DefinitionsError, default_definitions, load_definitions, parse_definitions
from projections.definitions import DAY_MICROS, DEFAULT_YAML, NO_INDEX
from schemas import EVENT_TYPES


def refusal(text: str) -> str:
    with pytest.raises(DefinitionsError) as caught:
        parse_definitions(text, "defs.yaml")
    message = str(caught.value)
    assert message.startswith("defs.yaml: ") and "\n" not in message
    return message


class TestValidDefinitions:
    def test_the_golden_default_file_equals_the_built_in_default(self, golden: Path) -> None:
        assert load_definitions(golden / "default-definitions.yaml") == default_definitions()

    def test_stages_and_steps_keep_their_order(self) -> None:
        defs = default_definitions()
        assert defs.stages == ("explore", "research", "contact", "negotiation", "purchase", "upsell")
        assert defs.steps == ("attention", "interest", "desire", "action")

    def test_a_stage_may_be_entered_by_several_types(self, golden: Path) -> None:
        alt = load_definitions(golden / "alt-definitions.yaml")
        assert alt.stage_of_type[EVENT_TYPES.index("ad_seen")] == alt.stage_of_type[EVENT_TYPES.index("content_read")] == 0

    def test_a_type_in_no_stage_or_step_maps_to_nothing(self, golden: Path) -> None:
        alt = load_definitions(golden / "alt-definitions.yaml")
        assert alt.step_of_type[EVENT_TYPES.index("upsell")] == NO_INDEX

    def test_stale_days_become_microseconds(self) -> None:
        assert default_definitions().sal_stale_after_micros == 14 * 86_400_000_000


class TestBadDefinitions:
    def test_an_unknown_event_type_names_the_place_and_the_choices(self) -> None:
        message = refusal(DEFAULT_YAML.replace("events: [upsell]", "events: [webinar]"))
        assert "pipeline.stages[5].events[0] (line 8)" in message and "'webinar'" in message and "ad_seen" in message

    def test_a_duplicate_stage_name_is_refused(self) -> None:
        message = refusal(DEFAULT_YAML.replace("name: upsell", "name: explore"))
        assert "pipeline.stages[5].name" in message and "used twice" in message

    def test_a_duplicate_step_name_is_refused(self) -> None:
        assert "funnel.steps[3].name" in refusal(DEFAULT_YAML.replace("name: action", "name: desire"))

    def test_a_type_in_two_stages_is_refused(self) -> None:
        message = refusal(DEFAULT_YAML.replace("events: [content_read]}", "events: [content_read, ad_seen]}", 1))
        assert "pipeline.stages[1].events[1]" in message and "already in stage 'explore'" in message

    def test_a_type_in_two_steps_is_refused(self) -> None:
        message = refusal(DEFAULT_YAML.replace("events: [purchase, upsell]", "events: [purchase, negotiation]"))
        assert "funnel.steps[3].events[1]" in message and "already in step 'desire'" in message

    @pytest.mark.parametrize("key", ["pipeline:", "funnel:", "qualification:"])
    def test_a_missing_section_is_refused(self, key: str) -> None:
        text = DEFAULT_YAML.replace(key, "unused_" + key[:-1] + ":")
        assert "missing key" in refusal(text) or "unknown key" in refusal(text)

    def test_a_missing_qualification_setting_is_refused_with_its_name(self) -> None:
        message = refusal(DEFAULT_YAML.replace("  sal_stale_after_days: 14\n", ""))
        assert "missing key 'sal_stale_after_days'" in message and "qualification" in message

    def test_a_bare_on_key_is_explained(self) -> None:
        message = refusal(DEFAULT_YAML.replace("events: [ad_seen]}", "on: [ad_seen]}", 1))
        assert "unknown key True" in message and "use `events`" in message

    def test_a_misspelled_key_is_refused(self) -> None:
        assert "unknown key 'stagse'" in refusal(DEFAULT_YAML.replace("stages:", "stagse:"))

    def test_an_empty_stage_list_is_refused(self) -> None:
        assert "pipeline.stages" in refusal("pipeline: {stages: []}\nfunnel: {steps: [{name: a, events: [ad_seen]}]}\nqualification: {mql_min_content_reads: 2, sal_stale_after_days: 14}\n")

    @pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
    def test_mql_min_content_reads_must_be_a_positive_integer(self, value: str) -> None:
        assert "mql_min_content_reads" in refusal(DEFAULT_YAML.replace("mql_min_content_reads: 2", f"mql_min_content_reads: {value}"))

    def test_a_stale_after_days_in_words_names_the_users_path_and_what_it_takes(self) -> None:
        message = refusal(DEFAULT_YAML.replace("sal_stale_after_days: 14", "sal_stale_after_days: two weeks"))
        assert message == (
            "defs.yaml: qualification.sal_stale_after_days (line 17): must be a number of days ≥ 0 (fractions allowed), "
            "got 'two weeks'; fix the value"
        )

    def test_a_negative_fraction_of_days_gets_the_same_sentence(self) -> None:
        message = refusal(DEFAULT_YAML.replace("sal_stale_after_days: 14", "sal_stale_after_days: -1.5"))
        assert "sal_stale_after_days (line 17): must be a number of days ≥ 0 (fractions allowed), got -1.5" in message

    def test_a_fraction_of_days_is_accepted(self) -> None:
        defs = parse_definitions(DEFAULT_YAML.replace("sal_stale_after_days: 14", "sal_stale_after_days: 1.5"), "defs.yaml")
        assert defs.sal_stale_after_micros == 36 * 3_600_000_000

    def test_a_fractional_content_read_count_says_it_takes_whole_numbers(self) -> None:
        assert "mql_min_content_reads (line 16): must be a whole number ≥ 1, got 1.5" in refusal(
            DEFAULT_YAML.replace("mql_min_content_reads: 2", "mql_min_content_reads: 1.5")
        )

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("sal_stale_after_days: 14", "sal_stale_after_days: yes"),
            ("sal_stale_after_days: 14", "sal_stale_after_days:"),
            (DEFAULT_YAML[: DEFAULT_YAML.index("funnel:")], "pipeline: [explore]\n"),
            ("- {name: explore,     events: [ad_seen]}", "- explore"),
            ("events: [ad_seen]}", "events: [1]}"),
            ("{name: explore,", "{name: 5,"),
            ("  mql_min_content_reads: 2\n  sal_stale_after_days: 14\n", ""),
        ],
    )
    def test_no_refusal_speaks_of_the_validators_internals(self, old: str, new: str) -> None:
        message = refusal(DEFAULT_YAML.replace(old, new, 1))
        for internal in (".int ", ".float ", "instance of", "_group", "_qualification", "input should"):
            assert internal not in message

    def test_broken_yaml_names_the_line(self) -> None:
        assert "line" in refusal("pipeline: [unclosed\n")

    def test_a_file_that_is_not_a_mapping_is_refused(self) -> None:
        assert "must be a mapping" in refusal("- a\n- b\n")

    def test_a_missing_file_is_refused_naming_it(self, tmp_path: Path) -> None:
        with pytest.raises(DefinitionsError, match=r"nope\.yaml: cannot read"):
            load_definitions(tmp_path / "nope.yaml")


class TestDigest:
    """SPEC §7: definitions are named by a digest of their parsed document, not of the file's bytes."""

    def test_key_order_whitespace_and_comments_change_nothing(self) -> None:
        reordered = """\
# the same definitions, written otherwise
identity: {ignored_ids: ["", "null", "undefined", "0", "anonymous", "guest"], max_anonymous_ids: 100}
conversion_window_days: 30
qualification: {sal_stale_after_days: 14,   mql_min_content_reads: 2}
funnel:
  steps:
    - {events: [ad_seen], name: attention}
    - {events: [content_read], name: interest}
    - {events: [contact_made, negotiation], name: desire}
    - {events: [purchase, upsell], name: action}
pipeline:
  stages:
    - {events: [ad_seen],      name: explore}
    - {events: [content_read], name: research}
    - {events: [contact_made], name: contact}
    - {events: [negotiation],  name: negotiation}
    - {events: [purchase],     name: purchase}
    - {events: [upsell],       name: upsell}
"""
        assert parse_definitions(reordered, "t").digest == default_definitions().digest

    def test_a_file_without_the_optional_keys_gets_their_defaults_but_its_own_digest(self) -> None:
        # SPEC §3: the digest is of the file as written; the built-in defaults include the optional keys
        without = DEFAULT_YAML.split("conversion_window_days")[0]
        defs, default = parse_definitions(without, "t"), default_definitions()
        assert (defs.conversion_window_micros, defs.identity) == (default.conversion_window_micros, default.identity)
        assert defs.digest != default.digest

    def test_any_change_of_meaning_changes_it(self) -> None:
        longer = DEFAULT_YAML.replace("sal_stale_after_days: 14", "sal_stale_after_days: 15")
        renamed = DEFAULT_YAML.replace("{name: explore,", "{name: browse,")
        digests = {parse_definitions(text, "t").digest for text in (DEFAULT_YAML, longer, renamed)}
        assert len(digests) == 3

    def test_it_is_twelve_hex_digits_of_sha256_over_canonical_json(self) -> None:
        import hashlib
        import json

        import yaml

        canonical = json.dumps(yaml.safe_load(DEFAULT_YAML), sort_keys=True, separators=(",", ":")).encode()
        assert default_definitions().digest == hashlib.sha256(canonical).hexdigest()[:12]


class TestWindowAndIdentityOptions:
    @pytest.mark.parametrize(("value", "says"), [("0", "got 0"), ("1.5", "got 1.5"), ("-3", "got -3"), ('"a month"', "got 'a month'")])
    def test_a_conversion_window_that_is_not_a_whole_number_of_days_is_refused_with_the_line_and_the_fix(self, value: str, says: str) -> None:
        text = DEFAULT_YAML.replace("conversion_window_days: 30", f"conversion_window_days: {value}")
        with pytest.raises(DefinitionsError) as refused:
            parse_definitions(text, "mine.yaml")
        message = str(refused.value)
        assert message.startswith("mine.yaml: conversion_window_days (line 18): must be a whole number of days ≥ 1") and says in message and "fix" in message

    def test_identity_options_are_checked_too(self) -> None:
        with pytest.raises(DefinitionsError, match=r"identity.max_anonymous_ids \(line 20\): must be a whole number ≥ 0"):
            parse_definitions(DEFAULT_YAML.replace("max_anonymous_ids: 100", "max_anonymous_ids: -1"), "mine.yaml")
        with pytest.raises(DefinitionsError, match=r"identity.ignored_ids\[1\] \(line 21\): must be an id"):
            parse_definitions(DEFAULT_YAML.replace('ignored_ids: ["", ', 'ignored_ids: ["", 7, '), "mine.yaml")
        with pytest.raises(DefinitionsError, match="unknown key 'max_ids'"):
            parse_definitions(DEFAULT_YAML.replace("max_anonymous_ids", "max_ids"), "mine.yaml")

    def test_the_window_and_identity_options_are_read(self) -> None:
        defs = parse_definitions(DEFAULT_YAML.replace("conversion_window_days: 30", "conversion_window_days: 7").replace("max_anonymous_ids: 100", "max_anonymous_ids: 2"), "t")
        assert (defs.conversion_window_micros, defs.max_anonymous_ids, "guest" in defs.ignored_ids) == (7 * DAY_MICROS, 2, True)
