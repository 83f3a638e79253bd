"""What tests and benchmarks share: running a service, tiny exports, photos, load generators, bad inputs."""
