"""The asyncpg client of proxy/pooled_clients_test.go.

asyncpg prepares every statement it runs (named statements, kept in a
per-connection cache), so this is protocol-level prepared statements
reused across transactions. WORKERS workers at once, each running fetchval
with different parameters, an explicit prepare() executed many times,
executemany and a query in a transaction, a transaction rolled back, and
COPY. Each worker has a connection of its own, or with --pool they share
an asyncpg.Pool of WORKERS connections, acquiring one per round (asyncpg
resets a connection when it is released: pg_advisory_unlock_all(), CLOSE
ALL, UNLISTEN *, RESET ALL). It checks every result, prints "ok TAG
WORKERS workers" and exits 0, or says what went wrong and exits 1.

Run with Debian's Python:
/usr/bin/python3 asyncpg_client.py [--pool] HOST PORT USER PASSWORD DATABASE TAG WORKERS
"""

import asyncio
import contextlib
import sys

import asyncpg

ROUNDS, CALLS, ROWS = 3, 10, 5
INSERT = "INSERT INTO clients_kv (tag, worker, i, v) VALUES ($1, $2, $3, $4)"
COUNT = "SELECT count(*) FROM clients_kv WHERE tag = $1 AND worker = $2"


def expect(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


async def round_of(conn, tag, w, r):
    add = await conn.prepare("SELECT $1::int * 1000 + $2::int")
    for i in range(CALLS):
        expect("sum", await conn.fetchval("SELECT $1::int + $2::int", w, r * CALLS + i), w + r * CALLS + i)
        expect("prepared", await add.fetchval(w, i), w * 1000 + i)
    async with conn.transaction():
        await conn.executemany(INSERT, [(tag, w, r * ROWS + k, "asyncpg") for k in range(ROWS)])
        expect("count in transaction", await conn.fetchval(COUNT, tag, w), (r + 1) * ROWS)
    try:
        async with conn.transaction():
            await conn.execute(INSERT, tag, w, 1000 + r, "rolled back")
            raise LookupError("roll back")
    except LookupError:
        pass
    expect("count after rollback", await conn.fetchval(COUNT, tag, w), (r + 1) * ROWS)


async def work(get, tag, w, meet):
    for r in range(ROUNDS):
        async with get() as conn:
            await round_of(conn, tag, w, r)
        if r == 0:
            await asyncio.wait_for(meet.wait(), 60)
    async with get() as conn:
        copied = await conn.copy_records_to_table(
            "clients_kv", records=[(tag, w, 100 + k, "copy") for k in range(ROWS)], columns=["tag", "worker", "i", "v"])
        expect("COPY", copied, "COPY %d" % ROWS)
        await conn.execute("DELETE FROM clients_kv WHERE tag = $1 AND worker = $2 AND v = 'copy'", tag, w)
        expect("count at the end", await conn.fetchval(COUNT, tag, w), ROUNDS * ROWS)


async def main():
    argv = sys.argv[1:]
    pooled = argv[:1] == ["--pool"]
    if pooled:
        argv = argv[1:]
    if len(argv) != 7:
        sys.exit("usage: asyncpg_client.py [--pool] HOST PORT USER PASSWORD DATABASE TAG WORKERS")
    host, port, user, password, db, tag, workers = argv
    n = int(workers)
    args = dict(host=host, port=int(port), user=user, password=password, database=db, ssl=False, timeout=10,
                command_timeout=60)
    # After its first round each worker waits for all the others, so that
    # all go on at once, more than the proxy's pool has servers.
    meet = asyncio.Barrier(n)
    pool = None
    if pooled:
        pool = await asyncpg.create_pool(min_size=n, max_size=n, **args)

    async def run(w):
        conn = None
        try:
            if pool is not None:
                get = pool.acquire
            else:
                conn = await asyncpg.connect(**args)

                @contextlib.asynccontextmanager
                async def get():
                    yield conn
            await work(get, tag, w, meet)
        except BaseException:
            await meet.abort()
            raise
        finally:
            if conn is not None:
                await conn.close()

    results = await asyncio.gather(*(run(w) for w in range(n)), return_exceptions=True)
    if pool is not None:
        await pool.close()
    errors = ["worker %d: %s: %s" % (w, type(e).__name__, str(e).strip())
              for w, e in enumerate(results) if isinstance(e, BaseException)]
    if errors:
        for e in errors:
            print("asyncpg:", e, file=sys.stderr)
        sys.exit(1)
    print("ok %s %s workers" % (tag, workers))


if __name__ == "__main__":
    asyncio.run(main())
