"""The glossary (glossary.md): one Sphinx glossary of bilingual entries (English and Chinese), and
the chapters' {term} links to it. Fast: reads the sources, builds nothing (`make book` checks that
Sphinx resolves every link; these tests say which link or entry is wrong, and where)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "glossary.md"
CHAPTERS = sorted((ROOT / "chapters").glob("0*.md"))
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# The seven pairs the glossary issue names, with the Chinese rendering it asks for.
PAIRS = [
    ("Catastrophic forgetting", "灾难性遗忘"),
    ("Continual learning", "持续学习"),
    ("Incremental learning", "增量学习"),
    ("Knowledge distillation", "知识蒸馏"),
    ("Replay", "回放"),
    ("Progressive neural networks", "渐进式神经网络"),
    ("Stability–plasticity", "稳定性–可塑性"),
]
# Directives whose body is prose (a term used there counts as used); other fenced blocks are code.
PROSE_DIRECTIVES = {"admonition", "note", "tip", "warning", "important", "caution", "hint", "seealso",
                    "attention", "danger", "error", "dropdown"}
TERM_ROLE = re.compile(r"\{term\}`([^`]*)`")
ANY_ROLE = re.compile(r"\{[\w:.-]+\}`[^`]*`")


# --------------------------------------------------------------------------------------------
# The glossary


def glossary_block(text: str) -> list[str]:
    """The lines inside the one ```{glossary} fence."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^(`{3,})\{glossary\}\s*$", line)]
    assert len(starts) == 1, f"glossary.md must hold exactly one ```{{glossary}} block, found {len(starts)}"
    fence = re.match(r"^(`{3,})", lines[starts[0]]).group(1)
    for end in range(starts[0] + 1, len(lines)):
        if lines[end].strip() == fence:
            return lines[starts[0] + 1:end]
    raise AssertionError("the ```{glossary} block of glossary.md is not closed")


def parse_glossary(text: str) -> tuple[list[str], list[dict]]:
    """(options, entries) of the glossary block; an entry is {"terms": [...], "paragraphs": [...]}:
    consecutive unindented lines are its terms, the indented lines after them its definition."""
    lines = glossary_block(text)
    options = []
    while lines and (lines[0].startswith(":") or not lines[0].strip()):
        if lines[0].strip():
            options.append(lines[0].strip())
        lines = lines[1:]
    entries, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        assert not lines[i][0].isspace(), f"glossary: indented line without a term above it: {lines[i]!r}"
        terms = []
        while i < len(lines) and lines[i].strip() and not lines[i][0].isspace():
            terms.append(lines[i].strip())
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i][0].isspace()):
            body.append(lines[i].strip())
            i += 1
        paragraphs = [" ".join(p.split("\n")) for p in "\n".join(body).split("\n\n") if p.strip()]
        entries.append({"terms": terms, "paragraphs": [p.strip() for p in paragraphs]})
    return options, entries


OPTIONS, ENTRIES = parse_glossary(GLOSSARY.read_text(encoding="utf-8"))
TERM_TO_ENTRY = {term.lower(): k for k, entry in enumerate(ENTRIES) for term in entry["terms"]}


def english_terms(entry: dict) -> list[str]:
    return [t for t in entry["terms"] if not CJK.search(t)]


def test_the_glossary_has_entries_and_is_sorted():
    assert 45 <= len(ENTRIES) <= 80, len(ENTRIES)
    firsts = [entry["terms"][0].lower() for entry in ENTRIES]
    assert ":sorted:" in OPTIONS or firsts == sorted(firsts), "set :sorted: or sort the entries by their first term"


def test_terms_are_unique():
    """Sphinx looks terms up case-insensitively and warns about duplicates."""
    terms = [term.lower() for entry in ENTRIES for term in entry["terms"]]
    assert len(terms) == len(set(terms)), sorted({t for t in terms if terms.count(t) > 1})


def test_term_lines_are_plain():
    """' : ' on a term line starts a Sphinx classifier, and roles or markup have no place there."""
    for entry in ENTRIES:
        for term in entry["terms"]:
            assert " : " not in term and not re.search(r"[`*$\[\]{}]", term), term


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["terms"][0])
def test_every_entry_is_bilingual(entry):
    assert english_terms(entry), f"{entry['terms']}: no English term line"
    assert any(CJK.search(t) for t in entry["terms"]), f"{entry['terms']}: no Chinese term line"
    english = [p for p in entry["paragraphs"] if not CJK.search(p) and len(p.split()) >= 8]
    chinese = [p for p in entry["paragraphs"] if len(CJK.findall(p)) >= 10]
    assert english, f"{entry['terms'][0]}: no English definition"
    assert chinese, f"{entry['terms'][0]}: no Chinese definition"
    english_index = entry["paragraphs"].index(english[0])
    assert english_index < entry["paragraphs"].index(chinese[0]), f"{entry['terms'][0]}: English first, then Chinese"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["terms"][0])
