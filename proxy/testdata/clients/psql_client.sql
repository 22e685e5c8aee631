-- The psql client of proxy/pooled_clients_test.go, run several at once:
-- psql -X -q -A -t -v ON_ERROR_STOP=1 -v tag=TAG -v worker=N -f psql_client.sql
-- Plain queries, a transaction committed (holding its server a moment,
-- so that the psqls overlap) and one rolled back, each with its result
-- printed; the test compares the output.
SELECT 40 + 2;
SELECT :worker * 10;
BEGIN;
INSERT INTO clients_kv (tag, worker, i, v) SELECT :'tag', :worker, g, 'psql' FROM generate_series(1, 5) g;
SELECT count(*) FROM clients_kv WHERE tag = :'tag' AND worker = :worker;
SELECT pg_sleep(0.2) \g /dev/null
COMMIT;
BEGIN;
INSERT INTO clients_kv (tag, worker, i, v) VALUES (:'tag', :worker, 1000, 'rolled back');
ROLLBACK;
SELECT count(*) FROM clients_kv WHERE tag = :'tag' AND worker = :worker;
SELECT string_agg(i::text, ',' ORDER BY i) FROM clients_kv WHERE tag = :'tag' AND worker = :worker;
\set n 3
SELECT :n + :worker AS column \gset r_
SELECT :r_column - :worker;
