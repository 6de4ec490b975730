"""Paper-ready exhibits of one phase: the criteria and results tables (LaTeX or Markdown) and every chart of the
phase's report page (SVG and 300-dpi PNG), built with the same code the report pages use."""
