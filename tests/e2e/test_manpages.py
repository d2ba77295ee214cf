"""
test_manpages.py: man/petrel.8 and man/petrel.conf.5 render without a
single warning (groff with every warning on, and man-db's own check), and
they are complete: petrel.conf.5 has an entry for every directive in the
table of src/conf/conf.c (read from the source, so a new directive
without a man entry fails here) and no entry for a directive that does
not exist; petrel.8 has a section for every command docs/commands.md
lists, and no other.
"""
import os
import re
import subprocess

import pytest

SOURCE = os.environ.get("PETREL_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))
MAN8 = os.path.join(SOURCE, "man", "petrel.8")
MAN5 = os.path.join(SOURCE, "man", "petrel.conf.5")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def conf_directives():
    """The names in conf.c's directives[] table."""
    src = read(os.path.join(SOURCE, "src", "conf", "conf.c"))
    m = re.search(r"static const struct conf_directive directives\[\] = "
                  r"\{(.*?)\n\};", src, re.S)
    assert m, "no directives[] table in src/conf/conf.c"
    table = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    names = set(re.findall(r'\{\s*"([a-z0-9_]+)"', table))
    names |= set(re.findall(r'\b(?:STRING|ONOFF)\(\s*"([a-z0-9_]+)"', table))
    names |= set(re.findall(r"\bNUMBER\(\s*([a-z0-9_]+)\s*,", table))
    return names


def man_entries(text):
    """Directive names that open a .TP/.TQ entry of petrel.conf.5."""
    names = set()
    lines = text.splitlines()
    for prev, line in zip(lines, lines[1:]):
        if prev.strip() not in (".TP", ".TQ"):
            continue
        m = re.match(r'^\.(?:B|BI|BR)\s+"?([a-z0-9_]+)', line)
        if m:
            names.add(m.group(1))
    return names


def man_commands(text):
    """The 'petrel ...' .SS headings of petrel.8."""
    out = set()
    for line in text.splitlines():
        if line.startswith(".SS petrel"):
            out.add(line[4:].replace("\\-", "-").strip().strip('"'))
    return out


def doc_commands():
    """The commands of the table at the top of docs/commands.md."""
    text = read(os.path.join(SOURCE, "docs", "commands.md"))
    return set(re.findall(r"^\| \[`(petrel [^`]+)`", text, re.M))


@pytest.mark.parametrize("page", [MAN8, MAN5])
def test_groff_renders_without_warnings(page):
    r = subprocess.run(["groff", "-man", "-ww", "-z", page],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.mark.parametrize("page", [MAN8, MAN5])
def test_man_renders_without_warnings(page):
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat")
    r = subprocess.run(["man", "--warnings", "-l", page],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "NAME" in r.stdout and "SEE ALSO" in r.stdout


def test_every_directive_has_an_entry():
    directives = conf_directives()
    # The parser above must see the whole table, not a few rows.
    for known in ("hostname", "spool", "run_dir", "max_message_size",
                  "dnssec", "tls_cert", "dkim_sign", "quarantine_folder"):
        assert known in directives, "conf.c parse lost %s" % known
    assert len(directives) >= 60, sorted(directives)
    entries = man_entries(read(MAN5))
    missing = sorted(directives - entries)
    assert not missing, "directives without an entry in petrel.conf.5: %s" \
        % missing
    stale = sorted(entries - directives)
    assert not stale, "petrel.conf.5 entries that are no directive: %s" \
        % stale


def test_every_command_has_a_section():
    docs = doc_commands()
    assert "petrel serve" in docs and len(docs) >= 12, sorted(docs)
    sections = man_commands(read(MAN8))
    missing = sorted(docs - sections)
    assert not missing, "commands without a section in petrel.8: %s" \
        % missing
    stale = sorted(sections - docs)
    assert not stale, "petrel.8 sections for commands docs/commands.md " \
        "does not list: %s" % stale


def test_pages_point_to_the_longer_reference():
    assert "docs/commands.md" in read(MAN8)
    assert "docs/configuration.md" in read(MAN5)
