"""Credential redaction for the multi-exchange platform's responses, before they are recorded.

`GET /api/accounts/` returns, per exchange account, its `api_key`, `api_secret` and
`password` (the last two masked by the platform, the key often in clear). The raw snapshot
stores response bodies verbatim, so those values must be removed *before* the recorder sees
them: `RedactingRecorder` wraps the source's recorder and hands it a copy of every response
whose body went through `redact_body`.

`redact_body` keeps the JSON byte-faithful wherever it can:
1. every value of a credential key (`CREDENTIAL_FIELDS`, any nesting, case-insensitive) is
   replaced in the text by `"***"` (a `null` stays `null`), everything else untouched;
2. the result is checked by decoding it and walking the whole tree; a credential value the
   text rewrite could not reach (an object under `password`, a `\\u`-escaped key, …) makes the
   body re-serialised from the tree with those values replaced (numbers keep their exact
   text, only whitespace changes);
3. a body that is not UTF-8 JSON and still shows a credential key followed by something other
   than `"***"`/`null` is withheld entirely (`WITHHELD`);
4. any configured secret (the API token) that the platform might echo is replaced by `***`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from etl_project.http import RawResponse, Recorder

__all__ = ["CREDENTIAL_FIELDS", "MASK", "WITHHELD", "RedactingRecorder", "redact_body"]

#: Keys whose values never reach storage: the seed's three plus common exchange credential names.
CREDENTIAL_FIELDS = frozenset(
    {"api_key", "api_secret", "password", "passphrase", "api_passphrase", "secret", "private_key"}
)
MASK = "***"
#: Stored instead of a body that could not be redacted with certainty.
WITHHELD = b'{"redacted": "body withheld: credentials could not be removed safely"}'

_KEYS = "|".join(sorted(CREDENTIAL_FIELDS))
_STRING = r'"(?:[^"\\]|\\.)*"'
_SCALAR = r"-?\d[0-9eE.+-]*|true|false"
#: `"<credential key>" : <string | number | boolean>` as JSON text (a key, never string content:
#: an escaped quote inside a string value cannot start the match).
_VALUE = re.compile(rf'("(?:{_KEYS})"\s*:\s*)(?:{_STRING}|{_SCALAR})', re.IGNORECASE)
#: What must not be left after redaction in a body that is not JSON.
_LEFTOVER = re.compile(rf'"(?:{_KEYS})"\s*:(?!\s*(?:"\*\*\*"|null\b))', re.IGNORECASE)


def redact_body(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """`body` with every credential value replaced by `"***"` (see the module docstring)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return WITHHELD
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _VALUE.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
    try:
        doc = json.loads(text, parse_float=_Number, parse_int=_Number, parse_constant=_Number)
    except ValueError:
        return WITHHELD if _LEFTOVER.search(text) else text.encode("utf-8")
    if _clean(doc):
        return text.encode("utf-8")
    return _write(_masked(doc)).encode("utf-8")


class RedactingRecorder:
    """A `Recorder` that passes each response on with its body redacted (`redact_body`)."""

    def __init__(
        self,
        inner: Recorder,
        secrets: Iterable[str] = (),
        redact: Callable[[bytes, Iterable[str]], bytes] = redact_body,
    ) -> None:
        self.inner = inner
        self.secrets = tuple(s for s in secrets if s)
        self._redact = redact

    def record(self, response: RawResponse) -> None:
        body = self._redact(response.body, self.secrets)
        self.inner.record(dataclasses.replace(response, body=body))


class _Number(str):
    """A JSON number kept as its exact text while a body is re-checked or re-written."""


def _is_credential(key: str) -> bool:
    return key.lower() in CREDENTIAL_FIELDS


def _clean(value: Any) -> bool:
    """No credential key anywhere holds anything but `"***"` or null."""
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_credential(key) and not (item is None or item == MASK):
                return False
            if not _clean(item):
                return False
        return True
    if isinstance(value, list):
        return all(_clean(item) for item in value)
    return True


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (MASK if v is not None else None) if _is_credential(k) else _masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _write(value: Any) -> str:
    """Compact JSON with numbers written as their original text."""
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(k, ensure_ascii=False)}: {_write(v)}" for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_write(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)
