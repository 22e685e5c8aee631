"""The psycopg2 client of proxy/pooled_clients_test.go.

Several connections at once, one per thread, each running parameterised
queries in autocommit, transactions committed and rolled back (psycopg2
opens them itself), executemany, and a server-side (named) cursor. It
checks every result, prints "ok TAG WORKERS workers" and exits 0, or says
what went wrong and exits 1.

Run with Debian's Python: /usr/bin/python3 psycopg2_client.py HOST PORT USER PASSWORD DATABASE TAG WORKERS
"""

import sys
import threading

import psycopg2

ROUNDS, CALLS, ROWS = 3, 10, 5
INSERT = "INSERT INTO clients_kv (tag, worker, i, v) VALUES (%s, %s, %s, %s)"
COUNT = "SELECT count(*) FROM clients_kv WHERE tag = %s AND worker = %s"


def one(cur, sql, args):
    cur.execute(sql, args)
    rows = cur.fetchall()
    if len(rows) != 1:
        raise AssertionError("%s: %d rows, want 1" % (sql, len(rows)))
    return rows[0][0]


def expect(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def work(dsn, tag, w, meet):
    conn = psycopg2.connect(dsn)
    try:
        for r in range(ROUNDS):
            conn.autocommit = True
            cur = conn.cursor()
            for i in range(CALLS):
                expect("sum", one(cur, "SELECT %s::int + %s::int", (w, r * CALLS + i)), w + r * CALLS + i)
            # A transaction: psycopg2 sends BEGIN before the first statement.
            conn.autocommit = False
            cur = conn.cursor()
            cur.executemany(INSERT, [(tag, w, r * ROWS + k, "psycopg2") for k in range(ROWS)])
            expect("count in transaction", one(cur, COUNT, (tag, w)), (r + 1) * ROWS)
            # A server-side cursor (DECLARE, FETCH) inside the transaction.
            named = conn.cursor(name="rows_%d" % w)
            named.itersize = 2
            named.execute("SELECT i FROM clients_kv WHERE tag = %s AND worker = %s ORDER BY i", (tag, w))
            expect("cursor rows", [row[0] for row in named], list(range((r + 1) * ROWS)))
            named.close()
            conn.commit()
            # A transaction rolled back.
            cur.execute(INSERT, (tag, w, 1000 + r, "rolled back"))
            conn.rollback()
            expect("count after rollback", one(cur, COUNT, (tag, w)), (r + 1) * ROWS)
            conn.commit()
            if r == 0:
                meet.wait()
    finally:
        conn.close()


def main():
    if len(sys.argv) != 8:
        sys.exit("usage: psycopg2_client.py HOST PORT USER PASSWORD DATABASE TAG WORKERS")
    host, port, user, password, db, tag, workers = sys.argv[1:]
    dsn = "host=%s port=%s user=%s password=%s dbname=%s sslmode=disable connect_timeout=10" % (
        host, port, user, password, db)
    errors = []
    # After its first round each worker waits for all the others, so that
    # all go on at once, more than the proxy's pool has servers.
    meet = threading.Barrier(int(workers), timeout=60)

    def run(w):
        try:
            work(dsn, tag, w, meet)
        except Exception as e:  # every failure is reported, then exit 1
            meet.abort()
            errors.append("worker %d: %s: %s" % (w, type(e).__name__, str(e).strip()))

    threads = [threading.Thread(target=run, args=(w,)) for w in range(int(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for e in errors:
            print("psycopg2:", e, file=sys.stderr)
        sys.exit(1)
    print("ok %s %s workers" % (tag, workers))


if __name__ == "__main__":
    main()
