"""``--shard i/n``: a deterministic 1/n of the input, so n hosts can split one run.

A record belongs to shard ``int(sha256(id)) % n``: the split depends only on the record's id,
not on the input's order or on the other records, so the same record always lands on the same
host and ``gpt4llm merge`` can join the shards back in input order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from gpt4llm.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:15], 16) % self.count == self.index

    def select(self, items: Iterable[T], key: Callable[[T], str]) -> list[T]:
        return [x for x in items if self.owns(key(x))]


def parse_shard(text: str | None) -> Shard | None:
    """``"i/n"`` with 0 <= i < n -> Shard; None -> None; anything else is a UserError."""
    if text is None:
        return None
    i, sep, n = text.partition("/")
    try:
        shard = Shard(int(i), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise UserError(f"--shard {text}: expected i/n with 0 <= i < n, e.g. --shard 0/4")
    return shard
