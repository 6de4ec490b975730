"""`esa show`: a spec's runs, criteria and compiled stages as readable text."""
