"""Load on a running Temporal: workload shapes, a worker process, the driver, probes, `invoke bench`, fault runs."""
