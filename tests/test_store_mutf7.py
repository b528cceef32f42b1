"""Modified UTF-7 (RFC 3501 5.1.3): round trips, the RFC example, and strict refusal."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsuite import mutf7

RFC_EXAMPLE_TEXT = "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"
RFC_EXAMPLE_ENCODED = "~peter/mail/&U,BTFw-/&ZeVnLIqe-"


def test_rfc_example_encodes():
    assert mutf7.encode(RFC_EXAMPLE_TEXT) == RFC_EXAMPLE_ENCODED


def test_rfc_example_decodes():
    assert mutf7.decode(RFC_EXAMPLE_ENCODED) == RFC_EXAMPLE_TEXT


def test_ampersand_is_escaped():
    assert mutf7.encode("Tom & Jerry") == "Tom &- Jerry"


def test_ascii_is_unchanged():
    assert mutf7.encode("Sent Items") == "Sent Items"


def test_astral_character_uses_surrogate_pair():
    assert mutf7.decode(mutf7.encode("\U0001f600")) == "\U0001f600"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_round_trip(text):
    assert mutf7.decode(mutf7.encode(text)) == text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_encoded_form_is_printable_ascii(text):
    assert all(0x20 <= ord(c) <= 0x7E for c in mutf7.encode(text))


@pytest.mark.parametrize(
    "bad",
    [
        "&",  # unterminated shift
        "&U,BTFw",  # unterminated shift
        "&AGE-",  # encodes printable ASCII 'a'
        "&U,A-&U,A-",  # two adjacent shifted runs
        "\u00fc",  # raw non-ASCII
        "a\x01b",  # control character
        "&Jj-",  # length leaves a partial UTF-16 unit
        "&2D0-",  # lone high surrogate
        "&Jjo!-",  # not base64
        "&U,B-",  # nonzero padding bits
    ],
)
def test_invalid_input_is_refused(bad):
    with pytest.raises(ValueError):
        mutf7.decode(bad)


def test_lone_surrogate_cannot_be_encoded():
    with pytest.raises(ValueError):
        mutf7.encode("\ud800")
