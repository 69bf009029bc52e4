#!/usr/bin/env python3
"""What an order's Redis layout costs Redis, per event, on a stock server.

The worker's Redis work per event is one read and one write of the order's
state (src/io/state.h), pipelined a batch at a time. This replays that
pattern against a private redis-server for three layouts of the same
content, and reports Redis's own CPU time (utime + stime of its process)
per event, wall time and used_memory:

  fields   today's: a hash with c, hv, v, t, p, mx and one field per recent
           event's mark; HMGET of the order's fields and the new event's
           mark, then HSET of what changed (v, t, p and the mark)
  folded   the small fields folded into one "s" field: HMGET s p MARK,
           HSET s p MARK
  blob     the whole order (state, p and its recent marks) as one string:
           GET, then SET
  sparse   today's hash as production sees it: an order's next event comes
           later than the 2 s a "published" mark waits for it, so every
           event's mark also gets an HSET of its own (the round trip after
           the event's)

Every layout sees the same events: --events over --orders orders (seed 1),
--batch events per round trip (the worker's batch of the benchmark mix
carries about 80), the last pushed fields "p" as the benchmark's orders
have them (about 380 bytes: past hash-max-listpack-value's default of 64,
so the hashes are hash tables), and each order's marks growing to 12. Each
layout runs --runs times on a fresh FLUSHALL; --listpack-value lists the
hash-max-listpack-value settings to try (one redis-server each).

Only the redis-server's CPU is measured: the client's own cost (this
script) does not count. Usage:

  bench/layouts.py [--events N] [--orders N] [--batch N] [--runs N]
                   [--layouts fields,sparse,folded,blob]
                   [--listpack-value 64,1024]
"""
import argparse
import os
import random
import socket
import subprocess
import sys
import time

P = ('{"address1":"2461 Pine St","city":"Denver",'
     '"clientDueDate":"2026-12-01 1302 +0","clientStatus":"Order Late (4)",'
     '"description":"Bench order %d","dueDate":"2026-11-30 1302 +0",'
     '"reference":"REF-1%05d","services":[{"serviceName":"Lock Change"},'
     '{"serviceName":"Photo Inspection"}],"state":"CO",'
     '"workOrderInfo":"Call Office 555-111-2222 #%d",'
     '"workOrderNumber":"WO-%07d","zip":"80202"}')
MARK = 'D|2||200|1|1796777851'
MARKS_KEPT = 12


def resp(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


class Incomplete(Exception):
    pass


class Conn:
    """One pipelined connection: send a batch, wait for all its replies."""

    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port))
        self.buf = b''

    def run(self, cmds):
        self.sock.sendall(b''.join(cmds))
        while True:
            try:
                i = 0
                for _ in cmds:
                    i = self._skip(i)
                self.buf = self.buf[i:]
                return
            except Incomplete:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    sys.exit('FAIL: redis-server closed the connection')
                self.buf += chunk

    def _skip(self, i):
        """The end of the reply that starts at i."""
        b = self.buf
        e = b.find(b'\r\n', i)
        if e < 0:
            raise Incomplete()
        t = b[i:i + 1]
        if t == b'-':
            sys.exit('FAIL: redis-server answered ' + b[i:e].decode())
        if t in (b'+', b':'):
            return e + 2
        n = int(b[i + 1:e])
        if t == b'$':
            end = e + 2 + max(n, 0) + (2 if n >= 0 else 0)
            if end > len(b):
                raise Incomplete()
            return end
        j = e + 2
        for _ in range(max(n, 0)):
            j = self._skip(j)
        return j


def cpu_s(pid):
    f = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')


class Order:
    def __init__(self):
        self.version = 0
        self.marks = []  # (field, value), oldest first


def read_cmd(layout, key, mark):
    if layout in ('fields', 'sparse'):
        return resp('HMGET', key, 'c', 'd', 'v', 'hv', 't', 'p', mark, 'mx')
    if layout == 'folded':
        return resp('HMGET', key, 's', 'p', mark)
    return resp('GET', key)


