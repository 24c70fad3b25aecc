"""PS3.15 Annex B profiles and the cipher-suite table."""

from __future__ import annotations

import ssl

import pytest

from dicomnet.errors import ConfigurationError
from dicomnet.security.profiles import (
    DEFAULT_PROFILE,
    PROFILES,
    SUITES,
    check_available,
    get_profile,
    openssl_has_3des,
    suite_by_iana,
    to_openssl_names,
)


def _openssl_table() -> dict[str, dict[str, object]]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return {str(c["name"]): dict(c) for c in ctx.get_ciphers()}


def test_profile_names() -> None:
    assert set(PROFILES) == {
        "bcp195-rfc9325",
        "bcp195-rfc9325-modified",
        "bcp195",
        "bcp195-non-downgrading",
        "bcp195-extended",
        "aes",
        "basic",
    }
    assert DEFAULT_PROFILE == "bcp195-rfc9325"


def test_default_profile_is_rfc9325() -> None:
    p = get_profile("bcp195-rfc9325")
    assert p.section == "PS3.15 B.12"
    assert p.minimum_version == ssl.TLSVersion.TLSv1_2
    assert p.maximum_version == ssl.TLSVersion.TLSv1_3
    assert set(p.tls12_suites) == {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    }
    assert not p.legacy
    assert p.tls12_ciphers == (
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
    )


def test_modified_profile_restrictions() -> None:
    p = get_profile("bcp195-rfc9325-modified")
    assert (p.min_rsa_bits, p.min_ec_bits, p.min_dh_bits) == (2048, 256, 2048)
    assert not p.allows_extra_suites
    for name in p.tls12_suites:
        suite = suite_by_iana(name)
        assert suite is not None and suite.key_exchange == "ECDHE" and suite.aead, name


def test_retired_profiles_versions() -> None:
    assert get_profile("bcp195-non-downgrading").minimum_version == ssl.TLSVersion.TLSv1_2
    extended = get_profile("bcp195-extended")
    assert extended.maximum_version == ssl.TLSVersion.TLSv1_2
    assert all(suite_by_iana(n).aead for n in extended.tls12_suites)  # type: ignore[union-attr]
    assert get_profile("bcp195").minimum_version == ssl.TLSVersion.TLSv1
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in get_profile("bcp195").tls12_suites
    assert get_profile("aes").tls12_suites[0] == "TLS_RSA_WITH_AES_128_CBC_SHA"
    assert get_profile("aes").legacy and get_profile("basic").legacy
    assert all(get_profile(n).retired for n in ("bcp195", "aes", "basic", "bcp195-extended"))


def test_unknown_profile_lists_valid_names() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_profile("tls-please")
    assert "tls-please" in str(info.value)
    for name in PROFILES:
        assert name in str(info.value)


def test_suite_table_matches_openssl() -> None:
    """Every code point, key exchange, authentication and AEAD flag agrees with OpenSSL."""
    table = _openssl_table()
    kea = {"ECDHE": "kx-ecdhe", "DHE": "kx-dhe", "RSA": "kx-rsa", None: "kx-any"}
    auth = {"RSA": "auth-rsa", "ECDSA": "auth-ecdsa", None: "auth-any"}
    checked = 0
    for suite in SUITES:
        entry = table.get(suite.openssl)
        if entry is None:
            # 3DES may be compiled out; the TLS 1.3 CCM suites are off by default
            # and Python cannot enable them.
            assert suite.iana == "TLS_RSA_WITH_3DES_EDE_CBC_SHA" or "CCM" in suite.iana
            continue
        checked += 1
        assert int(str(entry["id"])) & 0xFFFF == suite.code, suite.iana
        assert entry["kea"] == kea[suite.key_exchange], suite.iana
        assert entry["auth"] == auth[suite.authentication], suite.iana
        assert entry["aead"] == suite.aead, suite.iana
        assert entry["alg_bits"] == suite.encryption_bits, suite.iana
    assert checked >= len(SUITES) - 3


def test_every_profile_suite_is_in_table() -> None:
    for profile in PROFILES.values():
        for name in profile.tls12_suites:
            assert suite_by_iana(name) is not None, (profile.name, name)
        for name in profile.tls13_ciphersuites or ():
            assert suite_by_iana(name) is not None, (profile.name, name)


def test_to_openssl_names_accepts_both_spellings() -> None:
    assert to_openssl_names(["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "AES128-SHA"]) == [
        "ECDHE-RSA-AES128-GCM-SHA256",
        "AES128-SHA",
    ]
    with pytest.raises(ConfigurationError, match="unknown TLS cipher suite 'TLS_FOO'"):
        to_openssl_names(["TLS_FOO"])
    with pytest.raises(ConfigurationError, match=r"TLS 1\.3 suite"):
        to_openssl_names(["TLS_AES_128_GCM_SHA256"])


def test_basic_profile_availability_matches_openssl() -> None:
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.set_ciphers("DES-CBC3-SHA:@SECLEVEL=0")
        has_3des = True
    except ssl.SSLError:
        has_3des = False
    assert openssl_has_3des() is has_3des
    if has_3des:
        check_available(get_profile("basic"))
    else:
        with pytest.raises(ConfigurationError) as info:
            check_available(get_profile("basic"))
        text = str(info.value)
        assert "TLS_RSA_WITH_3DES_EDE_CBC_SHA" in text
        assert "'basic'" in text and "does not provide" in text


def test_the_package_s_names_load_on_first_use() -> None:
    """``dicomnet.security`` imported all its modules (cryptography with the
    certificates) for one of them: its names now load when first used, each the
    object of its module, and its __all__ says which."""
    import importlib

    import dicomnet.security as package

    assert set(package.__all__) == set(package._EXPORTS)
    for name, module in package._EXPORTS.items():
        assert getattr(package, name) is getattr(
            importlib.import_module(module, "dicomnet.security"), name)
    with pytest.raises(AttributeError, match="has no attribute 'TLSConfg'"):
        package.TLSConfg  # type: ignore[attr-defined]  # noqa: B018
