#!/usr/bin/env python3
"""Generate a realistic order-event mix for the benchmark, as kcat input.

Writes one line per event, "KEY<TAB>VALUE", KEY being ACCOUNT/WORKORDERNUMBER
(contract section 2). The mix, by share of all events:

  create   ~10%   new orders, until --orders exist
  update   rest   changed fields of an earlier order (one in ten changes
                  nothing: outcome unchanged)
  status    5%    an update that sets a status (and assignedTo on internal
                  accounts)
  duplicate 2%    a recent event sent again verbatim (same eventId)
  malformed 1%    a value that is not JSON
  delete   0.2%   on the accounts that allow deletes; later events of that
                  order are rejected as order_deleted

Deterministic for a given --seed. With --rate N the lines are paced to N per
second (for the latency run; pipe into `kcat -P` which produces each line as
it arrives), else written as fast as possible.

Usage: gen_events.py [--events N] [--orders N] [--accounts N] [--seed S]
                     [--rate EPS] [--out FILE]
"""
import argparse
import json
import random
import sys
import time

ACCOUNTS = [
    # name, internal?, allowDeletes
    ("bench-acme", True, False),
    ("bench-northwind", False, True),
    ("bench-contoso", True, True),
    ("bench-globex", False, False),
]
USERS = ["jsmith", "mlee", "akhan"]
CITIES = [("Round Rock", "TX", "78664"), ("Austin", "TX", "78701"),
          ("Denver", "CO", "80202"), ("Tulsa", "OK", "74103"),
          ("Boise", "ID", "83702-1234")]
SERVICES = ["Task-01 Mow Grass", "Winterize", "Lock Change", "Debris Removal",
            "Photo Inspection"]
INFOS = ["Call Office 555-111-2222", "Gate code 4411", "Dog on premises",
         "Use side entrance", "Vacant; utilities off", "Lockbox on rear door"]
CLIENT_STATUSES = ["Order Late", "Awaiting Bid", "In Review", "Vendor Notified",
                   "Rescheduled", "Escalated"]


def iso(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)


