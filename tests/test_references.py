"""The course's one bibliography: references.bib is complete and well formed, the chapters,
exercises, solutions and the glossary cite only keys it has, every entry is cited by a chapter,
every chapter ends with a References section that cites by key, and no hand-written author-year
citation (English, or Chinese as in the glossary's definitions) is left in the markdown. Fast: no
build, no network."""

import re
from pathlib import Path

import jupytext
import pytest
from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "references.bib"
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))
SOURCES = sorted(p for folder in ("chapters", "exercises", "solutions") for p in (ROOT / folder).glob("*.md"))
# A plain MyST page (not a notebook): read as text. Its Chinese definitions cite with the same roles.
GLOSSARY = ROOT / "glossary.md"
CITING = SOURCES + [GLOSSARY]
VENUE_FIELDS = ("journal", "booktitle", "publisher", "school", "institution", "howpublished")
# {cite}`a`, {cite:p}`a,b`, {cite:t}`{see}a{eq. 2}` (pre- and post-text in braces), ...
CITE_ROLE = re.compile(r"\{cite(?::(?P<kind>[a-z]+))?\}`(?P<targets>[^`]*)`")
YEAR = r"\(?\s*(?:1[89]|20)\d\d\b"
# the same in Chinese text, where the parenthesis and the comma before a year are full-width
ZH_YEAR = r"[（(]?\s*(?:1[89]|20)\d\d\b"
LATIN_NAME = r"[A-Z][A-Za-z\u00c0-\u024f'’-]*"


def _entries():
    return parse_file(str(BIB), bib_format="bibtex").entries


def cited_keys(text: str) -> list[str]:
    """Every key that a cite role in `text` names, pre- and post-texts left out."""
    keys = []
    for match in CITE_ROLE.finditer(text):
        bare = re.sub(r"\{[^{}]*\}", "", match.group("targets"))
        keys += [key.strip() for key in bare.split(",") if key.strip()]
    return keys


def markdown_cells(path: Path) -> list[str]:
    return [cell.source for cell in jupytext.read(path).cells if cell.cell_type == "markdown"]


def prose(markdown: str) -> str:
    """A markdown cell's running text: headings, fence lines (admonition titles) and directive
    options dropped, cite roles and inline code removed, whitespace collapsed. Math stays."""
    lines = [line for line in markdown.splitlines()
             if not re.match(r"\s*(#|```|:::|:[\w-]+:)", line)]
    text = CITE_ROLE.sub(" ", "\n".join(lines))
    text = re.sub(r"`[^`]*`", " ", text)
    return " ".join(text.split())


def handwritten_citations(text: str, surnames) -> list[str]:
    """Author-year citations written by hand: 'et al. 2017', 'et al. (2017)', 'et al., 2017',
    'Widrow & Hoff (1960)', 'Azoury and Warmuth 2001', or a cited first author's surname
    followed by a year ('Dawid 1984', 'French (1999)'); in Chinese text 'Chaudhry 等，2019',
    'Zhou 等, 2023', 'Lopez-Paz 与 Ranzato，2017', 'van de Ven 与 Tolias（2019）', 'Dawid，1984'."""
    patterns = [rf"\bet\s+al\.?,?\s+{YEAR}",
                rf"\b[A-Z][\w'’-]+,?\s+(?:&|and)\s+[A-Z][\w'’-]+,?\s+{YEAR}",
                rf"{LATIN_NAME}\s*等\s*[，,]?\s*{ZH_YEAR}",
                rf"{LATIN_NAME}\s*[与和]\s*{LATIN_NAME}\s*[，,]?\s*{ZH_YEAR}"]
    patterns += [rf"(?<![\w-]){re.escape(name)}(?:,?\s+{YEAR}|\s*[，（]\s*{ZH_YEAR})" for name in surnames]
    return [m.group(0) for pattern in patterns for m in re.finditer(pattern, text)]


def first_author_surnames():
    names = set()
    for entry in _entries().values():
        person = entry.persons["author"][0]
        surname = " ".join(person.last_names)
        if re.fullmatch(r"[^\W\d_][\w'’-]*", surname):
            names.add(surname)
    return sorted(names)


def references_section(path: Path) -> str:
    text = path.read_text()
    match = re.search(r"^## References[ \t]*\n(?P<body>.*?)(?=^#{1,2} |\Z)", text, flags=re.M | re.S)
    assert match, f"{path.name} has no '## References' section"
    return match.group("body")


# --- the helpers themselves -----------------------------------------------------------------

def test_cited_keys_reads_every_role_form():
    text = ("{cite:t}`a2000x` and {cite:p}`b2001y{eq. 2}`, {cite}`c2002z,d2003w` "
            "{cite:ct}`{e.g.}e2004v{§3, Algorithm 1}, f2005u` {cite:yearpar}`g2006t`")
    assert cited_keys(text) == ["a2000x", "b2001y", "c2002z", "d2003w", "e2004v", "f2005u", "g2006t"]


@pytest.mark.parametrize("text", ["as Kirkpatrick et al. (2017) show", "(Kirkpatrick et al., 2017)",
                                  "(Zenke et al. 2017, eq. 2)", "Chaudhry et\n al. 2019",
                                  "Widrow & Hoff (1960)", "(Azoury and Warmuth 2001)", "(Dawid 1984)",
                                  "French (1999) surveyed", "（A-GEM，Chaudhry 等，2019）把",
                                  "（Zhou 等, 2023）", "（Lopez-Paz 与 Ranzato，2017，式 2）",
                                  "van de Ven 与 Tolias（2019）按", "（Schwarz 等，2018；Dawid，1984）",
                                  "Widrow 和 Hoff（1960）"])
