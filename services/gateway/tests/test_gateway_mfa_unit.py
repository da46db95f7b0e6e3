"""The second factors' pure parts: TOTP codes and their window, the sealed
secret, the QR code, recovery codes, and WebAuthn ceremonies checked against
a software authenticator."""

from __future__ import annotations

import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from gateway.mfa import recovery, totp
from gateway.mfa.security_keys import (
    CeremonyFailed,
    KnownCredential,
    RelyingParty,
    authentication_options,
    challenge_of,
    parse_credential,
    registration_options,
    verify_authentication,
    verify_registration,
)
from gateway.sealing import SealBroken

sys.path.insert(0, str(Path(__file__).parent))
from webauthn_helpers import SoftAuthenticator, b64url, unb64url

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, 10, tzinfo=UTC)
USER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
RP = RelyingParty.of("https://portal.example.org/")


# --- TOTP --------------------------------------------------------------------


def test_a_code_counts_in_its_step_and_one_step_either_side() -> None:
    secret = totp.new_secret()
    step = totp.time_step(NOW)
    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, totp.code_at(secret, step + offset), NOW) == step + offset
    for offset in (-3, -2, 2, 3):
        code = totp.code_at(secret, step + offset)
        if code not in {totp.code_at(secret, step + near) for near in (-1, 0, 1)}:
            assert totp.matching_step(secret, code, NOW) is None


def test_a_code_of_another_secret_or_not_a_code_is_refused() -> None:
    secret, other = totp.new_secret(), totp.new_secret()
    code = totp.code_at(other, totp.time_step(NOW))
    if code != totp.code_at(secret, totp.time_step(NOW)):
        assert totp.matching_step(secret, code, NOW) is None
    fullwidth = "".join(chr(0xFF10 + int(digit)) for digit in code)
    for junk in ("", "12345", "1234567", "abcdef", fullwidth, "12 34 5"):
        assert totp.matching_step(secret, junk, NOW) is None


def test_spaces_typed_in_a_code_are_ignored() -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, totp.time_step(NOW))
    assert totp.matching_step(secret, f" {code[:3]} {code[3:]} ", NOW) == totp.time_step(NOW)


def test_the_secret_is_sealed_for_its_user_and_the_gateway_secret() -> None:
    key = secrets.token_bytes(32)
    secret = totp.new_secret()
    sealed = totp.TotpSeal(key).seal(USER, secret)
    assert secret not in sealed
    assert totp.TotpSeal(key).open(USER, sealed) == secret
    with pytest.raises(SealBroken):
        totp.TotpSeal(key).open("another-user", sealed)
    with pytest.raises(SealBroken):
        totp.TotpSeal(secrets.token_bytes(32)).open(USER, sealed)
    with pytest.raises(SealBroken):
        totp.TotpSeal(key).open(USER, "not sealed at all")


def test_the_qr_code_is_an_svg_of_the_otpauth_uri() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, account="alice", issuer="JHaaS portal.example.org")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["JHaaS portal.example.org"]
    assert "alice" in unquote(parts.path)
    image = totp.qr_svg_data_uri(uri)
    assert image.startswith("data:image/svg+xml")
    svg = unquote(image.split(",", 1)[1])
    assert "<svg" in svg and "<script" not in svg


# --- recovery codes ----------------------------------------------------------


def test_ten_distinct_codes_hashed_per_user_whatever_the_typing() -> None:
    codes = recovery.new_codes()
    assert len(set(codes)) == recovery.COUNT == 10
    hasher = recovery.RecoveryCodeHasher(secrets.token_bytes(32))
    code = codes[0]
    stored = hasher.hash(USER, code)
    assert stored is not None and code.replace("-", "") not in stored
    assert hasher.hash(USER, code.upper().replace("-", " ")) == stored
    assert hasher.hash("another-user", code) != stored
    assert recovery.RecoveryCodeHasher(secrets.token_bytes(32)).hash(USER, code) != stored
    for junk in ("", "123456", "abcd-efgh-jkm", "abcd-efgh-jkm0", "x" * 200):
        assert hasher.hash(USER, junk) is None


# --- WebAuthn ----------------------------------------------------------------


