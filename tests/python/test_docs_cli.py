#!/usr/bin/python3
"""The README, docs/operations.md and the man page against the real binary.

Usage: test_docs_cli.py <wsrelay-binary> <source-dir>

- `wsrelay --help`'s Environment section, the man page's ENVIRONMENT and
  the README's Environment line list the same variables: every one the
  server reads (a name the code looks up, or a ${NAME} in a shipped config);
- every --flag of `wsrelay --help` is in docs/wsrelay.1 (and has an OPTIONS
  entry there), and every flag of the man page is in --help; the rendered
  SYNOPSIS equals the usage lines of --help;
- every flag given to wsrelay in a README.md code block exists in --help;
- every relative link of README.md and docs/operations.md points to an
  existing file, and the README links every docs/*.md;
- the README's quick-start block is exactly `make run` and `make test`.

The code blocks themselves (configs, scripts, exchanges, shell commands) of
every page are run by test_docs_samples.py; both take the blocks from
docs_samples.py.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import docs_samples  # noqa: E402

BINARY = os.path.abspath(sys.argv[1])
SOURCE = os.path.abspath(sys.argv[2])

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))


def read(rel):
    with open(os.path.join(SOURCE, rel), encoding="utf-8") as f:
        return f.read()


def code_blocks(markdown):
    """(info string, body) of every fenced code block."""
    return [(b.lang, b.body) for b in docs_samples.code_blocks(markdown)]


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")

help_text = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=10).stdout
help_flags = set(FLAG.findall(help_text))
check("--help lists the expected flags",
      help_flags >= {"--config", "--host", "--port", "--check", "--log-level",
                     "--log-format", "--version", "--help"}, sorted(help_flags))

# --- man page -------------------------------------------------------------
man_src = read("docs/wsrelay.1")
man_plain = re.sub(r"\\f[BIRP]|\\f\(..", "", man_src).replace("\\-", "-")
man_flags = set(FLAG.findall(man_plain))
check("every --help flag is in docs/wsrelay.1", help_flags <= man_flags,
      sorted(help_flags - man_flags))
check("every docs/wsrelay.1 flag is in --help", man_flags <= help_flags,
      sorted(man_flags - help_flags))

options = man_plain.split(".SH OPTIONS", 1)[-1].split("\n.SH ", 1)[0]
entries = set()
for m in re.finditer(r"^\.TP\n\.B[IR]?\s+(--[a-z-]+)", options, re.M):
    entries.add(m.group(1))
check("docs/wsrelay.1 OPTIONS has a .TP entry per --help flag", entries == help_flags,
      f"entries {sorted(entries)}")
for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "SIGNALS",
                "FILES", "EXIT STATUS", "SEE ALSO"):
    check(f"docs/wsrelay.1 has section {section}", f"\n.SH {section}\n" in man_src)
environment = man_src.split("\n.SH ENVIRONMENT\n", 1)[-1].split("\n.SH ", 1)[0]
man_vars = set(re.findall(r"^\.B ([A-Z][A-Z0-9_]+)$", environment, re.M))


def variables_read():
    """Environment variables the server reads: the names the code looks up
    (string literals that look like one, in core/, app/, plugins/) and the
    ${NAME} references of the shipped configs and scripts."""
    found = set()
    for top in ("core", "app", "plugins"):
        for folder, _, files in os.walk(os.path.join(SOURCE, top)):
            for name in files:
                if name.endswith((".cpp", ".hpp", ".c", ".h")):
                    with open(os.path.join(folder, name), encoding="utf-8") as f:
                        found |= set(re.findall(r'"((?:WSRELAY|OPENAI)_[A-Z0-9_]+)"', f.read()))
    for pattern in ("examples/*/*.json", "examples/*/*.lua", "examples/*/*/*.json", "scripts/*.lua"):
        for path in glob.glob(os.path.join(SOURCE, pattern)):
            with open(path, encoding="utf-8") as f:
                found |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", f.read()))
    return found


code_vars = variables_read()
help_env = help_text.split("\nEnvironment:", 1)[-1] if "\nEnvironment:" in help_text else ""
help_vars = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s", help_env, re.M))
readme_env = re.search(r"Environment: (.*?)\.(?:\n\n|\s*\Z)", read("README.md"), re.S)
readme_vars = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme_env.group(1))) if readme_env else set()
check("the server reads WSRELAY_JWT_SECRET and WSRELAY_ADMIN_TOKEN (found by the scan)",
      {"WSRELAY_JWT_SECRET", "WSRELAY_ADMIN_TOKEN"} <= code_vars, sorted(code_vars))
check("--help Environment lists every variable the server reads", help_vars == code_vars,
      f"--help {sorted(help_vars)}, read {sorted(code_vars)}")
check("docs/wsrelay.1 ENVIRONMENT lists the same variables as --help", man_vars == help_vars,
      f"man {sorted(man_vars)}, --help {sorted(help_vars)}")
check("README.md's Environment line lists the same variables as --help", readme_vars == help_vars,
      f"README {sorted(readme_vars)}, --help {sorted(help_vars)}")

usage = help_text.split("\n\n", 1)[0]
usage_words = " ".join(usage.replace("Usage:", "", 1).split())
groff = shutil.which("groff")
if groff:
    r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-P", "-cbou", os.path.join(SOURCE, "docs/wsrelay.1")],
                       capture_output=True, text=True, timeout=30,
                       env={**os.environ, "LC_ALL": "C.UTF-8"})
    check("docs/wsrelay.1 renders without groff warnings", r.returncode == 0 and not r.stderr.strip(),
          r.stderr.strip()[:500])
    rendered = r.stdout.replace("\u2010", "-").replace("\u2212", "-")
    synopsis = rendered.split("SYNOPSIS", 1)[-1].split("DESCRIPTION", 1)[0]
    synopsis_words = " ".join(synopsis.split())
    check("rendered SYNOPSIS equals the --help usage", synopsis_words == usage_words,
          f"\n  man:  {synopsis_words}\n  help: {usage_words}")
else:
    print("skip rendering checks: groff is not installed")

# --- README ---------------------------------------------------------------
readme = read("README.md")
blocks = code_blocks(readme)


def wsrelay_flags(body):
    """Flags given to wsrelay in a shell block: after a `wsrelay` command
    word (up to the next |, ;, &, # or end of the command), and in ARGS="..."."""
    found = []
    text = re.sub(r"\\\n", " ", body)
    for line in text.splitlines():
        for m in re.finditer(r"(?:^|[\s/])wsrelay(?=\s|$)(.*)", line):
            rest = re.split(r"\s(?:\||;|&&|&|#)|\s>", m.group(1) + " ", maxsplit=1)[0]
            found += FLAG.findall(rest)
        for m in re.finditer(r'ARGS="([^"]*)"', line):
            found += FLAG.findall(m.group(1))
    return found


used = []
for info, body in blocks:
    if info in ("", "sh", "bash", "shell", "console"):
        used += wsrelay_flags(body)
used += FLAG.findall(" ".join(re.findall(r'ARGS="([^"]*)"', readme)))
check("README.md code blocks pass flags to wsrelay", len(used) > 0)
unknown = sorted(set(used) - help_flags)
check("every wsrelay flag in README.md code blocks is in --help", not unknown, unknown)

quick = re.search(r"^## Quick start[^\n]*\n(.*?)(?=^## )", readme, re.S | re.M)
commands = []
if quick:
    qblocks = code_blocks(quick.group(1))
    if qblocks:
        for line in qblocks[0][1].splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                commands.append(line)
check("README quick start is exactly `make run` and `make test`",
      commands == ["make run", "make test"], commands)


def links(markdown):
    # drop code blocks and inline code, then take [text](target) and ![alt](target)
    text = re.sub(r"^ *```.*?^ *```", "", markdown, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [m.group(1) for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)]


for doc in ("README.md", "docs/operations.md"):
    base = os.path.dirname(os.path.join(SOURCE, doc))
    rel_links = [l for l in links(read(doc))
                 if not re.match(r"^[a-z][a-z0-9+.-]*:", l) and not l.startswith("#")]
    missing = [l for l in rel_links
               if not os.path.exists(os.path.normpath(os.path.join(base, l.split("#", 1)[0])))]
    check(f"{doc}: every relative link points to an existing file ({len(rel_links)} links)",
          rel_links and not missing, missing)

readme_links = {os.path.normpath(l.split("#", 1)[0]) for l in links(readme)}
docs = sorted(f"docs/{n}" for n in os.listdir(os.path.join(SOURCE, "docs")) if n.endswith(".md"))
unlinked = [d for d in docs if d not in readme_links]
check("README.md links every docs/*.md", not unlinked, unlinked)
check("README.md shows docs/demo.png", "docs/demo.png" in readme_links)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
