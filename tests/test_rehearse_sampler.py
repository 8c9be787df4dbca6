"""The lock sampler's bookkeeping on real samples of a real lock wait.

A migration's ALTER waits behind a transaction that read the table. The sampler's query reads
``pg_stat_activity`` (a snapshot) and then ``pg_blocking_pids``: a sample taken as the lock is released
reads the session as still waiting with no blocker left. That sample must not erase whom the wait was
for: the rehearsal names the session it waited for from it (seen in CI as a ``lock_timeout`` finding
that named no session, a few runs in a hundred).
"""

from __future__ import annotations

import threading
import time

import psycopg

from chatbench.provision import Server
from chatbench.rehearse.longtx import LONG_TX_NAME
from chatbench.rehearse.sampler import _SAMPLE, LockSampler

BLOCKERS = 13  # the column of pg_blocking_pids in the sampler's rows


def test_a_sample_without_blockers_keeps_whom_the_wait_was_for(fresh_db: Server) -> None:
    conninfo = fresh_db.conninfo()
    with psycopg.connect(conninfo, autocommit=True) as setup:
        setup.execute("CREATE TABLE t (id int)")
    holder = psycopg.connect(conninfo, application_name=LONG_TX_NAME)  # the rehearsal's long transaction
    migration = psycopg.connect(conninfo, autocommit=True, application_name="the-migration")
    sampler = LockSampler(conninfo)  # not started: its samples are taken here, one at a time
    try:
        holder.execute("SELECT * FROM t")  # a transaction holding ACCESS SHARE on t
        altering = threading.Thread(target=migration.execute, args=("ALTER TABLE t ADD COLUMN x int",))
        altering.start()
        deadline = time.monotonic() + 30
        while True:
            rows = sampler._conn.execute(_SAMPLE).fetchall()
            waiting = [r for r in rows if r[2] == "the-migration" and r[BLOCKERS]]
            if waiting or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert waiting, rows
        holder_pid = holder.info.backend_pid
        assert waiting[0][BLOCKERS] == [holder_pid]
        sampler._take(1.0, rows)
        # the next sample as one taken while the holder commits reads it: still waiting, nobody blocking
        released = [(*r[:BLOCKERS], [] if r[2] == "the-migration" and r[BLOCKERS] else r[BLOCKERS], *r[BLOCKERS + 1:])
                    for r in rows]
        sampler._take(1.005, released)
        [activity] = [a for a in sampler.samples.activity.values() if a.pid == migration.info.backend_pid]
        assert activity.blockers == (holder_pid,)
        assert LONG_TX_NAME in sampler.samples.blockers[holder_pid].describe()
        holder.commit()
        altering.join(timeout=30)
        assert not altering.is_alive()
    finally:
        sampler._conn.close()
        holder.close()
        migration.close()
