"""Plans: short assemblies of steps that read like the seed's lists (`--dry-run` prints them)."""
