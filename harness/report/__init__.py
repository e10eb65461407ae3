"""Reports: tables (CSV + markdown), plots and the HTML page."""
