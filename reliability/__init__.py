"""`make reliability`: hostile inputs and faults against the local cloud, written up as a table."""
