"""The Learn tab's metric table, rendered as markdown the way a browser sees it: one row per metric, every cell whole."""
import re

from markdown_it import MarkdownIt

from app.tabs.learn import glossary
from unlearning.evaluation import METRICS


def test_registry_text_with_pipes_stays_in_its_cell():
    """Issue 22.4: the MIA score's |AUC - 0.5| ended its cell at "The official 1 - 2"."""
    html = MarkdownIt("commonmark").enable("table").render(glossary())
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)[1:]  # the header row aside
    assert len(rows) == len(METRICS)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows]
    assert {len(c) for c in cells} == {5}  # metric, family, better, chance, what it measures
    mia = next(c for c in cells if "<code>mia_score</code>" in c[0])
    assert mia[4] == METRICS["mia_score"].what and "1 - 2|AUC - 0.5|" in mia[4]
