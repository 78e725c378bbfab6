"""Runtime: the service model, its two renderers, the local supervisor, the components it installs, builds."""
