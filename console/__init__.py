"""The operator console's pages that belong to no single app: the dashboard."""
