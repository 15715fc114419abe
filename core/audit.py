"""The tamper-evident hash chain of the transition log (SPEC section 8, I10).

``hash = sha256(prev_hash + canonical_json(record without hash fields))``.
The first record's ``prev_hash`` is ``GENESIS``. The head (last hash and
count) is kept outside the log (summary, store ``runs`` row) so truncation
is detectable too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def canonical_json(obj: Any) -> str:
    """Stable text for hashing: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def link_hash(prev_hash: str, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("prev_hash", "hash")}
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()
