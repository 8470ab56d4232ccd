"""Keeping credentials out of documents, messages and logs.

Product URLs can carry secrets: userinfo (``http://user:pw@host/x.tif``,
``s3://KEY:SECRET@bucket/x.tif``) and the signing parameters of presigned
URLs (``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``,
``AWSAccessKeyId``, ``Signature``, ``sig``, OSS/COS/OBS's, any ``*-signature``
or ``*-security-token``, ...) and other credential
parameters (``token``, ``key``, ``code``, ``password``, ``client_secret``,
...: :data:`SIGNING_PARAMETERS`). Two pure functions, nothing is read
or written:

- :func:`clean_href`: the URL to publish as an asset href: userinfo and
  signing parameters removed, every other query parameter kept in order;
- :func:`redact`: any text (an error message, a traceback line) with every
  URL's userinfo and signing parameter values replaced by ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["SIGNING_PARAMETERS", "clean_href", "is_signing", "parameter_name", "redact"]


def parameter_name(name: str) -> str:
    """``name`` as the parameter lists hold it: lower case, ``-`` as ``_``
    (``X-Amz-Signature``, ``x_amz_signature`` and ``API-Key`` are all
    spelled by some client; a server treating them alike must not get a
    secret published because of its spelling)."""
    return name.lower().replace("-", "_")


#: query parameters that sign or authorise a URL (compared through
#: :func:`parameter_name`: any letter case, ``-`` and ``_`` alike): removed
#: from hrefs, their values masked in messages. Both :func:`clean_href` and
#: :func:`redact` use this one list.
SIGNING_PARAMETERS = frozenset(
    parameter_name(p)
    for p in (
        # AWS SigV4 and SigV2 presigned URLs
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "AWSAccessKeyId",
        "Signature",
        # Google Cloud Storage V4 and V2 signed URLs
        "X-Goog-Signature",
        "X-Goog-Credential",
        "GoogleAccessId",
        # Alibaba OSS (V1 and V4), Tencent COS, Huawei OBS presigned URLs
        "OSSAccessKeyId",
        "AccessKeyId",
        "security-token",
        "x-oss-signature",
        "x-oss-credential",
        "x-oss-security-token",
        "q-ak",
        "q-signature",
        "x-cos-security-token",
        "x-obs-security-token",
        # Azure shared access signatures
        "sig",
        # generic bearer tokens and keys in URLs
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "session_token",
        "api_key",
        "apikey",
        "x-api-key",
        "private_token",  # GitLab
        "auth",
        "authorization",
        "jwt",
        "credential",
        "credentials",
        "sas_token",
        "key",  # Google APIs (?key=AIza...)
        "subscription-key",  # Azure API Management
        "code",  # Azure Functions function keys
        # passwords and client secrets passed as parameters
        "password",
        "sslpassword",  # libpq's, in a DSN's query
        "passwd",
        "pwd",
        "secret",
        "client_secret",
    )
)
#: parameters that only describe a signature (expiry, algorithm, scope):
#: not secret, but meaningless without it, so dropped from an href along
#: with it (and only then: a plain URL keeps e.g. its ``sr=`` or ``Expires=``)
SIGNATURE_COMPANIONS = frozenset(
    parameter_name(p)
    for p in (
        "X-Amz-Algorithm",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Content-Sha256",
        "x-id",
        "Expires",
        "X-Goog-Algorithm",
        "X-Goog-Date",
        "X-Goog-Expires",
        "X-Goog-SignedHeaders",
        "x-oss-signature-version",
        "x-oss-date",
        "x-oss-expires",
        "x-oss-additional-headers",
        "q-sign-algorithm",
        "q-sign-time",
        "q-key-time",
        "q-header-list",
        "q-url-param-list",
        "se",
        "sp",
        "sv",
        "sr",
        "st",
        "spr",
        "sip",
        "skoid",
        "sktid",
        "skt",
        "ske",
        "sks",
        "skv",
    )
)
#: endings of a parameter name that signs or authorises whatever prefixes it
#: (``x-<vendor>-signature``, ``x-<vendor>-security-token``): another store's
#: presigned URL is covered without its names in the list
_SIGNING_ENDINGS = ("_signature", "_security_token", "_credential")


def is_signing(name: str) -> bool:
    """Whether the query parameter ``name`` (any spelling) signs or
    authorises a URL: in :data:`SIGNING_PARAMETERS`, or named like one
    (:data:`_SIGNING_ENDINGS`)."""
    spelled = parameter_name(name)
    return spelled in SIGNING_PARAMETERS or spelled.endswith(_SIGNING_ENDINGS)


_MASK = "***"
#: scheme://userinfo@ : userinfo is everything before the '@' of the authority
#: (to the LAST '@' before whitespace or a quote: an AWS secret may hold '/',
#: a password may hold '@'; masking a little too much beats leaking a secret)
_USERINFO_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s'\"]+)@")
#: ``name=value`` after ``?``, ``&`` or ``;``: masked when ``name`` is a
#: signing parameter. The value runs to ``&``, ``#``, whitespace, a quote or
#: the end; a ``:`` is part of it (``api_key=ID:SECRET``, ``token=user:pw``)
#: unless whitespace or the end follows it: in log text the ``: `` after a
#: URL (``x.tif?sig=...: not a raster``) is punctuation, not the secret.
_PARAM_RE = re.compile(r"(?<=[?&;#])(?P<key>[^=&;?#\s'\"]+)=(?P<value>(?:[^&#\s'\":]|:(?![\s'\"]|$))*)")
#: the same inside a percent-encoded URL (a presigned URL passed on as a
#: parameter of a proxy's): ``%3F`` or ``%26``, ``name%3Dvalue``, the value
#: running to the next ``%26`` or the end of the parameter
_ENCODED_PARAM_RE = re.compile(
    r"(?<=%3[Ff]|%26)(?P<key>[A-Za-z0-9._~-]+)%3[Dd](?P<value>(?:[^&#%\s'\"]|%(?!26)[0-9A-Fa-f]{2})*)"
)


def _has_userinfo(netloc: str) -> bool:
    return "@" in netloc


def clean_href(url: str) -> str:
    """``url`` without userinfo and without signing query parameters.

    Other query parameters (``?version=3``) and the fragment are kept. Local
    paths and URLs that carry no credentials are returned unchanged (byte for
    byte: no re-encoding).
    """
    if "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https"):
        # object-store URLs (s3://bucket/key) are not parsed as http URLs: a
        # key may hold '?', '#' or '=' literally; only userinfo is removed
        authority, sep, key = rest.partition("/")
        if "@" in authority:
            return f"{scheme}://{authority.rsplit('@', 1)[1]}{sep}{key}"
        if "@" in key and ":" in authority and not authority.rpartition(":")[2].isdigit():
            # KEY:SECRET whose secret holds '/' (AWS secret keys do): the userinfo
            # runs to the last '@' (a key's own '@', s3://bucket/k@2x.tif, has no
            # ':' before its first '/', and host:21 is a port)
            return f"{scheme}://{rest.rsplit('@', 1)[1]}"
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[1] if _has_userinfo(parts.netloc) else parts.netloc
    query = _clean_query(parts.query) if parts.query else parts.query
    # a fragment in query form (#access_token=...) is cleaned alike
    fragment = _clean_query(parts.fragment) if "=" in parts.fragment else parts.fragment
    if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _clean_query(query: str) -> str:
    """``query`` without signing parameters (and their companions when it is
    signed), and with a URL in a parameter's value (a presigned URL passed on
    to a proxy) cleaned alike; unchanged (byte for byte) when nothing is."""
    pairs = parse_qsl(query, keep_blank_values=True)
    signed = any(is_signing(k) for k, _ in pairs)
    kept = [
        (k, clean_href(v) if "://" in v else v)
        for k, v in pairs
        if not is_signing(k) and not (signed and parameter_name(k) in SIGNATURE_COMPANIONS)
    ]
    return query if kept == pairs else urlencode(kept, safe="/:")


def redact(text: str) -> str:
    """``text`` with the userinfo of every URL in it, and the value of every
    signing query parameter, replaced by ``***``."""
    if not text or ("@" not in text and "=" not in text and "%3" not in text):
        return text
    text = _USERINFO_RE.sub(lambda m: f"{m['scheme']}{_MASK}@", text)
    if "%3" in text:
        text = _ENCODED_PARAM_RE.sub(_mask_parameter, text)
    return _PARAM_RE.sub(_mask_parameter, text)


def _mask_parameter(match: re.Match[str]) -> str:
    if is_signing(unquote(match["key"])):  # a name may be percent-encoded too (%73ig: sig)
        return f"{match['key']}={_MASK}"
    return match[0]