def test_handwritten_citations_are_found(text):
    assert handwritten_citations(prose(text), ["Dawid", "French"])


@pytest.mark.parametrize("text", ["{cite:t}`kirkpatrick2017overcoming` show", "Hsu et al.'s protocol",
                                  "in February 2020 the reporter", "`results/hsu2018_sweep.json`",
                                  "## 8. Our numbers next to Hsu et al. (2018)", "the 2,225 articles",
                                  "Van de Ven and Tolias {cite:yearpar}`vandeven2018generative`",
                                  "between 1000 and 1500", "MNIST and Fashion-MNIST",
                                  "平均梯度情景记忆（A-GEM）{cite:p}`chaudhry2019efficient` 把",
                                  "van de Ven 与 Tolias {cite:yearpar}`vandeven2019three` 按",
                                  "{cite:p}`lopezpaz2017gradient{式 2}`。", "MNIST 与 Fashion-MNIST，2 个数字",
                                  "GEM 与 A-GEM，以及", "见[第 2 章](chapters/02_x.ipynb)，2000 个样本"])
def test_legitimate_text_is_not_taken_for_a_citation(text):
    assert not handwritten_citations(prose(text), ["Dawid", "French", "Hsu"])


# --- the bibliography -----------------------------------------------------------------------

def test_bibliography_parses_and_is_not_empty():
    assert len(_entries()) > 1


@pytest.mark.parametrize("key", sorted(_entries()))
def test_entry_has_title_year_and_venue(key):
    entry = _entries()[key]
    assert entry.fields.get("title", "").strip(), f"{key} has no title"
    assert re.fullmatch(r"\d{4}", entry.fields.get("year", "")), f"{key}: year must be 4 digits"
    assert any(entry.fields.get(f, "").strip() for f in VENUE_FIELDS), (
        f"{key} names no venue (one of {', '.join(VENUE_FIELDS)})")
    assert entry.persons.get("author"), f"{key} has no author"


def test_keys_are_lastname_year_word():
    bad = [k for k in _entries() if not re.fullmatch(r"[a-z]+(?:19|20)\d\d[a-z0-9]+", k)]
    assert not bad, f"keys not of the form lastnameYEARfirstword: {bad}"
    for key, entry in _entries().items():
        assert key[:-len(key.split(entry.fields['year'])[-1])].endswith(entry.fields["year"]), key


def test_no_paper_is_listed_twice():
    titles = [re.sub(r"[^a-z0-9]", "", e.fields["title"].lower()) for e in _entries().values()]
    assert len(titles) == len(set(titles)), "two entries have the same title"


# --- the citations --------------------------------------------------------------------------

@pytest.mark.parametrize("source", CITING, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_key_is_in_the_bibliography(source):
    missing = sorted(set(cited_keys(source.read_text(encoding="utf-8"))) - set(_entries()))
    assert not missing, f"{source.name} cites keys missing from references.bib: {missing}"


def test_every_cite_role_is_one_sphinxcontrib_bibtex_knows():
    from sphinxcontrib.bibtex.domain import BibtexDomain
    kinds = {m.group("kind") for p in CITING for m in CITE_ROLE.finditer(p.read_text(encoding="utf-8"))} - {None}
    assert kinds <= set(BibtexDomain.roles), f"unknown cite roles: {sorted(kinds - set(BibtexDomain.roles))}"


def test_every_entry_is_cited_by_a_chapter():
    cited = {key for chapter in CHAPTERS for key in cited_keys(chapter.read_text())}
    orphans = sorted(set(_entries()) - cited)
    assert not orphans, f"references.bib entries no chapter cites: {orphans}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_references_section_cites_by_key(chapter):
    items = [line for line in references_section(chapter).splitlines() if re.match(r"\s*[-*] ", line)]
    assert items, f"{chapter.name}: its References section lists nothing"
    uncited = [item for item in items if not CITE_ROLE.search(item)]
    assert not uncited, f"{chapter.name}: References items without a cite role: {uncited}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_handwritten_author_year_citation_in_markdown(source):
    surnames = first_author_surnames()
    found = [hit for cell in markdown_cells(source) for hit in handwritten_citations(prose(cell), surnames)]
    assert not found, f"{source.name}: cite by key ({{cite:t}}`key` or {{cite:p}}`key`) instead of {found}"


def test_glossary_cites_by_key():
    # that its keys are in references.bib: test_every_cited_key_is_in_the_bibliography[glossary.md]
    assert cited_keys(GLOSSARY.read_text(encoding="utf-8")), (
        "glossary.md cites nothing: its definitions cite their papers with {cite:p}`key`")


def test_no_handwritten_author_year_citation_in_glossary():
    found = handwritten_citations(prose(GLOSSARY.read_text(encoding="utf-8")), first_author_surnames())
    assert not found, f"glossary.md: cite by key ({{cite:p}}`key`, in the Chinese definitions too) instead of {found}"


def test_references_page_lists_the_whole_bibliography():
    page = (ROOT / "references.md").read_text()
    assert re.search(r"```\{bibliography\}\s*\n:all:", page)
