"""Reports from a run's files: report.md (markdown), report.html (html, with the response
browser), plots, and Table-3-style comparisons across runs (compare). Nothing here loads a
model or imports torch or transformers: the import contracts in pyproject.toml hold it so."""
