"""Operations outside a plan: status, logs, down, test of an environment (small modules)."""
