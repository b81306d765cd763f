"""Applications: the command line (one module per command), the dashboard, reports and plots, data fetch/verify."""