def test_every_entry_says_where_it_is_introduced(entry):
    links = re.findall(r"\]\((chapters/[^)#]+)\)", " ".join(entry["paragraphs"]))
    assert links, f"{entry['terms'][0]}: no link to the chapter that introduces it"
    for link in links:
        assert (ROOT / link).exists(), f"{entry['terms'][0]}: {link} does not exist"


@pytest.mark.parametrize("english, chinese", PAIRS)
def test_the_issue_pairs_are_there(english, chinese):
    matches = [e for e in ENTRIES if chinese in e["terms"]]
    assert matches, f"no entry has the Chinese term {chinese!r}"
    assert any(t == english or t.startswith(english + " ") for e in matches for t in e["terms"]), (
        f"the entry of {chinese!r} has no English term {english!r}: {matches[0]['terms']}")


# --------------------------------------------------------------------------------------------
# The chapters: where the prose is, which terms it links, and where it mentions them


def _blank(text: str, start: int, end: int) -> str:
    """text with [start, end) replaced by NUL characters (newlines kept): positions stay put."""
    return text[:start] + re.sub(r"[^\n]", "\0", text[start:end]) + text[end:]


def prose_of(source: str) -> str:
    """The chapter source with everything that is not markdown prose blanked out: front matter,
    code cells and other code blocks, cell separators, headings, directive titles and options.
    Admonition bodies stay (the goals box counts as text)."""
    lines = source.split("\n")
    keep = [True] * len(lines)
    i = 0
    if lines and lines[0].strip() == "---":  # jupytext front matter
        end = lines.index("---", 1)
        keep[: end + 1] = [False] * (end + 1)
        i = end + 1
    stack = []  # open fences: (backticks, is_prose)
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*(`{3,}|~{3,})(.*)$", line)
        if fence and stack and fence.group(1)[0] == stack[-1][0][0] and len(fence.group(1)) >= len(stack[-1][0]) \
                and not fence.group(2).strip():
            stack.pop()
            keep[i] = False
        elif fence and fence.group(2).strip() and (not stack or stack[-1][1]):
            name = re.match(r"\{([\w-]+)\}", fence.group(2).strip())
            is_prose = bool(name) and name.group(1) in PROSE_DIRECTIVES
            stack.append((fence.group(1), is_prose))
            keep[i] = False
            if is_prose:  # directive options, ":key: value" lines or a --- YAML block, are not prose
                j = i + 1
                if j < len(lines) and lines[j].strip() == "---":
                    j = lines.index("---", j + 1) + 1
                while j < len(lines) and re.match(r"^\s*:[\w-]+:", lines[j]):
                    j += 1
                keep[i + 1:j] = [False] * (j - i - 1)
                i = j
                continue
        elif fence and (not stack or stack[-1][1]):  # a bare ``` opening: code
            stack.append((fence.group(1), False))
            keep[i] = False
        else:
            in_code = any(not prose for _, prose in stack)
            if in_code or line.strip() == "+++" or re.match(r"^\s*#{1,6}\s", line):
                keep[i] = False
        i += 1
    return "\n".join(line if k else re.sub(r".", "\0", line) for line, k in zip(lines, keep))


def term_links(prose: str) -> list[tuple[int, str, str]]:
    """(position, shown text, target) of every {term} role in the prose."""
    links = []
    for m in TERM_ROLE.finditer(prose):
        content = m.group(1)
        explicit = re.match(r"^(.*?)\s*<([^<>]+)>\s*$", content, re.S)
        text, target = (explicit.group(1), explicit.group(2)) if explicit else (content, content)
        links.append((m.start(), " ".join(text.split()), " ".join(target.split())))
    return links


def plain_text(prose: str) -> str:
    """The prose with roles, code spans, math and link texts blanked: what is left is running text."""
    for pattern in (ANY_ROLE, re.compile(r"(`+)(?:(?!\1).)+?\1", re.S), re.compile(r"\$\$.+?\$\$", re.S),
                    re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"), re.compile(r"\[[^\]]*\]\([^)]*\)"),
                    re.compile(r"<https?://[^>]*>"), re.compile(r"https?://\S+")):
        for m in reversed(list(pattern.finditer(prose))):
            prose = _blank(prose, m.start(), m.end())
    return prose


