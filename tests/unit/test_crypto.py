import base64
import json
import os

import pytest
from pydantic import SecretStr

from shared.crypto import Keyring, generate_code, keyed_digest, load_keyring, open_sealed, seal, verify_digest
from shared.errors import ConfigurationError, SealError

RING = Keyring(active="k2", keys={"k1": os.urandom(32), "k2": os.urandom(32)})


def test_sealed_codes_open_only_with_their_context():
    key_id, blob = seal(RING, SecretStr("012345"), b"ship-1|code-1")
    assert key_id == "k2" and "012345" not in blob
    assert open_sealed(RING, key_id, blob, b"ship-1|code-1").get_secret_value() == "012345"
    with pytest.raises(SealError):
        open_sealed(RING, key_id, blob, b"ship-2|code-1")


def test_old_keys_still_open_after_rotation():
    old = Keyring(active="k1", keys=RING.keys)
    key_id, blob = seal(old, SecretStr("999999"), b"c")
    assert open_sealed(RING, key_id, blob, b"c").get_secret_value() == "999999"
    with pytest.raises(SealError):
        open_sealed(Keyring(active="k3", keys={"k3": os.urandom(32)}), key_id, blob, b"c")


def test_digests_verify_the_right_code_only():
    key_id, digest = keyed_digest(RING, SecretStr("424242"), b"ctx")
    assert verify_digest(RING, key_id, digest, SecretStr("424242"), b"ctx")
    assert not verify_digest(RING, key_id, digest, SecretStr("424243"), b"ctx")
    assert not verify_digest(RING, key_id, digest, SecretStr("424242"), b"other")


def test_codes_are_six_digits_with_leading_zeros_and_never_shown_in_repr():
    codes = [generate_code(6) for _ in range(2000)]
    assert all(len(c.get_secret_value()) == 6 and c.get_secret_value().isdigit() for c in codes)
    assert any(c.get_secret_value().startswith("0") for c in codes)
    assert "*" in repr(codes[0]) and codes[0].get_secret_value() not in repr(codes[0])


def test_key_files_must_be_private(tmp_path):
    path = tmp_path / "seal.keys"
    path.write_text(json.dumps({"active": "a", "keys": {"a": base64.b64encode(os.urandom(32)).decode()}}))
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        load_keyring(path, "OTP_SEAL_KEYS_FILE")
    path.chmod(0o600)
    assert load_keyring(path, "OTP_SEAL_KEYS_FILE").active == "a"
    assert "keys" not in repr(load_keyring(path, "X")).split("key_ids")[0]
