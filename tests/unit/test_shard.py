import pytest

from gpt4llm.errors import UserError
from gpt4llm.shard import Shard, parse_shard


def test_shards_are_a_partition_independent_of_order():
    keys = [f"id{i}" for i in range(1000)]
    parts = [parse_shard(f"{i}/4").select(keys, key=str) for i in range(4)]
    assert sorted(sum(parts, [])) == sorted(keys)
    assert all(200 < len(p) < 300 for p in parts)
    assert parse_shard("2/4").select(reversed(keys), key=str) == list(reversed(parts[2]))
    assert parse_shard(None) is None and str(Shard(1, 3)) == "1/3"


@pytest.mark.parametrize("bad", ["1", "4/4", "-1/4", "a/b", "1/0", "1/2/3"])
def test_bad_shards_are_refused(bad):
    with pytest.raises(UserError, match="expected i/n"):
        parse_shard(bad)
