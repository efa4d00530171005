"""Spike-train and stimulus analysis (neuropy's role): data model, analyses, plots, report.

See docs/analysis.md.
"""
