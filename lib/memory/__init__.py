"""Memory admission: the policy (pure), the ledger, the ARC backends, and admission at start and stop."""
