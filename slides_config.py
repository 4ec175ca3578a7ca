"""nbconvert settings for the chapters' reveal.js slide decks (traitlets config).

`make slides` runs

    jupyter nbconvert --config slides_config.py chapters/*.ipynb

and tests/test_slides.py runs the same command on one chapter, adding `--output-dir`. Each deck
is `<chapter>.slides.html` in `_build/slides/`, next to a copy of everything it loads
(`reveal.js/`, `mathjax/`, `widgets/`, from `_vendor/`): a self-contained folder that opens from
`file://` (a USB stick) as well as from `python -m http.server`, with no network connection.
Which cell starts a slide is in each cell's `slideshow` metadata (the chapters' MyST sources).
"""

import re
from pathlib import Path

from nbconvert.preprocessors import Preprocessor
from pybtex.database import parse_file

c = get_config()  # noqa: F821 (the config loader provides get_config)

VENDOR = Path(__file__).resolve().parent / "_vendor"

c.NbConvertApp.export_format = "slides"
c.FilesWriter.build_directory = str(VENDOR.parent / "_build" / "slides")  # `--output-dir` overrides it
c.Application.log_level = "WARN"  # not a line for each vendored file copied next to each deck

# Every URL the template loads, from the copies next to the deck (relative URLs), never a CDN.
c.SlidesExporter.reveal_url_prefix = "reveal.js"  # reveal.js 4, as the template expects
c.SlidesExporter.jquery_url = "reveal.js/jquery/jquery.min.js"  # the template's scroll helper uses it
c.SlidesExporter.require_js_url = "widgets/require.js"
c.SlidesExporter.widget_renderer_url = "widgets/embed-amd.js"  # only in decks with explorers
# The template speaks MathJax 2; compat.js configures and loads MathJax 3 (mathjax/) for it.
c.SlidesExporter.mathjax_url = "reveal.js/compat.js"
# (font_awesome_url is a trait but no template of nbconvert 7 uses it; the theme's fonts are
# in reveal.js/dist/theme/fonts/, the widget manager's next to it.)

# Copy the vendored files next to each deck, keeping their paths under _vendor/ (nbconvert
# hard-links them where it can). The README is the only file a deck does not need.
c.FilesWriter.files = sorted(str(p) for p in VENDOR.rglob("*") if p.is_file() and p.name != "README.md")
c.FilesWriter.relpath = str(VENDOR)

# A lecture hall: black on white with large type (readable on a washed-out projector), 16:9,
# slide numbers to refer to, no animation.
c.SlidesExporter.reveal_theme = "white-contrast"
c.SlidesExporter.reveal_width = "1280"
c.SlidesExporter.reveal_height = "720"
c.SlidesExporter.reveal_number = "c/t"
c.SlidesExporter.reveal_transition = "none"
# A slide taller than the screen scrolls instead of being cut off (nbconvert's scroll option;
# reveal.js 5's "scroll view" is not something nbconvert's template offers).
c.SlidesExporter.reveal_scroll = True
# Code is shown (inputs and outputs), without the "In [3]:" prompts, which only cost width.
c.TemplateExporter.exclude_input = False
c.TemplateExporter.exclude_input_prompt = True
c.TemplateExporter.exclude_output_prompt = True


# MyST that nbconvert's Markdown does not know, written as plain Markdown in the decks (the
# chapters' sources are untouched): an admonition (```{admonition} Title ... ```) becomes a
# quotation headed by its title, {cite:t}`key` / {cite:p}`key{Table 2}` the author-year text
# of references.bib (as on the book's pages), any other role ({term}`text <target>`) its text.
BIB = parse_file(str(VENDOR.parent / "references.bib"), bib_format="bibtex").entries
DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}\s*(?P<title>.*)$")
ROLE = re.compile(r"\{(?P<name>[\w:-]+)\}`(?P<text>[^`]+)`")
CITATION = re.compile(r"(?:\{(?P<pre>[^}]*)\})?(?P<key>[^{},\s]+)(?:\{(?P<post>[^}]*)\})?")  # {pre}key{post}


def authors_year(key):
    """("Kirkpatrick et al.", "2017") for a key of references.bib, as the book writes them."""
    if key not in BIB:
        return key, ""
    entry = BIB[key]
    names = [" ".join(p.prelast_names + p.last_names) for p in entry.persons.get("author", [])]
    names = [name.replace("{", "").replace("}", "") for name in names] or [key]
    lead = names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2 else f"{names[0]} et al."
    return lead, entry.fields.get("year", "")


def citation(name, text):
    cited = []
    for parts in CITATION.finditer(text):  # keys are separated by commas
        who, year = authors_year(parts["key"])
        when = ", ".join(x for x in (year, parts["post"]) if x)
        cited.append(f"{who} ({when})" if name == "cite:t" else f"{who} {when}")
        if parts["pre"]:
            cited[-1] = f"{parts['pre']} {cited[-1]}"
    return "; ".join(cited) if name == "cite:t" else "(" + "; ".join(cited) + ")"


def myst_to_markdown(source):
    lines, out, fence = source.split("\n"), [], None
    for line in lines:
        opening = DIRECTIVE.match(line) if fence is None else None
        if opening:
            fence, options = opening["fence"], True
            out += [f"> **{opening['title'] or opening['name'].capitalize()}**", ">"]
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is not None:
            if options and re.match(r"^:[\w-]+:", line):
                continue  # the directive's options (:class: tip)
            options = False
            out.append(f"> {line}".rstrip())
        else:
            out.append(line)
    text = "\n".join(out)
    return ROLE.sub(lambda m: citation(m["name"], m["text"]) if m["name"].startswith("cite")
                    else re.sub(r"\s*<[^>]*>$", "", m["text"]), text)


class MystAsMarkdown(Preprocessor):
    """Applies myst_to_markdown to every Markdown cell of a deck."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            cell.source = myst_to_markdown(cell.source)
        return cell, resources


class NoMermaidFromCDN(Preprocessor):
    """The reveal template imports Mermaid as an ES module in every deck, from cdnjs, and the
    URL is not configurable (mermaid_js_url is not a config trait). The chapters draw no Mermaid
    diagrams, so the deck imports a stand-in that does nothing instead: a data: URL, because a
    page opened from file:// may import no module from a file."""

    def preprocess(self, nb, resources):
        resources["mermaid_js_url"] = "data:text/javascript,export default {initialize() {}}"
        resources["mermaid_layout_elk_js_url"] = resources["mermaid_js_url"]
        return nb, resources


c.SlidesExporter.preprocessors = [MystAsMarkdown, NoMermaidFromCDN]
