"""Code blocks of the documentation pages, for the tests that keep them honest
(test_docs_cli.py, test_docs_samples.py).

A fenced block may be preceded (on the line before its fence, blank lines
allowed) by a mark, an HTML comment that Markdown renderers do not show:

    <!-- sample: skip (why it cannot run here) -->
    <!-- sample: fragment -->          part of a script/config, not a whole one
    <!-- sample: exchange key=value ... [after MESSAGE MESSAGE ...] -->
    <!-- sample: file NAME -->         also save the block as NAME for later blocks
    <!-- sample: response GET /path --> JSON a live server answers with
    <!-- sample: plugin libNAME.so -->  C source of a plugin, compiled and loaded
    <!-- sample: upstream -->          JSON the relay sends to (the fake) OpenAI
    <!-- sample: log [FLAGS] -->       log lines a relay prints

test_docs_samples.py says what each kind does. Unmarked blocks are run
whenever the test knows how; a block it cannot run must carry a mark.
"""

import json
import os
import re

PAGES_FIXED = [
    "README.md",
    "docs/protocol.md",
    "docs/lua-api.md",
    "docs/configuration.md",
    "docs/plugins.md",
    "docs/operations.md",
    "docs/security.md",
    "docs/architecture.md",
]


def pages(source):
    """Every page whose samples are checked, relative to the source dir."""
    found = list(PAGES_FIXED)
    examples = os.path.join(source, "examples")
    for name in sorted(os.listdir(examples)):
        if os.path.isfile(os.path.join(examples, name, "README.md")):
            found.append("examples/%s/README.md" % name)
    return found


class Mark:
    KINDS = ("skip", "fragment", "exchange", "file", "response", "plugin", "upstream", "log")

    def __init__(self, text):
        self.text = text
        words = text.split(None, 1)
        self.kind = words[0] if words else ""
        self.rest = words[1].strip() if len(words) > 1 else ""
        self.reason = ""
        self.args = {}
        self.words = []
        self.after = []
        if self.kind == "skip":
            m = re.fullmatch(r"\((.+)\)", self.rest, re.S)
            self.reason = m.group(1).strip() if m else ""
            return
        rest = self.rest
        if " after " in " " + rest + " ":
            head, _, tail = (" " + rest).partition(" after ")
            rest = head.strip()
            decoder = json.JSONDecoder()
            tail = tail.strip()
            while tail:
                value, end = decoder.raw_decode(tail)
                self.after.append(value)
                tail = tail[end:].strip()
        for word in rest.split():
            if "=" in word:
                key, _, value = word.partition("=")
                self.args[key] = value
            else:
                self.words.append(word)

    def problem(self):
        """Why this mark is malformed, or None."""
        if self.kind not in self.KINDS:
            return "unknown mark kind %r (known: %s)" % (self.kind, ", ".join(self.KINDS))
        if self.kind == "skip" and not self.reason:
            return "a skip mark needs a reason: <!-- sample: skip (reason) -->"
        if self.kind in ("file", "plugin", "response") and not self.words:
            return "a %s mark needs an argument" % self.kind
        if self.kind == "file" and len(self.words) != 1:
            return "a file mark names one file: <!-- sample: file NAME -->"
        return None


class Block:
    def __init__(self, page, line, lang, body, mark):
        self.page = page
        self.line = line          # 1-based line of the opening fence
        self.lang = lang
        self.body = body
        self.mark = mark          # Mark or None

    @property
    def where(self):
        return "%s:%d (```%s)" % (self.page, self.line, self.lang)

    def __repr__(self):
        return "<Block %s>" % self.where


FENCE = re.compile(r"^( *)```([^`\n]*)$")
MARK = re.compile(r"^\s*<!--\s*sample:\s*(.*?)\s*-->\s*$")


def code_blocks(markdown, page="?"):
    """Every fenced code block of a Markdown text, as Block objects, with the
    indentation of its fence removed from its lines."""
    lines = markdown.split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        lang = m.group(2).strip()
        start = i
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^ *```\s*$", lines[i]):
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        i += 1  # the closing fence
        mark = None
        j = start - 1
        while j >= 0 and lines[j].strip() == "":
            j -= 1
        if j >= 0:
            mm = MARK.match(lines[j])
            if mm:
                mark = Mark(mm.group(1))
        blocks.append(Block(page, start + 1, lang, "\n".join(body) + ("\n" if body else ""), mark))
    return blocks


def read_page(source, page):
    with open(os.path.join(source, page), encoding="utf-8") as f:
        return f.read()


def page_blocks(source, page):
    return code_blocks(read_page(source, page), page)
