"""Keep credentials out of log output: a logging filter that masks AWS keys, signatures and tokens.

The first line of defence is the logging setup in `dolma.cli`: third-party loggers (botocore's wire log among
them) stay at WARNING. This filter is the second: whatever reaches our handler is scrubbed of Authorization
headers, security tokens, signatures and credentials in query strings, S3 error bodies that echo them, access
key ids, and the literal values of the credential variables of the environment.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from typing import Any

MASK = "[REDACTED]"

_SECRET_NAMES = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|SESSION_KEY|API_KEY", re.IGNORECASE)
_MIN_SECRET_LENGTH = 6
# config keys whose values are credentials (narrower than _SECRET_NAMES: `bos_token_id`, `max_tokens` are not)
_SECRET_KEYS = re.compile(
    r"secret|password|passwd|credential|access_key|session_key|api_key|private_key|(^|_)token$", re.IGNORECASE
)

_PATTERNS = [
    # headers, as logged by botocore (dict reprs, canonical requests) or http libraries
    re.compile(
        r"""(?P<keep>["']?(?:authorization|x-amz-security-token|x-amz-credential|x-amz-signature)["']?\s*[:=]\s*b?)"""
        r"""(?:(?P<q>["']).*?(?P=q)|[^\s,}&]+(?:[ ][^\s,}&'"]+)*)""",
        re.IGNORECASE,
    ),
    # query strings and header parameters: X-Amz-Signature=..., Signature=..., Credential=..., AWSAccessKeyId=...
    re.compile(
        r"(?P<keep>\b(?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|Credential|AWSAccessKeyId)"
        r"\s*[=:]\s*)(?:[^\s&,;'\"<>]+)",
        re.IGNORECASE,
    ),
    # botocore.auth debug lines: "Signature:\n<hex>"
    re.compile(r"(?P<keep>\bSignature:\s*)[0-9a-f]{16,}", re.IGNORECASE),
    # S3 error bodies that echo what was signed
    re.compile(
        r"(?P<keep><(?P<tag>AWSAccessKeyId|SignatureProvided|StringToSign|StringToSignBytes|CanonicalRequest|"
        r"CanonicalRequestBytes)>).*?(?=</(?P=tag)>)",
        re.DOTALL,
    ),
    # AWS access key ids wherever they appear
    re.compile(r"(?P<keep>)\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b"),
]


def _environment_secrets() -> list[str]:
    """Values of environment variables that hold credentials (AWS keys, tokens, passwords), longest first."""
    values = {
        value
        for name, value in os.environ.items()
        if (_SECRET_NAMES.search(name) or name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
        and len(value) >= _MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with credentials masked (`secrets`: literal values to mask, default: from the environment)."""
    for value in _environment_secrets() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group("keep") + MASK, text)
    return text


def redact_config(value: Any, secrets: list[str] | None = None) -> Any:
    """A config (as JSON builtins) with credentials masked: values of keys named like secrets (`*secret*`,
    `*token*`, `*password*`, ...) entirely, other strings through `redact` (keys in URLs, environment values)."""
    if secrets is None:
        secrets = _environment_secrets()
    if isinstance(value, dict):
        return {
            key: MASK if _SECRET_KEYS.search(str(key)) and item not in (None, "") else redact_config(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_config(item, secrets) for item in value]
    if isinstance(value, str):
        return redact(value, secrets)
    return value


class RedactSecrets(logging.Filter):
    """Rewrites each record's message (and its traceback, folded into the message) through `redact`."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = _environment_secrets()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show it raw rather than lose the record
            message = str(record.msg)
        if record.exc_info and record.exc_info[0] is not None:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = None
            record.exc_text = None
        if record.stack_info:
            message += "\n" + record.stack_info
            record.stack_info = None
        record.msg = redact(message, self.secrets)
        record.args = None
        return True