def pruvan_date(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%d %H%M +0", t)


class Gen:
    def __init__(self, args):
        self.rnd = random.Random(args.seed)
        self.n_events = args.events
        self.n_orders = args.orders
        self.accounts = ACCOUNTS[:max(1, min(args.accounts, len(ACCOUNTS)))]
        self.orders = []       # live orders: dicts
        self.deleted = []      # tombstoned orders (kept for late updates)
        self.created = 0
        self.recent = []       # recent (key, value) for duplicates
        self.clock = 1795000000000  # occurredAt base (2026-11-19)
        self.seq = 0

    def event_id(self):
        self.seq += 1
        return "bench-%08d-%04x" % (self.seq, self.rnd.getrandbits(16))

    def tick(self):
        self.clock += self.rnd.randint(1, 500)
        return self.clock

    def envelope(self, o, action, body):
        o["version"] += 1
        ev = {"eventId": self.event_id(), "account": o["account"],
              "action": action, "occurredAt": iso(self.tick()),
              "version": o["version"], "order": body}
        return o["key"], json.dumps(ev, separators=(",", ":"))

    def create(self):
        i = self.created
        self.created += 1
        acct, internal, deletes = self.accounts[i % len(self.accounts)]
        won = "WO-%07d" % i
        city, st, zp = self.rnd.choice(CITIES)
        o = {"account": acct, "won": won, "key": acct + "/" + won,
             "internal": internal, "deletes": deletes, "version": 0,
             "info": self.rnd.choice(INFOS),
             "due": self.clock + 86400000 * self.rnd.randint(2, 20)}
        body = {"workOrderNumber": won,
                "address1": "%d %s St" % (self.rnd.randint(1, 9999),
                                          self.rnd.choice(["Oak", "Main", "Elm", "Pine"])),
                "city": city, "state": st, "zip": zp,
                "workOrderInfo": o["info"],
                "clientDueDate": iso(o["due"]),
                "dueDate": pruvan_date(o["due"] - 86400000),
                "description": "Bench order %d" % i,
                "reference": "REF-%d" % (100000 + i),
                "services": [{"serviceName": s} for s in
                             self.rnd.sample(SERVICES, self.rnd.randint(1, 3))]}
        self.orders.append(o)
        return self.envelope(o, "create", body)

    def pick(self):
        return self.orders[self.rnd.randrange(len(self.orders))]

    def update(self):
        if self.rnd.random() < 0.01 and self.deleted:
            o = self.rnd.choice(self.deleted)  # late update of a deleted order
            return self.envelope(o, "update", {"workOrderNumber": o["won"],
                                               "clientStatus": "Order Late"})
        o = self.pick()
        body = {"workOrderNumber": o["won"]}
        r = self.rnd.random()
        if r < 0.10:
            body["workOrderInfo"] = o["info"]  # nothing changed
        elif r < 0.45:
            o["info"] = self.rnd.choice(INFOS) + " #%d" % o["version"]
            body["workOrderInfo"] = o["info"]
        elif r < 0.75:
            o["due"] += 86400000 * self.rnd.randint(1, 3)
            body["clientDueDate"] = iso(o["due"])
            body["dueDate"] = pruvan_date(o["due"] - 86400000)
        else:
            body["clientStatus"] = "%s (%d)" % (self.rnd.choice(CLIENT_STATUSES),
                                                o["version"])
        return self.envelope(o, "update", body)

    def status(self):
        o = self.pick()
        body = {"workOrderNumber": o["won"]}
        if o["internal"] and self.rnd.random() < 0.4:
            body["status"] = "assigned"
            body["assignedTo"] = self.rnd.choice(USERS)
        else:
            body["status"] = self.rnd.choice(["rush", "rework", "canceled",
                                              "closed", "RUSH"])
        return self.envelope(o, "update", body)

    def delete(self):
        cands = [o for o in self.orders[-2000:] if o["deletes"]]
        if not cands:
            return self.update()
        o = self.rnd.choice(cands)
        self.orders.remove(o)
        self.deleted.append(o)
        return self.envelope(o, "delete", {"workOrderNumber": o["won"]})

    def malformed(self):
        o = self.pick()
        self.seq += 1
        bad = ('{"eventId":"bench-bad-%d","account":"%s","action":"update",'
               '"order":{"workOrderNumber":"%s"' % (self.seq, o["account"], o["won"]))
        return o["key"], bad  # truncated: not JSON

    def next(self):
        remaining = self.n_events - self.seq
        owed = self.n_orders - self.created
        r = self.rnd.random()
        if not self.orders or (owed > 0 and (r < 0.10 or owed >= remaining)):
            kv = self.create()
        elif r < 0.15:
            kv = self.status()
        elif r < 0.17 and self.recent:
            kv = self.rnd.choice(self.recent)
            self.seq += 1  # a duplicate is an event too
            return kv
        elif r < 0.18:
            kv = self.malformed()
            return kv
        elif r < 0.182:
            kv = self.delete()
        else:
            kv = self.update()
        self.recent.append(kv)
        if len(self.recent) > 500:
            self.recent.pop(0)
        return kv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--orders", type=int, default=20000)
    ap.add_argument("--accounts", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--out", default="-")
    a = ap.parse_args()
    g = Gen(a)
    out = sys.stdout if a.out == "-" else open(a.out, "w")
    start = time.monotonic()
    chunk = max(1, int(a.rate / 200)) if a.rate > 0 else 1000
    lines = []
    n = 0
    while g.seq < a.events:
        k, v = g.next()
        lines.append(k + "\t" + v + "\n")
        n += 1
        if len(lines) >= chunk:
            out.write("".join(lines))
            lines = []
            if a.rate > 0:
                out.flush()
                ahead = n / a.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    out.write("".join(lines))
    out.flush()
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
