"""README results kept true: generated tables and quoted numbers checked against the committed results they cite."""
