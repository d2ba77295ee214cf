#!/usr/bin/python3
"""Dump an openspf-format YAML suite (rfc7208-tests.yml) as lines that
tests/unit/test_msgauth_spf_suite.c reads (C has no YAML parser).

Usage: /usr/bin/python3 spf_suite_dump.py FILE.yml

Every field is escaped: bytes outside printable ASCII, '\\' and TAB as
\\xHH (strings are UTF-8 encoded first, as the pyspf driver does). Fields
are separated by one TAB. Lines:

  S <description>                       a scenario starts (fresh resolver)
  Z <name> <type> OK <value>...         the answer for (name, type)
  Z <name> <type> TEMPFAIL              queries time out
  Z <name> - EXISTS                     the name exists, no records served
  T <id> <host> <mailfrom> <helo> <results> <explanation>
                                        results: comma-separated, any one
                                        passes; explanation: "-" when not
                                        given, else "=" and the text
  E                                     the scenario ends
  N <scenarios> <tests>                 totals, last line

The zonedata interpretation is the one of
../shared/conformance/tools/pyspf_run_suite.py (the reference driver):
SPF records are served as TXT when the name has no TXT of its own
("TXT: NONE" counts as having one); a bare TIMEOUT makes every query type
time out that has no record listed before it; "TYPE: TIMEOUT" times out
that type; names not listed do not exist.
"""
import sys

import yaml

TYPES = ('A', 'AAAA', 'MX', 'TXT', 'PTR', 'CNAME')


def esc(v):
    if isinstance(v, str):
        v = v.encode('utf-8')
    out = []
    for b in v:
        if b < 0x20 or b >= 0x7f or b in (0x5c, 0x09):
            out.append('\\x%02x' % b)
        else:
            out.append(chr(b))
    return ''.join(out)


def zone_records(recs):
    """The record list as the reference driver builds it."""
    out, spfs, has_txt = [], [], False
    for r in recs:
        if r == 'TIMEOUT':
            out.append('TIMEOUT')
            continue
        (t, v), = r.items()
        if t in ('TXT', 'SPF') and isinstance(v, str):
            v = [v]
        if t == 'TXT':
            has_txt = True
        if t == 'SPF':
            spfs.append(v)
        if v != ['NONE']:
            out.append((t, v))
    if not has_txt:
        out += [('TXT', v) for v in spfs]
    return out


def answer(out, qtype):
    """None for a timeout, else the values of qtype (the driver's loop)."""
    seen, vals = False, []
    for r in out:
        if r == 'TIMEOUT':
            if not seen:
                return None
            return vals
        t, v = r
        if t == qtype:
            seen = True
            if v == 'TIMEOUT':
                return None
            vals.append(v)
    return vals


def value_text(t, v):
    if t in ('TXT', 'SPF'):
        return ''.join(v)       # character-strings of one record, joined
    if t == 'MX':
        pref, host = v
        return '%d %s' % (pref, host if host else '.')
    return str(v)


def main():
    path = sys.argv[1]
    nscen = ntests = 0
    with open(path, 'rb') as f:
        docs = list(yaml.safe_load_all(f))
    w = sys.stdout.write
    for scen in docs:
        nscen += 1
        w('S\t%s\n' % esc(scen.get('description', '')))
        for name, recs in (scen.get('zonedata') or {}).items():
            out = zone_records(recs)
            emitted = False
            for qt in TYPES:
                vals = answer(out, qt)
                if vals is None:
                    w('Z\t%s\t%s\tTEMPFAIL\n' % (esc(name), qt))
                    emitted = True
                elif vals:
                    w('Z\t%s\t%s\tOK\t%s\n' % (esc(name), qt, '\t'.join(
                        esc(value_text(qt, v)) for v in vals)))
                    emitted = True
            if not emitted:
                w('Z\t%s\t-\tEXISTS\n' % esc(name))
        for tid, t in scen['tests'].items():
            ntests += 1
            res = t['result'] if isinstance(t['result'], list) else \
                [t['result']]
            exp = '=' + esc(t['explanation']) if 'explanation' in t else '-'
            w('T\t%s\t%s\t%s\t%s\t%s\t%s\n' % (
                esc(tid), esc(str(t['host'])), esc(t['mailfrom']),
                esc(t['helo']), ','.join(res), exp))
        w('E\n')
    w('N\t%d\t%d\n' % (nscen, ntests))


main()