def term_pattern(term: str) -> str:
    """A regex for a mention of `term` in running text: words apart by spaces, line breaks or
    emphasis markers or a hyphen ("continual-learning method"), a plural s, hyphen or en dash alike; case-insensitive except for the
    capitals inside abbreviations and names (EWC, LwF, RanPAC)."""
    words = []
    for word in re.split(r"\s+", term):
        parts = [re.escape(p) for p in re.split(r"[-–]", word)]
        words.append("[-–]".join(parts))
    body = r"[\s*_-]+".join(words)
    if any(c.isupper() for c in term[1:]):
        first = term[0]
        body = (f"[{re.escape(first.upper())}{re.escape(first.lower())}]" if first.isalpha() else re.escape(first)) \
            + body[len(re.escape(first)):]
        flags = ""
    else:
        flags = "(?i)"
    return rf"{flags}(?<![\w-]){body}(?:s|es)?(?![\w-])"


PATTERNS = [(k, re.compile(term_pattern(term))) for k, entry in enumerate(ENTRIES) for term in english_terms(entry)]


def mentions(text: str) -> list[tuple[int, int, int]]:
    """(start, end, entry) of every mention of a glossary term in running text; where terms overlap,
    the one that starts first and is longest wins ("experience replay" is not also "replay")."""
    found = sorted(((m.start(), m.end(), k) for k, pattern in PATTERNS for m in pattern.finditer(text)),
                   key=lambda s: (s[0], -(s[1] - s[0])))
    kept, last_end = [], -1
    for start, end, k in found:
        if start >= last_end:
            kept.append((start, end, k))
            last_end = end
    return kept


def chapter_analysis(path: Path) -> dict:
    source = path.read_text(encoding="utf-8")
    prose = prose_of(source)
    links = term_links(prose)
    return {"source": source, "prose": prose, "links": links, "mentions": mentions(plain_text(prose))}


ANALYSES = {path.name: chapter_analysis(path) for path in CHAPTERS}


def _line(source: str, position: int) -> str:
    number = source.count("\n", 0, position) + 1
    return f"line {number}: {source.splitlines()[number - 1].strip()[:100]!r}"


def test_there_are_chapters():
    assert len(CHAPTERS) == 8


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_term_links_resolve(chapter):
    analysis = ANALYSES[chapter.name]
    unknown = [f"{target!r} ({_line(analysis['source'], pos)})" for pos, _, target in analysis["links"]
               if target.lower() not in TERM_TO_ENTRY]
    assert not unknown, "{term} targets not in glossary.md: " + "; ".join(unknown)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_term_links_only_in_prose(chapter):
    """No {term} role in a code cell, a heading, an admonition title or a link text."""
    analysis = ANALYSES[chapter.name]
    in_prose = {m.start() for m in TERM_ROLE.finditer(analysis["prose"])}
    misplaced = [_line(analysis["source"], m.start()) for m in TERM_ROLE.finditer(analysis["source"])
                 if m.start() not in in_prose]
    misplaced += [_line(analysis["source"], m.start()) for m in re.finditer(r"\[[^\]]*\{term\}[^\]]*\]\(", analysis["prose"])]
    assert not misplaced, "{term} outside running text: " + "; ".join(misplaced)


def test_every_entry_is_linked_from_a_chapter():
    linked = {TERM_TO_ENTRY[target.lower()] for a in ANALYSES.values() for _, _, target in a["links"]
              if target.lower() in TERM_TO_ENTRY}
    missing = [ENTRIES[k]["terms"][0] for k in range(len(ENTRIES)) if k not in linked]
    assert not missing, f"glossary entries no chapter links to: {missing}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_each_term_is_linked_where_the_chapter_first_uses_it(chapter):
    """For every entry a chapter links: the link comes first, no plain mention of the entry's terms
    (outside code, math, headings, link texts and other roles) before it; and one link per entry."""
    analysis = ANALYSES[chapter.name]
    first_link, repeated = {}, []
    for pos, _, target in analysis["links"]:
        k = TERM_TO_ENTRY.get(target.lower())
        if k is None:
            continue
        if k in first_link:
            repeated.append(f"{ENTRIES[k]['terms'][0]!r} again at {_line(analysis['source'], pos)}")
        first_link.setdefault(k, pos)
    early = [f"{ENTRIES[k]['terms'][0]!r}: plain {analysis['source'][start:end]!r} at {_line(analysis['source'], start)} "
             f"comes before the link at {_line(analysis['source'], first_link[k])}"
             for start, end, k in analysis["mentions"] if k in first_link and start < first_link[k]]
    assert not early, "link the first use instead:\n" + "\n".join(dict.fromkeys(early))
    assert not repeated, "link each term once per chapter:\n" + "\n".join(repeated)
