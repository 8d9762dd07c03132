import pyarrow.parquet as pq

from simpersona_jax.replay.schema import TRACE_SCHEMA, TraceWriter


def row(i):
    return dict(
        store_id="s",
        buyer_id="b",
        session_id=f"x{i}",
        persona=-1,
        step=i,
        goal_neutral="g",
        goal_intent="gi",
        history=['click("1")'] * min(i, 5),
        observation="page: home /",
        action="stop()",
    )


def test_shards(tmp_path):
    w = TraceWriter(str(tmp_path), rows_per_shard=4)
    w.add([row(i) for i in range(3)])
    w.add([row(i) for i in range(3, 9)])
    shards = w.close()
    assert [p.rsplit("/", 1)[1] for p in shards] == [
        "traces-00000.parquet",
        "traces-00001.parquet",
        "traces-00002.parquet",
    ]
    tables = [pq.read_table(p) for p in shards]
    assert [t.num_rows for t in tables] == [4, 4, 1] and w.n_rows == 9
    assert tables[0].schema == TRACE_SCHEMA
    assert tables[1].column("history").to_pylist()[0] == ['click("1")'] * 4
