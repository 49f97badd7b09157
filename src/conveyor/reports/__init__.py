"""Reports: what a plan did, built from its typed state and step results as data."""
