// Clients is the JDBC (pgjdbc) client of proxy/pooled_clients_test.go:
// several connections at once on their own threads, each running server-
// prepared statements past prepareThreshold (half of them with the
// default of 5, half with 1), batch inserts, transactions committed and
// rolled back, and a read-only transaction. It checks every result,
// prints "ok TAG WORKERS workers" and exits 0, or says what went wrong
// and exits 1.
//
// Run: java -cp /usr/share/java/postgresql.jar Clients.java HOST PORT USER PASSWORD DATABASE TAG WORKERS

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

public class Clients {
    static final int ROUNDS = 3, CALLS = 10, ROWS = 5;
    static final String ADD = "SELECT ?::int + ?::int";
    static final String INSERT = "INSERT INTO clients_kv (tag, worker, i, v) VALUES (?, ?, ?, ?)";
    static final String COUNT = "SELECT count(*) FROM clients_kv WHERE tag = ? AND worker = ?";

    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println("usage: Clients HOST PORT USER PASSWORD DATABASE TAG WORKERS");
            System.exit(2);
        }
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[4];
        String tag = args[5];
        int workers = Integer.parseInt(args[6]);
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        // After its first round each worker waits for all the others, so
        // that all go on at once, more than the proxy's pool has servers.
        CountDownLatch all = new CountDownLatch(workers);
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            final int worker = w;
            Properties props = new Properties();
            props.setProperty("user", args[2]);
            props.setProperty("password", args[3]);
            props.setProperty("sslmode", "disable");
            props.setProperty("connectTimeout", "10");
            props.setProperty("socketTimeout", "60");
            props.setProperty("ApplicationName", "jdbc-" + tag);
            if (w % 2 == 1) {
                props.setProperty("prepareThreshold", "1");
            }
            done.add(pool.submit(() -> {
                Meeting meet = new Meeting(all);
                try (Connection c = DriverManager.getConnection(url, props)) {
                    work(c, tag, worker, meet);
                } catch (Exception e) {
                    throw new RuntimeException("worker " + worker + ": " + e, e);
                } finally {
                    meet.arrive();
                }
                return null;
            }));
        }
        pool.shutdown();
        int failed = 0;
        for (Future<?> f : done) {
            try {
                f.get();
            } catch (Exception e) {
                failed++;
                System.err.println("jdbc: " + (e.getCause() != null ? e.getCause().getMessage() : e));
            }
        }
        pool.awaitTermination(10, TimeUnit.SECONDS);
        if (failed > 0) {
            System.err.println("jdbc: " + failed + " of " + workers + " workers failed");
            System.exit(1);
        }
        System.out.println("ok " + tag + " " + workers + " workers");
    }

    // Meeting is a worker's place at the latch: it arrives once, also when
    // it fails, so that the others do not wait for it.
    static class Meeting {
        final CountDownLatch all;
        boolean arrived;

        Meeting(CountDownLatch all) {
            this.all = all;
        }

        void arrive() {
            if (!arrived) {
                arrived = true;
                all.countDown();
            }
        }

        void meet() throws SQLException {
            arrive();
            try {
                if (!all.await(60, TimeUnit.SECONDS)) {
                    throw new SQLException("the other workers did not get there in 60 s");
                }
            } catch (InterruptedException e) {
                throw new SQLException(e);
            }
        }
    }

    static void work(Connection c, String tag, int w, Meeting meet) throws SQLException {
        try (PreparedStatement add = c.prepareStatement(ADD);
             PreparedStatement ins = c.prepareStatement(INSERT);
             PreparedStatement cnt = c.prepareStatement(COUNT)) {
            for (int r = 0; r < ROUNDS; r++) {
                // Autocommit: each execution is a transaction of its own,
                // on whichever server the pool gives.
                for (int i = 0; i < CALLS; i++) {
                    add.setInt(1, w);
                    add.setInt(2, r * CALLS + i);
                    expect("sum", one(add), w + r * CALLS + i);
                }
                // A transaction: a batch of inserts, then the count inside it.
                c.setAutoCommit(false);
                for (int k = 0; k < ROWS; k++) {
                    ins.setString(1, tag);
                    ins.setInt(2, w);
                    ins.setInt(3, r * ROWS + k);
                    ins.setString(4, "jdbc");
                    ins.addBatch();
                }
                int[] counts = ins.executeBatch();
                if (counts.length != ROWS) {
                    throw new SQLException("executeBatch returned " + counts.length + " counts, want " + ROWS);
                }
                cnt.setString(1, tag);
                cnt.setInt(2, w);
                expect("count in transaction", one(cnt), (r + 1) * ROWS);
                c.commit();
                // A transaction rolled back.
                ins.setString(1, tag);
                ins.setInt(2, w);
                ins.setInt(3, 1000 + r);
                ins.setString(4, "rolled back");
                ins.executeUpdate();
                c.rollback();
                // Read-only: BEGIN READ ONLY, a query, a write refused.
                c.setReadOnly(true);
                expect("count read-only", one(cnt), (r + 1) * ROWS);
                try (Statement s = c.createStatement()) {
                    s.executeUpdate("INSERT INTO clients_kv (tag, worker, i, v) VALUES ('" + tag + "', " + w + ", 2000, 'ro')");
                    throw new SQLException("an INSERT succeeded in a read-only transaction");
                } catch (SQLException e) {
                    if (!"25006".equals(e.getSQLState())) {
                        throw e;
                    }
                }
                c.rollback();
                c.setReadOnly(false);
                c.setAutoCommit(true);
                expect("count after commit and rollback", one(cnt), (r + 1) * ROWS);
                if (r == 0) {
                    meet.meet();
                }
            }
        }
    }

    static long one(PreparedStatement ps) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            if (!rs.next()) {
                throw new SQLException("no row");
            }
            long v = rs.getLong(1);
            if (rs.next()) {
                throw new SQLException("more than one row");
            }
            return v;
        }
    }

    static void expect(String what, long got, long want) throws SQLException {
        if (got != want) {
            throw new SQLException(what + ": got " + got + ", want " + want);
        }
    }
}
