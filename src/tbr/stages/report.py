"""The report stage: report.md, report.html and the plots, from the run's files alone
(tbr.report reads metrics and rows; it loads no model). `tbr report RUN_DIR` rewrites them
the same way."""
from __future__ import annotations

from tbr.report.markdown import write_report
from tbr.stages.context import Context
from tbr.stages.runner import log

NAME = "report"


def run(ctx: Context) -> None:
    report = write_report(ctx.root)
    log(f"report: {report}")
    print(report)
