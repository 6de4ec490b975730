"""The lab notebook: pre-registration locks, run manifests, experiment history and the research log."""
