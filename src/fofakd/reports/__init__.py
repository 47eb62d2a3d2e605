"""Reports and plots from run directories."""
