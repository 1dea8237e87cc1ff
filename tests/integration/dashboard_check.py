#!/usr/bin/python3
"""dashboard_check.py: compare what the dashboard shows with the database (dashboard_browser.sh).

  dashboard_check.py page DOM.html         an HTML page as the browser rendered it (--dump-dom)
  dashboard_check.py svg FILE.svg CHART    a chart from /dashboard.svg (must be well-formed XML)

Every number the page carries in a data-* attribute is compared with the same number computed
here, in Python, from the RAW tables (tickets, ticket_history, ticket_classifications,
sla_clocks, departments, teams, agents; read with psql as JSON) -- never from the rollups or the
views the dashboard itself reads. The displayed text must agree with the attributes. The period
(data-from, data-to) and department come from the page itself.

Environment: REDRESS_PG_DSN. Exit 0 when everything agrees; else the differences, on stdout.
"""
import datetime
import html.parser
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

AGES = ["0-1d", "1-3d", "3-7d", "7-30d", "30d+"]
CLOCKS = ["accept", "first_response", "chase_update", "resolution"]
CHARTS = ["volume", "sla", "repeat", "backlog", "categories"]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# ---- the database, raw ------------------------------------------------------------------------

def psql_json(sql):
    out = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", os.environ["REDRESS_PG_DSN"], "-c",
                          "SELECT COALESCE(json_agg(x), '[]') FROM (" + sql + ") x"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def load_db():
    # One row per ticket: its current dimensions (what the rollups attribute everything to), the
    # local days of receipt, resolution and the latest return visit, its business seconds to
    # resolve and its age now. The calendar (NULL = 24/7) is reporting.settings' one.
    tickets = psql_json("""
        SELECT t.id, COALESCE(t.business_type, '') AS bt, COALESCE(t.category, '') AS cat,
               COALESCE(t.owner_unit, '') AS dept, COALESCE(t.owner_team, '') AS team,
               COALESCE(t.owner_agent, '') AS agent, t.state,
               (t.created_at AT TIME ZONE s.time_zone)::date::text AS rday,
               (t.resolved_at AT TIME ZONE s.time_zone)::date::text AS resday,
               CASE WHEN t.resolved_at IS NOT NULL THEN
                    CASE WHEN s.calendar_id IS NULL THEN floor(extract(epoch FROM t.resolved_at - t.created_at))
                         ELSE reporting.business_s(s.calendar_id, t.created_at, t.resolved_at) END END::bigint
                   AS res_bs,
               c.repeat_of IS NOT NULL AS rep,
               (v.at AT TIME ZONE s.time_zone)::date::text AS vday, v.satisfaction AS sat,
               extract(epoch FROM now() - t.created_at) AS age_s
          FROM tickets t CROSS JOIN reporting.settings s
          LEFT JOIN ticket_classifications c ON c.ticket_id = t.id
          LEFT JOIN LATERAL (SELECT h.at, h.satisfaction FROM ticket_history h
                              WHERE h.ticket_id = t.id AND h.kind = 'return_visit'
                              ORDER BY h.seq DESC LIMIT 1) v ON true""")
    # Decided SLA clocks: breached (on the day of the breach) or met (on the day it stopped).
    clocks = psql_json("""
        SELECT c.ticket_id, c.clock, c.breached_at IS NOT NULL AS breached,
               (COALESCE(c.breached_at, c.stopped_at) AT TIME ZONE s.time_zone)::date::text AS day
          FROM sla_clocks c CROSS JOIN reporting.settings s
         WHERE c.breached_at IS NOT NULL OR c.outcome = 'met'""")
    depts = {d["id"]: d["name"] for d in psql_json("SELECT id, name FROM departments")}
    agents = psql_json("""SELECT a.id, a.name, a.team_id, t.department_id, a.active, t.name AS team_name
                            FROM agents a JOIN teams t ON t.id = a.team_id""")
    cats = {c["code"]: c["name"] for c in psql_json("SELECT code, name FROM taxonomy_categories")}
    return tickets, clocks, depts, agents, cats


