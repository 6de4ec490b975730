"""Running the compiled plan on a cluster scheduler (`esa submit --slurm`)."""
