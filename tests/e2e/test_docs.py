# SPDX-License-Identifier: GPL-3.0-or-later
"""The documentation keeps up with pyleakdb.

Every command and subcommand that pyleakdb's `help` lists is described in
the manual page (by its exact usage line, with its aliases) and has a
section in doc/json.md; every option of `pyleakdb --help` is in the manual
page's OPTIONS; and the manual page renders without a groff warning.

The commands come from pyleakdb itself (`help`, then `help COMMAND`, in
JSON), so a new command, subcommand, alias or option fails here until it is
documented.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import TOP

MAN_PAGE = os.path.join(TOP, "doc", "pyleakdb.1")
JSON_DOC = os.path.join(TOP, "doc", "json.md")
GROFF_TIMEOUT = 60


def groff():
    path = shutil.which("groff")
    if not path:
        pytest.skip("groff is not installed (Debian: apt-get install groff-base)")
    return path


def commands(pyleakdb):
    """[(full name, usage, [aliases], has subcommands)] of every command and
    subcommand, as help lists them."""
    r = pyleakdb("-q", "--batch", "--json", "-ex", "help")
    assert r.returncode == 0, r
    groups = r.command("help")["result"]["groups"]
    names = [c["name"] for g in groups for c in g["commands"]]
    assert len(names) >= 30, names
    args = []
    for name in names:
        args += ["-ex", "help " + name]
    r = pyleakdb("-q", "--batch", "--json", *args)
    assert r.returncode == 0, r
    out = []
    for name in names:
        o = r.command("help " + name)
        assert o["ok"] is True, o
        res = o["result"]
        subs = res.get("subcommands", [])
        out.append((name, res["usage"], res.get("aliases", "").split(), bool(subs)))
        for sub in subs:
            out.append(("%s %s" % (name, sub["name"]), sub["usage"],
                        sub.get("aliases", "").split(), False))
    return out


def options(pyleakdb):
    """Every option word of `pyleakdb --help`: -p, --pid, -ex, ..."""
    r = pyleakdb("--help")
    assert r.returncode == 0, r
    found = []
    for line in r.out.splitlines():
        if not line.startswith("  -"):
            continue
        names = re.split(r"\s{2,}", line.strip())[0]  # the option column, not its help
        found += re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", names)
    assert {"-p", "--batch", "--json", "-ex", "-x"} <= set(found), (found, r.out)
    return found


def rendered_man():
    """The manual page as plain text, one long line per paragraph, no hyphenation."""
    p = subprocess.run([groff(), "-man", "-Tascii", "-P-cbou", "-rLL=300n", MAN_PAGE],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=GROFF_TIMEOUT)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode("ascii", "replace")


def section(text, title):
    """The text of a manual page section (its heading is at the start of a line)."""
    m = re.search(r"^%s\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)" % re.escape(title), text, re.S | re.M)
    assert m, "no section %s in %s" % (title, MAN_PAGE)
    return m.group(1)


def flat(text):
    return " ".join(text.split())


def has_word(text, word):
    return re.search(r"(?<![\w$-])%s(?![\w-])" % re.escape(word), text) is not None


def test_man_page_renders_without_warnings():
    p = subprocess.run([groff(), "-man", "-ww", "-z", MAN_PAGE], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=GROFF_TIMEOUT)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode("utf-8", "replace")


def test_man_page_documents_every_command(pyleakdb):
    body = flat(section(rendered_man(), "COMMANDS"))
    # "Alias: c." and "Aliases: backtrace, where."
    aliases_named = set()
    for listed in re.findall(r"Alias(?:es)?: (.+?)\.(?:\s|$)", body):
        aliases_named.update(a.strip() for a in listed.split(","))
    missing = []
    for name, usage, aliases, _ in commands(pyleakdb):
        if flat(usage) not in body:
            missing.append("%s: its usage line %r" % (name, usage))
        for alias in aliases:
            if alias not in aliases_named:
                missing.append("%s: its alias %r (as 'Alias: %s.')" % (name, alias, alias))
    assert not missing, ("doc/pyleakdb.1 does not describe (COMMANDS section):\n  "
                         + "\n  ".join(missing))


def test_man_page_documents_every_option(pyleakdb):
    text = flat(section(rendered_man(), "OPTIONS"))
    missing = [o for o in options(pyleakdb) if not has_word(text, o)]
    assert not missing, "doc/pyleakdb.1 OPTIONS does not mention: %s" % ", ".join(missing)


def test_json_doc_has_a_section_for_every_command(pyleakdb):
    with open(JSON_DOC) as f:
        headings = [line for line in f.read().splitlines() if line.startswith("#")]
    documented = set()
    for line in headings:
        documented.update(re.findall(r"`([^`]+)`", line))
    # a command that only groups subcommands (info, tracemalloc) has no result of its own
    missing = [name for name, _, _, has_subs in commands(pyleakdb)
               if not has_subs and name not in documented]
    assert not missing, ("doc/json.md has no heading naming (in backquotes): %s"
                         % ", ".join(missing))
