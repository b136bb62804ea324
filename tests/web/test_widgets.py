"""A select whose HTML is kept shows, on every view, what a fresh select would."""

from django import forms

from portal.web.forms import KeptChoiceField
from portal.web.widgets import KeptSelect

CHOICES = [("", "All"), ("Fruit", [("apple", "Apple"), ("pear", "Pear & co")]), ("nut", "Nut")]


class Kept(forms.Form):
    kind = forms.ChoiceField(choices=CHOICES, required=False, widget=KeptSelect)


class Fresh(forms.Form):
    kind = forms.ChoiceField(choices=CHOICES, required=False)


def test_a_kept_select_marks_the_value_of_each_form_as_a_fresh_one_does():
    for data in [None, {"kind": "pear"}, {"kind": "nut"}, {"kind": ""}, {"kind": "pear"}]:
        kept, fresh = Kept(data), Fresh(data)
        assert str(kept["kind"]) == str(fresh["kind"])


def test_a_kept_select_shows_an_error_state_for_an_unknown_value_as_a_fresh_one_does():
    kept, fresh = Kept({"kind": "<b>plum</b>"}), Fresh({"kind": "<b>plum</b>"})
    assert not kept.is_valid() and not fresh.is_valid()
    assert str(kept["kind"]) == str(fresh["kind"])
    assert 'aria-invalid="true"' in str(kept["kind"])
    assert 'aria-invalid="true"' not in str(Kept({"kind": "nut"})["kind"])


def test_values_from_the_query_string_do_not_grow_what_is_kept_without_end():
    for n in range(KeptSelect.KEPT_AT_MOST * 3):
        str(Kept({"kind": f"made-up-{n}"})["kind"])
    assert len(Kept.base_fields["kind"].widget._kept) <= KeptSelect.KEPT_AT_MOST


class KeptField(forms.Form):
    kind = KeptChoiceField(choices=CHOICES, required=False, widget=KeptSelect)


def test_a_kept_choice_field_shares_its_choices_and_still_checks_them():
    first, second = KeptField({"kind": "pear"}), KeptField({"kind": "plum"})
    assert first.fields["kind"] is not second.fields["kind"]
    assert first.fields["kind"].choices is second.fields["kind"].choices
    assert first.is_valid() and first.cleaned_data["kind"] == "pear"
    assert not second.is_valid() and "plum is not one of the available choices" in str(
        second.errors
    )
    assert str(first["kind"]) == str(Fresh({"kind": "pear"})["kind"])
