"""Every side effect of a rollback, one module per kind of target."""
