"""Kubernetes: the Helm chart generated from the service model, and its checks."""
