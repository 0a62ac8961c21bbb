"""`pii` with `engine: presidio`: the builtin engine's redactions for our types, presidio's types on
top, and not one network connection (no spaCy model, no public-suffix-list download)."""

from __future__ import annotations

import socket

import pytest
from curate_samples import chat
from test_labelled_quality import PII, PRESIDIO_PII

from tuneforge.curate import Drop, parse_op
from tuneforge.errors import ConfigError

pytest.importorskip("presidio_analyzer", reason="needs presidio-analyzer: pip install 'tuneforge[curate]'")


@pytest.fixture
def offline(monkeypatch):
    """Refuses every lookup and connection, as a machine without network does, and fails the test if
    anything tried (a library that falls back quietly, like tldextract, would otherwise pass)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network is unreachable (test)")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield
    assert attempts == []


def pii_op(**cfg):
    return parse_op({"op": "pii", **cfg}, "test").build()


TEXTS = [f"my {kind.replace('_', ' ')} is {value}, thanks" for kind, values in PII.items() for value in values] + [
    "call 13812345678 or mail a@example.com",
    "卡号 4111 1111 1111 1111 身份证 11010519491231002X",  # a valid ID is not also a card or a phone
    "卡号 4111 1111 1111 1112 身份证 110105194912310021",  # checksums fail: nothing
    "order 2023-10-01, version 1.2.3.4.5, 16-digit ref 1234567812345678",
    "ask EMP-12345 at 10.0.0.1 / +44 20 7946 0958",
]


@pytest.mark.parametrize("action", ["placeholder", "mask", "drop", "tag"])
def test_same_redactions_as_builtin_for_our_types(action, offline):
    types = list(PII)
    builtin = pii_op(action=action, types=types, patterns={"employee": r"EMP-\d{5}"})
    presidio = pii_op(action=action, types=types, patterns={"employee": r"EMP-\d{5}"}, engine="presidio")
    for text in TEXTS:
        sample = chat("q", text)
        assert presidio(sample) == builtin(sample), text


def test_presidio_finds_types_we_lack(offline):
    op = pii_op(engine="presidio")  # default types: ours and presidio's
    text = ("IBAN DE89 3704 0044 0532 0130 00, SSN 219-09-9999, wallet 1BoatSLRHtKNngkdXEeobR76b53LETtpyT, "
            "NHS 943 476 5919, MAC 00:1A:2B:3C:4D:5E, Amex 3782 822463 10005, host fe80::1ff:fe23:4567:890a, "
            "mail li.wei@example.com")
    out = op(chat("q", text))
    assert out.messages[1].content == ("IBAN <IBAN>, SSN <US_SSN>, wallet <CRYPTO>, NHS <UK_NHS>, MAC <MAC_ADDRESS>, "
                                       "Amex <BANK_CARD>, host <IP>, mail <EMAIL>")
    assert out.meta["pii"] == {"bank_card": 1, "crypto": 1, "email": 1, "iban": 1, "ip": 1, "mac_address": 1,
                               "uk_nhs": 1, "us_ssn": 1}
    assert pii_op(engine="presidio", action="drop")(chat("q", "IBAN GB82WEST12345698765432")) == Drop("pii", "iban=1")
    # the builtin engine sees none of these
    assert pii_op(types=list(PII))(chat("q", "IBAN GB82WEST12345698765432, SSN 219-09-9999")).meta == {}


def test_presidio_rejects_invalid_and_weak_matches(offline):
    op = pii_op(engine="presidio", types=list(PRESIDIO_PII))
    # IBAN and NHS checksums fail, 123-45-6789 is an SSN presidio knows to be invalid, `::` alone is weak
    sample = chat("q", "IBAN DE89 3704 0044 0532 0130 01, NHS 943 476 5918, SSN 123-45-6789, C++ std::vector")
    assert op(sample) is sample


def test_presidio_only_types_need_the_presidio_engine():
    with pytest.raises(ConfigError, match="iban"):
        parse_op({"op": "pii", "types": ["email", "iban"]}, "test")
    with pytest.raises(ConfigError, match="nothing to find"):
        pii_op(engine="presidio", types=[])
