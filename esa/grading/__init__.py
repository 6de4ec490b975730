"""Grading: the criterion registry, one module per criterion family, the analyses they read, evidence."""
