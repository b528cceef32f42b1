"""mailsuite.passwords: argon2id hashes only."""

from mailsuite import passwords


def test_hash_is_argon2id_and_not_the_password():
    hashed = passwords.hash_password("correct horse")
    assert hashed.startswith(passwords.HASH_PREFIX)
    assert "correct horse" not in hashed


def test_verify_right_and_wrong():
    hashed = passwords.hash_password("s3cret")
    assert passwords.verify_password(hashed, "s3cret")
    assert not passwords.verify_password(hashed, "S3cret")


def test_two_hashes_of_one_password_differ():
    assert passwords.hash_password("same") != passwords.hash_password("same")


def test_malformed_hash_is_a_mismatch():
    assert not passwords.verify_password("plaintext", "plaintext")
