"""Token entries as an operator writes them, in ``STREAMPROC_API_TOKENS`` or a tokens file:
``TOKEN [scopes=S+S...] [tenant=NAME]`` (``auth.py`` says what each grants).  Every
refusal names the entry, never the token."""

from __future__ import annotations

from streamproc.errors import ConfigError
from streamproc.http.auth import ADMIN, OPTIONS, SCOPES, TENANT, TENANT_SCOPES, Credential, Grant


def parse_tokens(text: str, separator: str, source: str) -> list[Credential]:
    """Token entries from an environment value (comma separated) or a file (one a line; blank
    lines and ``#`` comments skipped).  ``source`` names the value or file in errors, which
    never show a token.  Text that holds only separators or comments is refused: it meant to
    give tokens (empty text is no text: an unset variable)."""
    unit = "line" if separator == "\n" else "entry"
    credentials = []
    for number, part in enumerate(text.split(separator), 1):
        entry = part.strip()
        if entry and not entry.startswith("#"):
            credentials.append(parse_entry(entry, f"{source} {unit} {number}"))
    if text.strip() and not credentials:  # only separators or comments: no token meant none
        raise ConfigError(no_token(source))
    return credentials


def file_tokens(raw: bytes, source: str) -> list[Credential]:
    """The entries of a tokens file's bytes (:func:`parse_tokens`).  It must be UTF-8 and hold
    a token: whoever passes a tokens file asks for authentication, and a file with none would
    serve loopback callers as operators without one."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start + 1})") from None
    credentials = parse_tokens(text, "\n", source)
    if not credentials:
        raise ConfigError(no_token(source))
    return credentials


def no_token(source: str) -> str:
    return f"{source} holds no token: add one, or leave it out to serve loopback only"


def parse_entry(entry: str, where: str) -> Credential:
    """``TOKEN [scopes=S+S...] [tenant=NAME]``; ``scopes`` defaults to every scope the token's
    kind may have (a tenant's: read+submit)."""
    token, *words = entry.split()
    options: dict[str, str] = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or name not in OPTIONS:  # the word itself may be a token: never shown
            raise ConfigError(
                f"{where}: expected TOKEN [scopes=S+S...] [tenant=NAME], one token an entry"
            )
        if name in options:
            raise ConfigError(f"{where}: {name}= given twice")
        options[name] = value
    tenant = options.get("tenant")
    if tenant is not None and not TENANT.fullmatch(tenant):
        raise ConfigError(
            f"{where}: invalid tenant {tenant!r}: use 1-64 characters from A-Z a-z 0-9 _ -"
        )
    allowed = frozenset(SCOPES) if tenant is None else TENANT_SCOPES
    scopes = allowed if "scopes" not in options else parse_scopes(options["scopes"], where)
    if tenant is not None and ADMIN in scopes:
        raise ConfigError(
            f"{where}: a tenant token cannot have the admin scope (dead letters are operators')"
        )
    return Credential.of(token, Grant(scopes, tenant), where)


def parse_scopes(value: str, where: str) -> frozenset[str]:
    names = value.split("+")
    for name in names:
        if name not in SCOPES:
            raise ConfigError(f"{where}: unknown scope {name!r} (use {', '.join(SCOPES)})")
    return frozenset(names)