def zero():
    return {"received": 0, "resolved": 0, "repeats": 0, "visits": 0, "satisfied": 0, "res_bs": 0,
            "met": {c: 0 for c in CLOCKS}, "breached": {c: 0 for c in CLOCKS}, "backlog": 0}


def age_bucket(s):
    d = 86400
    return "0-1d" if s < d else "1-3d" if s < 3 * d else "3-7d" if s < 7 * d else "7-30d" if s < 30 * d else "30d+"


class Expected:
    """Everything a page for (period, department or None) should show."""

    def __init__(self, db, frm, to, dept):
        tickets, clocks, self.depts, self.agents, self.cats = db
        byid = {t["id"]: t for t in tickets}
        inp = lambda day: day is not None and frm <= day <= to
        mine = lambda t: dept is None or t["dept"] == dept
        z = zero
        self.total = z()
        self.by_dept, self.by_agent, self.by_day = {}, {}, {}
        self.volume, self.categories = {}, {}
        self.backlog = {a: 0 for a in AGES}

        def add(t, key, n=1):
            for bucket in (self.total, self.by_dept.setdefault(t["dept"], z()),
                           self.by_agent.setdefault((t["team"], t["agent"]), z()) if t["dept"] == dept else None):
                if bucket is not None:
                    bucket[key] += n

        for t in tickets:
            if t["state"] not in ("resolved", "closed"):
                self.by_dept.setdefault(t["dept"], z())["backlog"] += 1
                if mine(t):
                    self.backlog[age_bucket(t["age_s"])] += 1
                    self.total["backlog"] += 1
            if not mine(t):
                continue
            if inp(t["rday"]):
                add(t, "received")
                self.volume[(t["rday"], t["bt"])] = self.volume.get((t["rday"], t["bt"]), 0) + 1
                self.categories[t["cat"]] = self.categories.get(t["cat"], 0) + 1
                d = self.by_day.setdefault(t["rday"], z())
                d["received"] += 1
                if t["rep"]:
                    add(t, "repeats")
                    d["repeats"] += 1
            if inp(t["resday"]):
                add(t, "resolved")
                add(t, "res_bs", t["res_bs"])
            if inp(t["vday"]):
                add(t, "visits")
                if t["sat"] is not None and t["sat"] >= 4:
                    add(t, "satisfied")
        for c in clocks:
            t = byid[c["ticket_id"]]
            if not mine(t) or not inp(c["day"]):
                continue
            kind = "breached" if c["breached"] else "met"
            for bucket in (self.total, self.by_dept.setdefault(t["dept"], z()),
                           self.by_agent.setdefault((t["team"], t["agent"]), z()) if t["dept"] == dept else None,
                           self.by_day.setdefault(c["day"], z())):
                if bucket is not None:
                    bucket[kind][c["clock"]] += 1
        # the departments table: every department of the organisation, '' only with something in it
        for d in self.depts:
            self.by_dept.setdefault(d, z())
        cats = sorted(self.categories.items(), key=lambda kv: (-kv[1], kv[0].encode()))
        self.top = cats[:10]


def met(k):
    return sum(k["met"].values())


def decided(k):
    return sum(k["met"].values()) + sum(k["breached"].values())


def shows_anything(k):
    return k["received"] or k["resolved"] or decided(k) or k["visits"] or k["backlog"]


# ---- the DOM ---------------------------------------------------------------------------------

