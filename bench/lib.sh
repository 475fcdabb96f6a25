# Shell helpers shared by the bench scripts; sourced, not run.

# write_results_section NAME HEADING: puts the section read from stdin between
# the <!-- NAME:start --> and <!-- NAME:end --> markers of bench/RESULTS.md,
# replacing what was there, or appends it under "## HEADING" when the markers
# are not there yet. Run from the repository root.
write_results_section() {
    python3 -c '
import sys
path, name, heading = sys.argv[1:4]
body = sys.stdin.read()
if not body.endswith("\n"):
    body += "\n"
text = open(path).read()
start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
block = f"{start}\n{body}{end}"
if start in text:
    a = text.index(start); b = text.index(end) + len(end)
    text = text[:a] + block + text[b:]
else:
    text += f"\n## {heading}\n\n{block}\n"
open(path, "w").write(text)
' bench/RESULTS.md "$1" "$2"
}
