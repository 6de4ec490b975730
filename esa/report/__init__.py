"""Grading, charts, tables and offline rendering of the lab-notebook reports."""
