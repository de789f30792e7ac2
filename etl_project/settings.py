"""What a venue needs of the configuration: a source's fields, secrets that never show
themselves, whole-value redaction and URL checks. Imports nothing of the project but errors,
so every venue can use it while `config` (which knows the venues) loads the file."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from etl_project.errors import ConfigError

__all__ = ["Secret", "SourceConfig", "check_url", "redact"]


class Secret(str):
    """A string that never shows itself in repr/str formatting of containers or logs.

    `.reveal()` is the only way to the value; it is used where a header is built.
    """

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        return str.__str__(self)


#: Characters a credential is made of: a secret is redacted only where it stands whole,
#: between other characters, so `api_key: k` never turns `kraken_x` into `***ra***en_x`.
_BEFORE = r"A-Za-z0-9_\-+~"  # not `=` (`key=…`) nor `/` (a path segment can be a token)
_AFTER = _BEFORE + "="  # base64 padding belongs to a longer token


def redact(text: str, secrets: list[str]) -> str:
    """Replace every whole secret value in a text (exception messages, URLs) by `***`."""
    for value in sorted((v for v in secrets if v), key=len, reverse=True):
        pattern = rf"(?<![{_BEFORE}]){re.escape(value)}(?![{_AFTER}])"
        text = re.sub(pattern, "***", text)
    return text


@dataclass(frozen=True)
class SourceConfig:
    """One configured source: common fields plus the venue's validated settings."""

    name: str
    kind: str
    settings: Any
    account_group: str = "Default"
    keep_zero_rows: bool = False
    system_accounts: frozenset[str] = frozenset()
    main_types: Mapping[str, str] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        """Every secret value of this source, for redaction."""
        return [
            getattr(self.settings, f.name).reveal()
            for f in dataclasses.fields(self.settings)
            if isinstance(getattr(self.settings, f.name), Secret)
        ]


def check_url(value: str, where: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """Validate an absolute URL with one of `schemes` and a host; return it without trailing /."""
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise ConfigError(f"{where}: {value!r} is not a valid {'/'.join(schemes)} URL")
    return value.rstrip("/")
