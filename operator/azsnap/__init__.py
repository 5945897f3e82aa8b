"""azsnap: a Kubernetes operator that keeps Azure managed-disk snapshots in line with SnapshotPolicy resources."""

__version__ = "0.1.0"
