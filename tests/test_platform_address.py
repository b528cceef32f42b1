"""mailsuite.address: canonical spelling, splitting and sub-addresses."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsuite.address import base_address, canonical, canonical_domain, split
from mailsuite.errors import InvalidAddress


def test_canonical_lowercases_and_strips():
    assert canonical("  Alice@Example.TEST ") == "alice@example.test"


def test_canonical_idna_domain():
    assert canonical("bob@Bücher.example") == "bob@xn--bcher-kva.example"


def test_canonical_keeps_address_literal():
    assert canonical("root@[192.0.2.1]") == "root@[192.0.2.1]"


def test_trailing_dot_of_domain_dropped():
    assert canonical_domain("example.test.") == "example.test"


@pytest.mark.parametrize(
    "bad",
    ["alice@exa\r\nmple.test", "ali\nce@example.test", "a\x00@example.test", "@example.test",
     "alice@", "alice", "", "al ice@example.test", "alice@exa_mple.test", "alice@-bad.test",
     "x" * 65 + "@example.test"],
)
def test_invalid_addresses_raise(bad):
    with pytest.raises(InvalidAddress):
        canonical(bad)


def test_split_at_last_at_sign():
    assert split('"a@b"@Example.test') == ('"a@b"', "example.test")


def test_base_address_drops_tag():
    assert base_address("Alice+News@example.test") == "alice@example.test"


def test_base_address_without_tag_is_canonical():
    assert base_address("alice@example.test") == "alice@example.test"


def test_base_address_keeps_leading_plus():
    assert base_address("+x@example.test") == "+x@example.test"


@given(st.text(alphabet="abcXYZ019.-_+", min_size=1, max_size=20))
def test_canonical_is_idempotent(local):
    try:
        once = canonical(f"{local}@Example.Test")
    except InvalidAddress:
        return
    assert canonical(once) == once