class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], []

    def all_text(self):
        return "".join(self.text) + "".join(c.all_text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_class(self, cls):
        for n in self.iter():
            if cls in (n.attrs.get("class") or "").split():
                return n
        return None


class Tree(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text.append(data)


class Checker:
    def __init__(self):
        self.problems, self.checked = [], 0

    def eq(self, what, got, want):
        self.checked += 1
        if got != want:
            self.problems.append("%s: page shows %r, database says %r" % (what, got, want))

    def ok(self, what, cond):
        self.checked += 1
        if not cond:
            self.problems.append(what)

    def count(self, what, node, want):
        """A count: data-value exact; the text (1,234) the same number."""
        self.eq(what + " data-value", node.attrs.get("data-value"), str(want))
        txt = (node.find_class("value") or node).all_text().strip()
        self.eq(what + " text", txt.replace(",", ""), str(want))

    def rate(self, what, node, num, den):
        self.eq(what + " data-num", node.attrs.get("data-num"), str(num))
        self.eq(what + " data-den", node.attrs.get("data-den"), str(den))
        v = node.attrs.get("data-value")
        txt = (node.find_class("value") or node).all_text().strip()
        if den == 0:
            self.eq(what + " data-value", v, "")
            self.eq(what + " text", txt, "—")
            return
        self.ok("%s data-value %r is not %d/%d" % (what, v, num, den),
                v is not None and v != "" and abs(float(v) - num / den) < 0.00005 + 1e-9)
        m = re.fullmatch(r"([0-9.]+)%", txt)
        self.ok("%s text %r is not %.1f%%" % (what, txt, 100 * num / den),
                m is not None and abs(float(m.group(1)) - 100 * num / den) <= 0.05 + 1e-9)


def check_kpis(ck, nodes, exp, label):
    """The six headline numbers."""
    k = exp.total
    want = {"received": k["received"], "resolved": k["resolved"], "backlog": k["backlog"]}
    rates = {"on_time_rate": (met(k), decided(k)), "satisfaction_rate": (k["satisfied"], k["visits"]),
             "repeat_rate": (k["repeats"], k["received"])}
    seen = set()
    for n in nodes:
        if "kpi" not in (n.attrs.get("class") or "").split():
            continue
        name = n.attrs.get("data-kpi")
        seen.add(name)
        if name in want:
            ck.count("%s headline %s" % (label, name), n, want[name])
        elif name in rates:
            ck.rate("%s headline %s" % (label, name), n, *rates[name])
        else:
            ck.ok("%s: unexpected headline %r" % (label, name), False)
    ck.eq(label + " headlines", sorted(seen), sorted(list(want) + list(rates)))


def days(frm, to):
    d = datetime.date.fromisoformat(frm)
    while d.isoformat() <= to:
        yield d.isoformat()
        d += datetime.timedelta(days=1)


def check_chart(ck, svg, exp, frm, to, label):
    """One chart: its marks against the expectation; at least one mark."""
    name = svg.attrs.get("data-chart")
    marks = [n for n in svg.iter() if "mark" in (n.attrs.get("class") or "").split()]
    ck.ok("%s chart %s: no marks" % (label, name), len(marks) > 0)
    ck.eq("%s chart %s period" % (label, name), (svg.attrs.get("data-from"), svg.attrs.get("data-to")), (frm, to))
    if name == "volume":
        got = {(m.attrs.get("data-day"), m.attrs.get("data-type")): int(m.attrs.get("data-value")) for m in marks}
        ck.eq("%s chart volume: marks" % label, len(got), len(marks))
        ck.eq("%s chart volume (day, type) -> received" % label, got, exp.volume)
    elif name in ("sla", "repeat"):
        got = {m.attrs.get("data-day"): (int(m.attrs.get("data-num")), int(m.attrs.get("data-den"))) for m in marks}
        want = {}
        for day in days(frm, to):
            k = exp.by_day.get(day)
            if k is None:
                continue
            num, den = (met(k), decided(k)) if name == "sla" else (k["repeats"], k["received"])
            if den > 0:
                want[day] = (num, den)
        ck.eq("%s chart %s day -> (num, den)" % (label, name), got, want)
        for m in marks:
            num, den = int(m.attrs.get("data-num")), int(m.attrs.get("data-den"))
            ck.ok("%s chart %s %s: data-value %s is not %d/%d" % (label, name, m.attrs.get("data-day"),
                                                                  m.attrs.get("data-value"), num, den),
                  abs(float(m.attrs.get("data-value")) - num / den) < 0.00005 + 1e-9)
    elif name == "backlog":
        got = {m.attrs.get("data-age"): int(m.attrs.get("data-value")) for m in marks}
        ck.eq("%s chart backlog age -> open tickets" % label, got, exp.backlog)
    elif name == "categories":
        got = [(m.attrs.get("data-category"), int(m.attrs.get("data-value"))) for m in marks]
        ck.eq("%s chart categories (top 10, in order)" % label, got, exp.top)
        for m in marks:
            code = m.attrs.get("data-category")
            want = exp.cats.get(code) or (code if code else "未分类 Uncategorised")
            ck.eq("%s chart categories %r name" % (label, code), m.attrs.get("data-name"), want)
    else:
        ck.ok("%s: unknown chart %r" % (label, name), False)
    return name


def check_page(path):
    ck = Checker()
    tree = Tree()
    with open(path, encoding="utf-8") as f:
        tree.feed(f.read())
    body = next((n for n in tree.root.iter() if n.tag == "body"), None)
    if body is None:
        print("%s: no <body>" % path)
        return 1
    page, frm, to = body.attrs.get("data-page"), body.attrs.get("data-from"), body.attrs.get("data-to")
    dept = body.attrs.get("data-department") if page == "department" else None
    label = "%s(%s..%s%s)" % (page, frm, to, ", " + dept if dept else "")
    if page not in ("overview", "department"):
        print("%s: data-page=%r, not a dashboard page" % (path, page))
        return 1
    db = load_db()
    exp = Expected(db, frm, to, dept)
    nodes = list(tree.root.iter())

    # Escaping: names from the database with <script> in them must stay text. Offline: nothing
    # is loaded from anywhere (no src at all; links and forms stay on this server).
    ck.eq(label + " <script> elements", [n.tag for n in nodes if n.tag == "script"], [])
    ck.eq(label + " elements with src", [n.tag for n in nodes if "src" in n.attrs], [])
    ck.eq(label + " links elsewhere",
          [v for n in nodes for k, v in n.attrs.items()
           if k in ("href", "action") and v is not None and not (v.startswith("/") or v.startswith("data:"))], [])
    check_kpis(ck, nodes, exp, label)
    charts = [check_chart(ck, n, exp, frm, to, label) for n in nodes if n.tag == "svg" and "data-chart" in n.attrs]
    ck.eq(label + " charts", sorted(charts), sorted(CHARTS))

    # SLA by clock
    for n in nodes:
        if n.tag == "td" and n.attrs.get("data-clock"):
            c, kpi = n.attrs["data-clock"], n.attrs.get("data-kpi")
            if kpi == "sla_met":
                ck.count("%s clock %s met" % (label, c), n, exp.total["met"][c])
            elif kpi == "sla_breached":
                ck.count("%s clock %s breached" % (label, c), n, exp.total["breached"][c])
            else:
                ck.rate("%s clock %s on-time" % (label, c), n, exp.total["met"][c],
                        exp.total["met"][c] + exp.total["breached"][c])

    if page == "overview":
        rows = {n.attrs["data-department"]: n for n in nodes if n.tag == "tr" and "data-department" in n.attrs}
        want_rows = {d for d, k in exp.by_dept.items() if d in exp.depts or shows_anything(k)}
        ck.eq(label + " department rows", sorted(rows), sorted(want_rows))
        for d, tr in rows.items():
            k = exp.by_dept.get(d)
            if k is None:
                continue
            cells = {n.attrs.get("data-kpi"): n for n in tr.iter() if n.tag == "td"}
            for c in cells.values():
                ck.eq("%s department %r cell department" % (label, d), c.attrs.get("data-department"), d)
            for kpi in ("received", "resolved", "repeats", "backlog"):
                ck.count("%s department %r %s" % (label, d, kpi), cells[kpi], k[kpi])
            ck.rate("%s department %r on_time_rate" % (label, d), cells["on_time_rate"], met(k), decided(k))
            ck.rate("%s department %r satisfaction_rate" % (label, d), cells["satisfaction_rate"],
                    k["satisfied"], k["visits"])
            a = next((n for n in tr.iter() if n.tag == "a"), None)
            if d:
                ck.ok("%s department %r: no link" % (label, d), a is not None)
                if a is not None:
                    ck.eq("%s department %r name (escaped text round-trips)" % (label, d), a.all_text(), exp.depts[d])
                    ck.ok("%s department %r: link %r" % (label, d, a.attrs.get("href")),
                          a.attrs.get("href") == "/department?id=%s&from=%s&to=%s" % (d, frm, to))
    else:
        rows = {(n.attrs["data-team"], n.attrs["data-agent"]): n for n in nodes
                if n.tag == "tr" and "data-agent" in n.attrs}
        members = {(a["team_id"], a["id"]) for a in exp.agents if a["department_id"] == dept and a["active"]}
        active = {key for key, k in exp.by_agent.items() if k["received"] or k["resolved"] or decided(k) or k["visits"]}
        ck.ok("%s: no agent rows" % label, len(rows) > 0)
        for key in sorted(members | active):
            ck.ok("%s: agent %r (team %r) missing from the table" % (label, key[1], key[0]), key in rows)
        names = {a["id"]: a["name"] for a in exp.agents}
        for key, tr in rows.items():
            k = exp.by_agent.get(key) or zero()
            ck.ok("%s: agent row %r is neither a member nor active in the period" % (label, key),
                  key in members or key in active)
            cells = {n.attrs.get("data-kpi"): n for n in tr.iter() if n.tag == "td" and n.attrs.get("data-kpi")}
            what = "%s agent %r/%r" % (label, key[0], key[1])
            ck.count(what + " received", cells["received"], k["received"])
            ck.count(what + " resolved", cells["resolved"], k["resolved"])
            ck.rate(what + " on_time_rate", cells["on_time_rate"], met(k), decided(k))
            ck.rate(what + " satisfaction_rate", cells["satisfaction_rate"], k["satisfied"], k["visits"])
            c = cells["avg_res_business_h"]
            ck.eq(what + " res_bs", c.attrs.get("data-num"), str(k["res_bs"]))
            ck.eq(what + " resolved (avg)", c.attrs.get("data-den"), str(k["resolved"]))
            if k["resolved"]:
                want = k["res_bs"] / k["resolved"] / 3600
                txt = c.all_text().strip()
                ck.ok("%s avg business hours: %r, want %.2f h" % (what, txt, want),
                      re.fullmatch(r"[0-9.]+ h", txt) is not None and abs(float(txt[:-2]) - want) <= 0.005 + 1e-9)
            if key[1]:
                ck.ok("%s: agent name %r not shown" % (what, names.get(key[1])),
                      (names.get(key[1]) or key[1]) in tr.all_text())
        title = next((n for n in nodes if n.tag == "h1"), None)
        ck.ok("%s: the title does not carry the department's name" % label,
              title is not None and exp.depts.get(dept, dept) in title.all_text())
    return report(ck, label)


def check_svg(path, chart):
    ck = Checker()
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        print("%s: not well-formed XML: %s" % (path, e))
        return 1

    def conv(e, parent):
        n = Node(e.tag.split("}")[-1], e.attrib, parent)
        n.text.append(e.text or "")
        for c in e:
            n.children.append(conv(c, n))
            n.text.append(c.tail or "")
        return n

    svg = conv(root, None)
    ck.eq("svg root", svg.tag, "svg")
    ck.eq("svg data-chart", svg.attrs.get("data-chart"), chart)
    frm, to, dept = svg.attrs.get("data-from"), svg.attrs.get("data-to"), svg.attrs.get("data-department")
    label = "svg %s(%s..%s%s)" % (chart, frm, to, ", " + dept if dept else "")
    check_chart(ck, svg, Expected(load_db(), frm, to, dept), frm, to, label)
    return report(ck, label)


def report(ck, label):
    if ck.problems:
        print("%s: %d of %d checks FAILED:" % (label, len(ck.problems), ck.checked))
        for p in ck.problems[:40]:
            print("  " + p)
        if len(ck.problems) > 40:
            print("  ... and %d more" % (len(ck.problems) - 40))
        return 1
    print("%s: %d checks passed" % (label, ck.checked))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "page":
        sys.exit(check_page(sys.argv[2]))
    if len(sys.argv) == 4 and sys.argv[1] == "svg":
        sys.exit(check_svg(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