def write_cmd(layout, key, o, n, e):
    p = P % (n, n, o.version, n)
    t = 1795011289570 + e
    mark = o.marks[-1][0]
    if layout in ('fields', 'sparse'):  # what changed, as the worker does
        first = ('c', 1, 'hv', 1, 'mx', 1796781451) if o.version == 1 else ()
        return resp('HSET', key, *first, 'v', o.version, 't', t, 'p', p,
                    mark, MARK)
    s = '1|0|1|%d|%d|1796781451' % (o.version, t)
    if layout == 'folded':
        return resp('HSET', key, 's', s, 'p', p, mark, MARK)
    marks = ','.join('%s=%s' % m for m in o.marks)
    return resp('SET', key, s + '|' + p + '|' + marks)


def one_run(layout, conn, pid, args):
    conn.run([resp('FLUSHALL')])
    rnd = random.Random(1)
    orders = {}
    batch = []
    c0, t0 = cpu_s(pid), time.time()

    published = []  # sparse: the last batch's marks, now published

    def flush():
        conn.run([b[0] for b in batch])
        conn.run([b[1] for b in batch] + published)
        published.clear()
        if layout == 'sparse':
            published.extend(resp('HSET', b[2], b[3], 'P' + MARK[1:])
                             for b in batch)
        batch.clear()

    for e in range(args.events):
        n = rnd.randrange(args.orders)
        o = orders.setdefault(n, Order())
        o.version += 1
        mark = 'm:bench-%08d-ab12' % e
        o.marks = (o.marks + [(mark, MARK)])[-MARKS_KEPT:]
        key = 'bench:{bench-acme/WO-%07d}:o' % n
        batch.append((read_cmd(layout, key, mark),
                      write_cmd(layout, key, o, n, e), key, mark))
        if len(batch) == args.batch:
            flush()
    if batch:
        flush()
    if published:
        conn.run(published)
    return (cpu_s(pid) - c0) * 1e6 / args.events, time.time() - t0


def used_mib(port):
    info = subprocess.run(['redis-cli', '-p', str(port), 'info', 'memory'],
                          capture_output=True, text=True, check=True).stdout
    for line in info.splitlines():
        if line.startswith('used_memory:'):
            return int(line.split(':')[1]) / 2**20
    return float('nan')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_redis(listpack_value):
    port = free_port()
    proc = subprocess.Popen(
        ['redis-server', '--port', str(port), '--bind', '127.0.0.1',
         '--save', '', '--appendonly', 'no', '--logfile', '/dev/null',
         '--hash-max-listpack-value', listpack_value])
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit('FAIL: redis-server exited (%d)' % proc.returncode)
        try:
            return proc, port, Conn(port)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit('FAIL: redis-server did not listen on port %d' % port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--events', type=int, default=200000)
    ap.add_argument('--orders', type=int, default=20000)
    ap.add_argument('--batch', type=int, default=80)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--layouts', default='fields,sparse,folded,blob')
    ap.add_argument('--listpack-value', default='64,1024')
    args = ap.parse_args()
    print('listpack-value layout  Redis CPU us/event (runs)   wall s  '
          'used MiB')
    for lp in args.listpack_value.split(','):
        proc, port, conn = start_redis(lp)
        try:
            for layout in args.layouts.split(','):
                runs = [one_run(layout, conn, proc.pid, args)
                        for _ in range(args.runs)]
                us = sorted(r[0] for r in runs)
                print('%-14s %-7s %5.2f (%s) %8.1f %9.1f' % (
                    lp, layout, us[len(us) // 2],
                    ' '.join('%.2f' % u for u in us),
                    sorted(r[1] for r in runs)[len(runs) // 2],
                    used_mib(port)), flush=True)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == '__main__':
    main()
