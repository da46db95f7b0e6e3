"""Hub backends: one interface (`base.HubBackend`), two implementations
(`local`: JupyterHub as child processes; `kubernetes`: a namespace per course)."""
