"""Reporting: table export, figures (seaborn), the report and its generated verdicts."""