def test_the_relying_party_is_the_public_url() -> None:
    assert RelyingParty("portal.example.org", "JHaaS", "https://portal.example.org") == RP
    local = RelyingParty.of("http://LocalHost:8000")
    assert (local.id, local.origin, local.usable) == ("localhost", "http://localhost:8000", True)
    assert RelyingParty.of("https://portal.example.org:443/x").origin == RP.origin
    assert not RelyingParty.of("http://127.0.0.1:8000").usable


def _registered() -> tuple[SoftAuthenticator, dict[str, object]]:
    key = SoftAuthenticator(origin=RP.origin)
    options, challenge = registration_options(
        RP, user_id=USER, username="alice", display_name="", existing=[]
    )
    answer = parse_credential(key.register(options))
    assert challenge_of(answer) == challenge
    new = verify_registration(RP, answer, challenge)
    return key, {"credential_id": new.credential_id, "public_key": new.public_key}


def test_a_registration_then_sign_ins_with_a_growing_counter() -> None:
    key, stored = _registered()
    assert stored["credential_id"] == b64url(key.credential_id)
    count = 0
    for _ in range(2):
        options, challenge = authentication_options(
            RP, [KnownCredential(credential_id=str(stored["credential_id"]), transports=("usb",))]
        )
        assert [c["id"] for c in options["allowCredentials"]] == [stored["credential_id"]]
        answer = key.authenticate(options)
        count = verify_authentication(
            RP, answer, challenge, public_key=str(stored["public_key"]), sign_count=count
        )
    assert count == 2


def test_registration_refused_from_another_origin_or_for_another_challenge() -> None:
    key = SoftAuthenticator(origin="https://portal.example.org.evil.example")
    options, challenge = registration_options(
        RP, user_id=USER, username="alice", display_name="", existing=[]
    )
    with pytest.raises(CeremonyFailed, match="origin"):
        verify_registration(RP, key.register(options), challenge)
    honest = SoftAuthenticator(origin=RP.origin).register(options)
    with pytest.raises(CeremonyFailed, match="challenge"):
        verify_registration(RP, honest, secrets.token_bytes(64))


def test_a_cloned_key_with_a_stale_counter_is_refused() -> None:
    key, stored = _registered()
    options, challenge = authentication_options(RP, [])
    count = verify_authentication(
        RP, key.authenticate(options), challenge, public_key=str(stored["public_key"]), sign_count=0
    )
    options, challenge = authentication_options(RP, [])
    clone = key.authenticate(options, count=count)  # the clone has not counted the last use
    with pytest.raises(CeremonyFailed, match="sign count"):
        verify_authentication(
            RP, clone, challenge, public_key=str(stored["public_key"]), sign_count=count
        )


def test_a_signature_by_another_key_or_origin_is_refused() -> None:
    _, stored = _registered()
    options, challenge = authentication_options(RP, [])
    stranger = SoftAuthenticator(origin=RP.origin).authenticate(options)
    with pytest.raises(CeremonyFailed, match="signature"):
        verify_authentication(
            RP, stranger, challenge, public_key=str(stored["public_key"]), sign_count=0
        )
    key, stored = _registered()
    phished = key.authenticate(options, origin="https://evil.example")
    with pytest.raises(CeremonyFailed, match="origin"):
        verify_authentication(
            RP, phished, challenge, public_key=str(stored["public_key"]), sign_count=0
        )


@pytest.mark.parametrize(
    "raw",
    ["", "[]", "{", '{"id": 1}', "x" * 20000, {"id": "a"}, {"id": "a", "response": {}}],
)
def test_malformed_credentials_are_refused_with_a_reason(raw: object) -> None:
    with pytest.raises(CeremonyFailed):
        challenge_of(parse_credential(raw))


def test_garbage_in_a_well_formed_answer_is_refused_not_raised() -> None:
    options, challenge = registration_options(
        RP, user_id=USER, username="alice", display_name="", existing=[]
    )
    answer = SoftAuthenticator(origin=RP.origin).register(options)
    answer["response"]["attestationObject"] = "AAAA"  # type: ignore[index]
    with pytest.raises(CeremonyFailed):
        verify_registration(RP, answer, challenge)
    assert unb64url(options["challenge"]) == challenge
