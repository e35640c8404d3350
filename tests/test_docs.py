"""The docs point only inside the repository: every relative link in README.md and docs/*.md names a file that
exists under the repository root, and every #section a heading of that file."""

import glob
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
  """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
  return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))


def broken_links(path: str) -> list[str]:
  text = open(path, encoding="utf-8").read()
  out = []
  for target in LINK.findall(text):
    if re.match(r"[a-z]+:", target):  # https:, mailto:
      continue
    file, _, anchor = target.partition("#")
    dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
    if os.path.relpath(dest, ROOT).startswith("..") or not os.path.exists(dest):
      out.append(f"{os.path.relpath(path, ROOT)}: {target} (no such file in the repository)")
    elif anchor and dest.endswith(".md"):
      headings = {slug(h) for h in re.findall(r"^#+\s+(.*)$", open(dest, encoding="utf-8").read(), re.M)}
      if anchor not in headings:
        out.append(f"{os.path.relpath(path, ROOT)}: {target} (no such section)")
  return out


def test_every_link_in_the_docs_points_inside_the_repository():
  pages = [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "*.md"))]
  pages += glob.glob(os.path.join(ROOT, "crackjax", "weights", "*.md")) + glob.glob(
    os.path.join(ROOT, "benchmarks", "**", "*.md")
  )
  assert [p for page in pages for p in broken_links(page)] == []


def test_a_link_outside_the_repository_or_to_a_missing_section_is_found(tmp_path, monkeypatch):
  monkeypatch.setattr("tests.test_docs.ROOT", str(tmp_path))
  (tmp_path / "a.md").write_text(
    "# Results here\n[x](../shared/DESIGN.md) [y](a.md#results-here) [z](a.md#results-on-real-data)\n"
  )
  assert broken_links(str(tmp_path / "a.md")) == [
    "a.md: ../shared/DESIGN.md (no such file in the repository)",
    "a.md: a.md#results-on-real-data (no such section)",
  ]
