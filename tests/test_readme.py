"""The README is a newcomer's guide (issue 22.6): short, no dated measurements (they live in docs/), no broken link."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # markdown links and images: ](target) or ](target#anchor)


def local_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(path.read_text()) if not re.match(r"[a-z]+:", t)]  # not http:, mailto:, ...


def test_the_readme_is_a_short_guide_whose_measurements_live_in_docs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 220
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "a dated measurement belongs in docs/, with its command"
    assert "### What the run store guarantees" in text and "## Prepare a target first" in text


def test_every_file_the_readme_and_the_docs_link_exists():
    readme = local_links(ROOT / "README.md")
    assert {"docs/evaluation.md", "docs/recipes.md", "docs/probes.md", "docs/benchmarks.md"} <= set(readme)
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in local_links(page):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links {target}, which does not exist"
